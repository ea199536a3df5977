use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use platform::secret::read_secret_file;
use secrecy::{ExposeSecret, SecretString};
use users::app::Promotion;

use crate::app::bootstrap_admin;
use crate::app::services::Services;
use crate::cli::ServiceName;
use crate::settings::Settings;

pub async fn create(
    settings: Settings,
    email: &str,
    name: &str,
    password_file: Option<PathBuf>,
    promotion: Promotion,
) -> anyhow::Result<()> {
    let password = match password_file {
        Some(file) => read_secret_file(&file)?,
        None => {
            eprintln!("password for {email}: ");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password")?;
            SecretString::from(line.trim_end_matches(['\n', '\r']).to_owned())
        }
    };
    let services = Services::open(&settings, &[ServiceName::Users], None).await?;
    let users = services.users.context("the users service is open")?;
    let admin = bootstrap_admin(&users, email, password.expose_secret(), name, promotion).await?;
    println!("admin {} ({}) is ready", admin.email.as_str(), admin.id);
    Ok(())
}
