use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use platform::ApiError;
use platform::auth::{Admin, AuthUser};
use platform::http::{ClientAddr, Json, Query};
use platform::problem::Problem;
use platform::problem::responses::{InvalidFields, NotAnAdmin, NotSignedIn};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{
    AccountPage, AccountSearch, AdminRoleRequest, LoginRequest, RefreshRequest, RegisterRequest,
    TokenResponse, UserResponse,
};
use crate::app::Identity;

const TAG: &str = "identity";

/// The identity service's routes and their OpenAPI description.
pub fn router(identity: Arc<Identity>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(jwks))
        .routes(routes!(accounts))
        .routes(routes!(set_admin))
        .with_state(identity)
}

/// Create a customer account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = TAG, request_body = RegisterRequest,
    responses(
        (status = 201, description = "The new account", body = UserResponse),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        InvalidFields,
        (status = 429, description = "Too many sign-ups from this address, or a request quota used up; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(identity): State<Arc<Identity>>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let registration = body.parse()?;
    let user = identity.sign_up(registration, client).await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(user))))
}

/// Exchange credentials for an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = TAG, request_body = LoginRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins, or a request quota used up; wait as long as Retry-After says", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(identity): State<Arc<Identity>>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let pair = identity.login(&body.email, body.password, client).await?;
    Ok(uncacheable(pair.into()))
}

/// Rotate a refresh token: the presented one stops working. Presenting an already-rotated
/// token revokes the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = TAG, request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    State(identity): State<Arc<Identity>>,
    Json(body): Json<RefreshRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let pair = identity.refresh(body.refresh_token.expose_secret()).await?;
    Ok(uncacheable(pair.into()))
}

/// Tokens are kept by no cache on the way (RFC 6749, section 5.1).
fn uncacheable(tokens: TokenResponse) -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(tokens),
    )
}

/// End the session a refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = TAG, request_body = RefreshRequest,
    responses((status = 204, description = "Session revoked")))]
async fn logout(
    State(identity): State<Arc<Identity>>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    identity.logout(body.refresh_token.expose_secret()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/v1/users/me", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserResponse),
        (status = 401, description = "Missing or invalid access token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(
    State(identity): State<Arc<Identity>>,
    caller: AuthUser,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(identity.user(caller.id).await?.into()))
}

/// Public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = TAG,
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(identity): State<Arc<Identity>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(identity.issuer().jwks()),
    )
}

/// Every account, or those whose email or name contains `q`, or those of `ids`, newest first
/// (administrators).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = TAG, security(("bearer" = [])), params(AccountSearch),
    responses(
        (status = 200, description = "A page of accounts", body = AccountPage),
        NotSignedIn,
        NotAnAdmin,
        InvalidFields,
    ))]
async fn accounts(
    State(identity): State<Arc<Identity>>,
    _: Admin,
    Query(search): Query<AccountSearch>,
) -> Result<Json<AccountPage>, ApiError> {
    let parsed = search.parse()?;
    let limit = parsed.limit;
    let page = identity
        .accounts(parsed.words, parsed.ids.as_deref(), limit, search.cursor)
        .await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|user| user.id))
        .flatten();
    Ok(Json(AccountPage {
        items: page.into_iter().map(UserResponse::from).collect(),
        next_cursor,
    }))
}

/// Make an account an administrator, or no longer one (administrators; not of themselves).
/// The account's sessions end, so its next sign-in carries the new role.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/admin", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's user id")),
    request_body = AdminRoleRequest,
    responses(
        (status = 200, description = "The account as it now is", body = UserResponse),
        NotSignedIn,
        NotAnAdmin,
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An administrator's own role", body = Problem, content_type = "application/problem+json"),
        InvalidFields,
    ))]
async fn set_admin(
    State(identity): State<Arc<Identity>>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    Json(request): Json<AdminRoleRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let id =
        uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such account".into()))?;
    let user = identity.set_admin(caller.id, id, request.admin).await?;
    Ok(Json(user.into()))
}
