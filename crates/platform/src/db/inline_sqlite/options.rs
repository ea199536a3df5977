//! How an inline SQLite connection is opened, read from its URL:
//! `sqlite://<path>?mode=rwc&synchronous=full&busy_timeout=10000`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::OpenFlags;
use sqlx::ConnectOptions;
use sqlx::any::AnyConnectOptions;
use sqlx::error::Error;
use sqlx_core::Url;

use super::InlineConnection;

/// How long a statement waits for a lock another connection holds, unless the URL says
/// otherwise (`busy_timeout`, milliseconds).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct InlineConnectOptions {
    pub(super) path: PathBuf,
    pub(super) flags: OpenFlags,
    pub(super) busy_timeout: Duration,
    /// SQLite's `synchronous`, set when the connection opens; `FULL` and `EXTRA` sync the
    /// log at every commit.
    pub(super) synchronous: Option<&'static str>,
}

impl InlineConnectOptions {
    /// True when a commit waits for the disk.
    pub(super) fn commits_sync(&self) -> bool {
        matches!(self.synchronous, Some("FULL" | "EXTRA"))
    }
}

fn invalid(what: String) -> Error {
    Error::Configuration(what.into())
}

impl ConnectOptions for InlineConnectOptions {
    type Connection = InlineConnection;

    fn from_url(url: &Url) -> Result<Self, Error> {
        let rest = url
            .as_str()
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut options = Self {
            path: PathBuf::from(
                sqlx_core::percent_encoding::percent_decode_str(path)
                    .decode_utf8()
                    .map_err(|error| invalid(format!("SQLite path is not UTF-8: {error}")))?
                    .into_owned(),
            ),
            flags: OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
            busy_timeout: BUSY_TIMEOUT,
            synchronous: None,
        };
        let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match (&*key, &*value) {
                ("mode", "ro") => options.flags = base | OpenFlags::SQLITE_OPEN_READ_ONLY,
                ("mode", "rw") => options.flags = base | OpenFlags::SQLITE_OPEN_READ_WRITE,
                ("mode", "rwc") => {
                    options.flags =
                        base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
                }
                ("busy_timeout", ms) => {
                    let ms = ms
                        .parse()
                        .map_err(|_| invalid(format!("busy_timeout={ms}: milliseconds")))?;
                    options.busy_timeout = Duration::from_millis(ms);
                }
                ("synchronous", level) => {
                    options.synchronous = Some(match level.to_ascii_lowercase().as_str() {
                        "off" => "OFF",
                        "normal" => "NORMAL",
                        "full" => "FULL",
                        "extra" => "EXTRA",
                        _ => return Err(invalid(format!("synchronous={level}"))),
                    })
                }
                (key, value) => {
                    return Err(invalid(format!("unknown SQLite URL option {key}={value}")));
                }
            }
        }
        if options.path.as_os_str().is_empty() {
            return Err(invalid(format!("no SQLite file in {url}")));
        }
        Ok(options)
    }

    async fn connect(&self) -> Result<InlineConnection, Error> {
        InlineConnection::open(self).await
    }

    /// Statements are not logged by the driver: `platform::db` traces transactions.
    fn log_statements(self, _: log::LevelFilter) -> Self {
        self
    }

    fn log_slow_statements(self, _: log::LevelFilter, _: Duration) -> Self {
        self
    }
}

impl FromStr for InlineConnectOptions {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        Self::from_url(&url.parse().map_err(Error::config)?)
    }
}

impl TryFrom<&AnyConnectOptions> for InlineConnectOptions {
    type Error = Error;

    fn try_from(options: &AnyConnectOptions) -> Result<Self, Error> {
        Self::from_url(&options.database_url)
    }
}
