use anyhow::Context;
use commercex::app::Application;
use commercex::cli::{AdminCommand, Command};
use commercex::settings::{self, Settings};
use commercex::{commands, config_file, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = config_file::parse_cli()?;
    telemetry::init(settings::log_format(&cli.options));
    let options = &cli.options;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(options).await,
        Command::Migrate => commands::migrate::run(options).await,
        Command::Dlq(command) => commands::dlq::run(options, command).await,
        Command::Seed { products, rng_seed } => {
            commands::seed::run(options, products, rng_seed).await
        }
        Command::Admin(AdminCommand::Create {
            email,
            name,
            password_file,
        }) => commands::admin::create(options, &email, &name, password_file).await,
    }
}

async fn serve(options: &commercex::cli::Options) -> anyhow::Result<()> {
    let settings = Settings::load(options)?;
    let app = Application::build(settings).await?;
    let addr = app.local_addr()?;
    println!("CommerceX listening on http://{addr} (docs at http://{addr}/docs)");
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));
    app.run(shutdown).await.context("running CommerceX")?;
    println!("CommerceX stopped");
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn signal_on(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; draining");
    shutdown.cancel();
}
