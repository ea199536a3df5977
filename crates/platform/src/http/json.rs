use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// A JSON request body (and response). Unlike `axum::Json`, every rejection is a problem+json
/// response, and a body of the wrong shape names the failing field as a JSON pointer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with content-type application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status().as_u16() {
                413 => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest(rejection.body_text()),
            }
        })?;
        parse(&bytes).map(Json)
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A request body as `T`, or the problem the `Json` extractor answers with: what the fuzz
/// target `request_body` exercises.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        let pointer = json_pointer(error.path());
        ApiError::Validation(vec![FieldError::new(
            pointer,
            "invalid",
            strip_position(inner),
        )])
    })
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

/// serde_json appends "at line 1 column 17"; the pointer already says where.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse::<Body>(br#"{"name":"x","items":[{"quantity":"two"}]}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error, got {err:?}")
        };
        assert_eq!(errors[0].field, "/items/0/quantity");
    }

    #[test]
    fn json_media_types_are_recognised() {
        let with = |value: &str| {
            let request = axum::http::Request::builder()
                .header(header::CONTENT_TYPE, value)
                .body(axum::body::Body::empty())
                .unwrap();
            has_json_content_type(&request)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonp"));
        assert!(!with("text/x+json"));
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        assert!(matches!(
            parse::<Body>(b"{\"name\":"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
