//! SQLite's errors as sqlx reports them: the extended result code as the error's code, and
//! the constraint violations sqlx's own SQLite driver names.

use std::borrow::Cow;

use rusqlite::ffi;
use sqlx::error::{DatabaseError, ErrorKind};

#[derive(Debug, thiserror::Error)]
#[error("(code: {code}) {message}")]
pub struct InlineError {
    code: i32,
    message: String,
}

impl DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// True when SQLite answered that another connection holds the lock.
pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// rusqlite's error as sqlx's: SQLite's own errors are database errors (whose codes callers
/// read: busy, full, unique violation); a value that cannot be read is a decoding error.
pub(super) fn from_rusqlite(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(InlineError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        rusqlite::Error::Utf8Error(..) | rusqlite::Error::FromSqlConversionFailure(..) => {
            sqlx::Error::Decode(Box::new(error))
        }
        other => sqlx::Error::AnyDriverError(Box::new(other)),
    }
}
