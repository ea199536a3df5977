//! The independent checkers written in Python beside the tests (`tests/api/*.py`): each
//! reads one JSON object a line, prints a verdict a line, and exits 0 when every line
//! passes, 1 when one does not, and 3 when the package it checks with is missing.

/// What one checker checks with, and what its refusals mean.
pub struct PythonChecker {
    /// The script's file name in `tests/api`.
    pub script: &'static str,
    /// The package it needs, as a test that cannot run names it.
    pub package: &'static str,
    pub install: &'static str,
    /// What the verdicts of a failed check are, for the assertion.
    pub refused: &'static str,
}

impl PythonChecker {
    /// Runs the checker on `lines`, expecting a verdict for each of `count` lines; false
    /// when its package is missing and the test may be skipped (`testkit::cannot_run`
    /// fails it otherwise).
    pub async fn check(&self, lines: &str, count: usize) -> bool {
        let script = format!("{}/tests/api/{}", env!("CARGO_MANIFEST_DIR"), self.script);
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(lines.as_bytes()).await.unwrap();
        }
        let output = child.wait_with_output().await.unwrap();
        let verdicts = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.code() == Some(3) {
            testkit::cannot_run(self.package, self.install);
            return false;
        }
        assert_eq!(verdicts.lines().count(), count, "{verdicts}");
        assert!(output.status.success(), "{}:\n{verdicts}", self.refused);
        true
    }
}
