//! What the gateway checks before a request reaches any service: the access token, when one
//! is sent, and the caller's quotas.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::auth::TokenVerifier;
use platform::http::ClientAddr;
use platform::problem::ApiError;

use crate::ratelimit::{Quota, RateLimits};

pub struct EdgeGuard {
    pub verifier: Arc<TokenVerifier>,
    pub rate_limits: RateLimits,
}

pub fn edge_layer(router: Router, guard: EdgeGuard) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(guard),
        guard_request,
    ))
}

/// Paths where a stale token is normal (a client refreshing after its access token expired)
/// and proves nothing either way.
fn token_optional(path: &str) -> bool {
    path.starts_with("/api/v1/auth/") || path.starts_with("/.well-known/")
}

async fn guard_request(
    State(guard): State<Arc<EdgeGuard>>,
    ClientAddr(client): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let user = match bearer_token(&request) {
        None => None,
        Some(token) => match guard.verifier.verify(token) {
            Ok(claims) => Some(claims.sub),
            Err(_) if token_optional(request.uri().path()) => None,
            Err(error) => {
                tracing::debug!(%error, "rejected access token at the edge");
                return ApiError::Unauthorized("the access token is invalid or expired".into())
                    .into_response();
            }
        },
    };
    let limits = &guard.rate_limits;
    let mut tightest: Option<Quota> = None;
    let subjects = [
        limits
            .per_client
            .zip(client.map(|client| ("client", format!("client:{client}")))),
        limits
            .per_user
            .zip(user.map(|user| ("user", format!("user:{user}")))),
    ];
    for (limit, (scope, subject)) in subjects.into_iter().flatten() {
        match limits.charge(&subject, limit).await {
            Ok(quota) => {
                if tightest.is_none_or(|t| quota.remaining < t.remaining) {
                    tightest = Some(quota);
                }
            }
            Err(quota) => {
                metrics::counter!("commercex_rate_limit_rejections_total", "scope" => scope)
                    .increment(1);
                return too_many_requests(quota);
            }
        }
    }
    let mut response = next.run(request).await;
    if let Some(quota) = tightest {
        set_quota_headers(&mut response, quota);
    }
    response
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn too_many_requests(quota: Quota) -> Response {
    let mut response = ApiError::TooManyRequests {
        detail: format!(
            "more than {} requests in a minute; retry after the window resets",
            quota.limit
        ),
        retry_after: quota.reset,
    }
    .into_response();
    set_quota_headers(&mut response, quota);
    response
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds), as in the IETF
/// httpapi rate-limit headers draft.
fn set_quota_headers(response: &mut Response, quota: Quota) {
    let reset = quota.reset.as_secs() + u64::from(quota.reset.subsec_nanos() > 0);
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}
