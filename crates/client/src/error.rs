use reqwest::StatusCode;
use serde::Deserialize;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: the connection failed or timed out.
    #[error("no response ({0})")]
    Transport(String),
    /// An answer other than the one expected, with its problem document.
    #[error("{status} {}", problem.detail)]
    Status {
        status: StatusCode,
        problem: Problem,
    },
    /// The expected status, but a body that does not read as expected.
    #[error("unreadable answer: {0}")]
    Body(String),
}

impl From<reqwest::Error> for ApiError {
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(error.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem document of a refusal; `None` when there was no answer to read.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Status { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// An answer other than `expected`: its problem document, or its body as the detail.
    pub(crate) fn unexpected(status: StatusCode, body: &[u8]) -> Self {
        let problem = serde_json::from_slice::<Problem>(body).unwrap_or_else(|_| Problem {
            title: status.canonical_reason().unwrap_or_default().to_owned(),
            detail: String::from_utf8_lossy(body).into_owned(),
            errors: Vec::new(),
        });
        Self::Status { status, problem }
    }
}

/// An RFC 9457 problem document as the API writes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    /// For a request that did not validate: what is wrong with which field.
    #[serde(default)]
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldProblem {
    /// A JSON pointer (`/shipping_address/postal_code`) or a query parameter's name.
    pub field: String,
    pub detail: String,
}

impl Problem {
    /// What is wrong with `field`, if the API said.
    pub fn about(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|error| error.field == field)
            .map(|error| error.detail.as_str())
    }
}
