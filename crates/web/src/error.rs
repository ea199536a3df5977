//! What a page answers when it cannot show what was asked: an HTML page with the right status,
//! or a redirect to sign in.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use client::ApiError;

use crate::pages::Chrome;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    /// The page is for signed-in visitors; sign in, then go to the path.
    #[error("sign in first")]
    SignInFirst(String),
    /// Checkout with nothing in the cart: back to the cart.
    #[error("the cart is empty")]
    EmptyCart,
    #[error("administrators only")]
    NotAnAdmin,
    /// A form without this session's token: not from our page, or from before a sign-in.
    #[error("the form is stale")]
    StaleForm,
    #[error("the API answered {0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        Self::internal(error)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::SignInFirst(then) => {
                let then: String = form_urlencoded::byte_serialize(then.as_bytes()).collect();
                return Redirect::to(&format!("/login?next={then}")).into_response();
            }
            Self::EmptyCart => return Redirect::to("/cart").into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here. It may have been removed, or the address is mistyped."
                    .to_owned(),
            ),
            Self::NotAnAdmin => (
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This part of the shop is for its administrators.".to_owned(),
            ),
            Self::StaleForm => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Go back, reload the page and send the form again.".to_owned(),
            ),
            Self::Api(error) => match error.status() {
                Some(StatusCode::NOT_FOUND) => return Self::NotFound.into_response(),
                Some(StatusCode::TOO_MANY_REQUESTS) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    "Wait a moment, then try again.".to_owned(),
                ),
                Some(StatusCode::SERVICE_UNAVAILABLE) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Back in a moment",
                    "The shop is busy or partly down. Try again in a moment.".to_owned(),
                ),
                _ => {
                    tracing::error!("the API failed a page: {error}");
                    (
                        StatusCode::BAD_GATEWAY,
                        "Something went wrong",
                        "The shop could not answer. Try again in a moment.".to_owned(),
                    )
                }
            },
            Self::Internal(error) => {
                tracing::error!("a page failed: {error}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The shop could not show this page. Try again in a moment.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(),
            title,
            message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title).into_response(),
        }
    }
}
