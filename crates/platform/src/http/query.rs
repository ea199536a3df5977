use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// Query-string parameters. Unlike `axum::extract::Query`, a bad parameter is a 422
/// problem+json naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let field = error.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                ApiError::Validation(vec![FieldError::new(
                    field,
                    "invalid",
                    error.inner().to_string(),
                )])
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        limit: Option<u8>,
        q: Option<String>,
    }

    async fn parse(uri: &str) -> Result<Params, ApiError> {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts();
        Query::<Params>::from_request_parts(&mut parts, &())
            .await
            .map(|Query(p)| p)
    }

    #[tokio::test]
    async fn a_bad_parameter_is_named() {
        let Err(ApiError::Validation(errors)) = parse("/x?limit=many").await else {
            panic!("expected a validation error")
        };
        assert_eq!(errors[0].field, "limit");
        assert_eq!(parse("/x?q=a%20b").await.unwrap().q.as_deref(), Some("a b"));
        assert!(parse("/x?nope=1").await.is_err());
    }
}
