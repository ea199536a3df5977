//! Secrets come from files (Kubernetes/Docker secrets, Vault Agent) or, in development, from
//! the environment. They are wrapped in `SecretString` so Debug and logs never show them.

use std::path::Path;

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
#[error("cannot read secret file {path}: {source}")]
pub struct SecretFileError {
    path: String,
    source: std::io::Error,
}

/// Reads a secret file, dropping the trailing newline editors and `echo` add.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SecretFileError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(SecretString::from(
        raw.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}
