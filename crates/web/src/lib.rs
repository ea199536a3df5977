//! The storefront and the admin console: CommerceX in a browser. Pages are rendered on the server (askama templates,
//! checked at compile time) from what the public HTTP API answers, the same API third parties
//! use; a little JavaScript only adds live updates, and every page works without it. The
//! visitor's tokens stay on the server side of an encrypted cookie ([`session`]).
//!
//! In the embedded runtime the pages are served by the same process and reach the API through
//! its router in memory; `commercex serve web` serves them alone and reaches the API over HTTP.

mod assets;
pub mod cart;
mod error;
mod pages;
mod security;
pub mod session;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use axum_extra::extract::cookie::Key;
use client::ApiClient;

pub use cart::Cart;

/// The secret a deployment gives the web service to encrypt its cookies with: at least this
/// many bytes, so the derived key has full strength.
pub const MIN_SECRET_LEN: usize = 32;

/// What the pages need: the API, and the key of the session cookie.
#[derive(Clone)]
pub struct Web {
    api: ApiClient,
    key: Key,
    secure_cookies: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the web session secret must be at least {MIN_SECRET_LEN} bytes long")]
pub struct SecretTooShort;

impl Web {
    /// Pages over `api`, with cookies encrypted under a key derived from `secret` (the same
    /// in every instance, so any instance reads a session) or, without one, a key made up
    /// for this process (sessions end when it stops). `secure_cookies` when served over
    /// HTTPS.
    pub fn new(
        api: ApiClient,
        secret: Option<&[u8]>,
        secure_cookies: bool,
    ) -> Result<Self, SecretTooShort> {
        let key = match secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => return Err(SecretTooShort),
            Some(secret) => Key::derive_from(secret),
            None => Key::generate(),
        };
        Ok(Self {
            api,
            key,
            secure_cookies,
        })
    }

    /// Over HTTPS the cookie is `__Host-` prefixed: the browser keeps it only if it is
    /// Secure, for this host alone, for every path.
    fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-commercex"
        } else {
            "commercex"
        }
    }
}

impl FromRef<Web> for Key {
    fn from_ref(web: &Web) -> Self {
        web.key.clone()
    }
}

/// Every page and asset. The API's own paths (`/api`, `/docs`, `/healthz`...) are not here:
/// in the embedded runtime this router is merged beside the API's.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::shop::home))
        .route("/products/{id}", get(pages::shop::product))
        .route("/cart", get(pages::cart::show).post(pages::cart::add))
        .route("/cart/{product_id}", post(pages::cart::update))
        .route(
            "/checkout",
            get(pages::checkout::form).post(pages::checkout::place),
        )
        .route("/orders", get(pages::orders::mine))
        .route("/orders/{id}", get(pages::orders::one))
        .route("/orders/{id}/live", get(pages::orders::live))
        .route("/orders/{id}/cancel", post(pages::orders::cancel))
        .route(
            "/login",
            get(pages::account::login_form).post(pages::account::login),
        )
        .route(
            "/signup",
            get(pages::account::signup_form).post(pages::account::signup),
        )
        .route("/logout", post(pages::account::logout))
        .route("/admin", get(pages::admin::home))
        .route("/admin/orders", get(pages::admin::orders::list))
        .route("/admin/orders/{id}", get(pages::admin::orders::one))
        .route(
            "/admin/orders/{id}/cancel",
            post(pages::admin::orders::cancel),
        )
        .route("/admin/products", get(pages::admin::products::list))
        .route(
            "/admin/products/new",
            get(pages::admin::products::new_form).post(pages::admin::products::create),
        )
        .route(
            "/admin/products/{id}",
            get(pages::admin::products::edit_form).post(pages::admin::products::update),
        )
        .route(
            "/admin/products/{id}/archive",
            post(pages::admin::products::archive),
        )
        .route(
            "/admin/products/{id}/stock",
            post(pages::admin::products::adjust),
        )
        .route("/admin/dead-letters", get(pages::admin::dead_letters::list))
        .route(
            "/admin/dead-letters/{service}/{id}",
            post(pages::admin::dead_letters::settle),
        )
        .route(
            "/admin/webhooks",
            get(pages::admin::webhooks::list).post(pages::admin::webhooks::register),
        )
        .route("/admin/webhooks/{id}", get(pages::admin::webhooks::one))
        .route(
            "/admin/webhooks/{id}/state",
            post(pages::admin::webhooks::set_state),
        )
        .route(
            "/admin/webhooks/{id}/rotate",
            post(pages::admin::webhooks::rotate),
        )
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/replay",
            post(pages::admin::webhooks::replay),
        )
        .route(
            "/admin/webhooks/{id}/{action}",
            post(pages::admin::webhooks::act),
        )
        .route("/admin/customers", get(pages::admin::customers::list))
        .route(
            "/admin/customers/{id}/admin",
            post(pages::admin::customers::set_role),
        )
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(security::guard))
        .with_state(web)
}

/// The page for an address that is not one, where the pages are served alone.
pub async fn not_found() -> axum::response::Response {
    axum::response::IntoResponse::into_response(error::PageError::NotFound)
}
