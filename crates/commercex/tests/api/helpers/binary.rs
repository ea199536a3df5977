//! The `commercex` binary as a child process: starting it, finding the address it announces,
//! and the files it is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The `commercex` binary, with no inherited `COMMERCEX_*` settings.
pub fn commercex_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_commercex"));
    for (key, _) in std::env::vars() {
        if key.starts_with("COMMERCEX_") {
            command.env_remove(key);
        }
    }
    command.kill_on_drop(true);
    command
}

/// The address (`host:port`) a server logs when it is up, if `line` is that line. Servers log
/// to stdout, pretty or JSON, so the line is found among the others.
pub fn announced_address(line: &str) -> Option<String> {
    let rest = line.split_once("CommerceX listening on ")?.1;
    let url: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    url.split_once("://").map(|(_, addr)| addr.to_owned())
}

/// Starts `command` with stdout piped and waits for the address it announces; stdout keeps
/// being drained so the child never blocks on a full pipe.
pub async fn start_and_wait_for_address(
    command: &mut tokio::process::Command,
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start commercex");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = announced_address(&line) {
                return addr;
            }
        }
        panic!("commercex exited without announcing its address")
    })
    .await
    .expect("commercex announces itself");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The JWKS the process at `addr` (`host:port`, plain HTTP) publishes.
pub async fn published_jwks(addr: &str) -> Value {
    reqwest::get(format!("http://{addr}/.well-known/jwks.json"))
        .await
        .expect("GET the JWKS")
        .json()
        .await
        .expect("a JWKS")
}

pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}
