//! A visitor's session: who is signed in (their tokens), their cart, and the token that
//! proves a form came from one of our pages. It lives in one cookie, encrypted and
//! authenticated with the web service's key (AES-256-GCM), so any instance of the web service
//! can read it and the browser can neither read nor change it. JavaScript never sees it
//! (HttpOnly), and the API's tokens never leave the server's hands unencrypted.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::PrivateCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use client::{ApiClient, Origin, Tokens};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::error::PageError;
use crate::{Cart, Web};

/// How long a browser keeps the session cookie; the API's session lifetime ends sign-ins
/// sooner if it is shorter.
const COOKIE_LIFETIME: time::Duration = time::Duration::days(30);
/// Access tokens are renewed this long before they expire, so one never runs out mid-page.
const RENEW_BEFORE_EXPIRY_SECS: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    csrf: String,
    pub user: Option<SignedIn>,
    #[serde(default)]
    pub cart: Cart,
}

/// A signed-in visitor: the API's tokens and what the pages show of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    access_token: String,
    refresh_token: String,
    /// Unix seconds after which the access token is renewed before use.
    renew_at: i64,
    pub name: String,
    pub admin: bool,
}

impl SignedIn {
    pub fn new(tokens: Tokens, name: String, admin: bool) -> Self {
        let mut signed_in = Self {
            access_token: String::new(),
            refresh_token: String::new(),
            renew_at: 0,
            name,
            admin,
        };
        signed_in.renewed(tokens);
        signed_in
    }

    fn renewed(&mut self, tokens: Tokens) {
        let lifetime = i64::try_from(tokens.expires_in).unwrap_or(0);
        self.renew_at = unix_now() + lifetime - RENEW_BEFORE_EXPIRY_SECS;
        self.access_token = tokens.access_token;
        self.refresh_token = tokens.refresh_token;
    }

    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }
}

impl Session {
    fn new() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self {
            csrf: URL_SAFE_NO_PAD.encode(bytes),
            user: None,
            cart: Cart::default(),
        }
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// One request's view of the visitor: their session, and the API as called on their behalf.
pub struct Visit {
    pub session: Session,
    pub api: ApiClient,
    jar: PrivateCookieJar,
    cookie_name: &'static str,
    secure: bool,
    changed: bool,
}

impl<S> FromRequestParts<S> for Visit
where
    S: Send + Sync,
    Web: FromRef<S>,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let web = Web::from_ref(state);
        let jar = PrivateCookieJar::<Key>::from_headers(&parts.headers, web.key.clone());
        let stored = jar
            .get(web.cookie_name())
            .and_then(|cookie| serde_json::from_str::<Session>(cookie.value()).ok());
        let changed = stored.is_none();
        let api = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => web.api.on_behalf_of(Origin {
                peer: *peer,
                forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
            }),
            None => web.api.clone(),
        };
        let mut visit = Self {
            session: stored.unwrap_or_else(Session::new),
            api,
            jar,
            cookie_name: web.cookie_name(),
            secure: web.secure_cookies,
            changed,
        };
        visit.keep_signed_in().await;
        Ok(visit)
    }
}

impl Visit {
    /// Renews the access token when it is about to expire; a session the API has ended (its
    /// lifetime is over, or it was logged out elsewhere) signs the visitor out here too.
    async fn keep_signed_in(&mut self) {
        let Some(user) = &self.session.user else {
            return;
        };
        if user.renew_at > unix_now() {
            return;
        }
        let renewed = self.api.refresh(user.refresh_token()).await;
        let session = self.session_mut();
        match renewed {
            Ok(tokens) => {
                if let Some(user) = &mut session.user {
                    user.renewed(tokens);
                }
            }
            Err(error) => {
                tracing::info!("the session could not be renewed: {error}");
                session.user = None;
            }
        }
    }

    /// The session, to change: the cookie is written with the response.
    pub fn session_mut(&mut self) -> &mut Session {
        self.changed = true;
        &mut self.session
    }

    /// The signed-in visitor, or a page asking them to sign in first and come back to
    /// `then`.
    pub fn signed_in(&self, then: &str) -> Result<&SignedIn, PageError> {
        self.session
            .user
            .as_ref()
            .ok_or_else(|| PageError::SignInFirst(then.to_owned()))
    }

    /// Refuses a form that does not carry this session's token: it was not sent from one of
    /// our pages in this browser (cross-site request forgery).
    pub fn check_form(&self, token: &str) -> Result<(), PageError> {
        let expected = self.session.csrf.as_bytes();
        if bool::from(expected.ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(PageError::StaleForm)
        }
    }

    /// A new session in place of the old one, keeping the cart: done at sign-in and
    /// sign-out, so a form token seen before cannot be used after (session fixation).
    pub fn renew(&mut self, user: Option<SignedIn>) {
        let cart = std::mem::take(&mut self.session.cart);
        *self.session_mut() = Session {
            user,
            cart,
            ..Session::new()
        };
    }

    /// `response`, with the session's cookie when the session changed.
    pub fn respond(self, response: impl IntoResponse) -> Response {
        if !self.changed {
            return response.into_response();
        }
        let value = match serde_json::to_string(&self.session) {
            Ok(value) => value,
            Err(error) => return PageError::internal(error).into_response(),
        };
        let cookie = Cookie::build((self.cookie_name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(COOKIE_LIFETIME)
            .build();
        (self.jar.add(cookie), response).into_response()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_new_session_has_its_own_form_token() {
        let (a, b) = (Session::new(), Session::new());
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 43);
    }

    #[test]
    fn a_token_pair_is_renewed_before_it_expires() {
        let tokens = Tokens {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_in: 900,
        };
        let user = SignedIn::new(tokens, "Ada".into(), false);
        let left = user.renew_at - unix_now();
        assert!((860..=870).contains(&left), "{left}");
    }
}
