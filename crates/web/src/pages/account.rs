//! Signing up, in and out. The API's tokens go into the encrypted session; the page gets
//! only the visitor's name.

use askama::Template;
use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use client::{ApiError, Tokens};
use serde::Deserialize;

use super::{Chrome, FormToken, render};
use crate::error::PageError;
use crate::session::{SignedIn, Visit};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Next {
    next: String,
}

/// Where to go after signing in: a path on this site, never another site (`//evil.example`
/// is a path to a browser's eyes, but another host).
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local { next } else { "/" }
}

#[derive(Template)]
#[template(path = "account/login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    email: String,
    problem: Option<String>,
}

pub async fn login_form(visit: Visit, Query(next): Query<Next>) -> Result<Response, PageError> {
    let page = LoginPage {
        chrome: Chrome::of(&visit),
        next: safe_next(&next.next).to_owned(),
        email: String::new(),
        problem: None,
    };
    render(visit, &page)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(visit: Visit, Form(form): Form<LoginForm>) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let next = safe_next(&form.next).to_owned();
    match visit.api.login(form.email.trim(), &form.password).await {
        Ok(tokens) => sign_in(visit, tokens, &next).await,
        Err(error) => {
            let (status, problem) = refusal(error, "The email or the password is wrong.")?;
            let page = LoginPage {
                chrome: Chrome::of(&visit),
                next,
                email: form.email,
                problem: Some(problem),
            };
            with_status(render(visit, &page), status)
        }
    }
}

#[derive(Template)]
#[template(path = "account/signup.html")]
struct SignupPage {
    chrome: Chrome,
    next: String,
    name: String,
    email: String,
    problem: Option<String>,
    name_problem: Option<String>,
    email_problem: Option<String>,
    password_problem: Option<String>,
}

pub async fn signup_form(visit: Visit, Query(next): Query<Next>) -> Result<Response, PageError> {
    let page = SignupPage {
        chrome: Chrome::of(&visit),
        next: safe_next(&next.next).to_owned(),
        name: String::new(),
        email: String::new(),
        problem: None,
        name_problem: None,
        email_problem: None,
        password_problem: None,
    };
    render(visit, &page)
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    csrf: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn signup(visit: Visit, Form(form): Form<SignupForm>) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let next = safe_next(&form.next).to_owned();
    let email = form.email.trim();
    match visit
        .api
        .sign_up(email, &form.password, form.name.trim())
        .await
    {
        Ok(tokens) => sign_in(visit, tokens, &next).await,
        Err(error) => {
            let fields = error.problem().cloned().unwrap_or_default();
            let (status, problem) = refusal(error, "An account with this email exists already.")?;
            let page = SignupPage {
                chrome: Chrome::of(&visit),
                next,
                name: form.name,
                email: form.email,
                name_problem: fields.about("/name").map(str::to_owned),
                email_problem: fields.about("/email").map(str::to_owned),
                password_problem: fields.about("/password").map(str::to_owned),
                problem: Some(problem),
            };
            with_status(render(visit, &page), status)
        }
    }
}

pub async fn logout(mut visit: Visit, Form(form): Form<FormToken>) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    if let Some(user) = &visit.session.user
        && let Err(error) = visit.api.logout(user.refresh_token()).await
    {
        // The session ends here either way; the API's ends at its lifetime.
        tracing::warn!("logging out at the API failed: {error}");
    }
    visit.renew(None);
    Ok(visit.respond(Redirect::to("/")))
}

/// Starts the signed-in session with `tokens`, then goes on to `next`.
async fn sign_in(mut visit: Visit, tokens: Tokens, next: &str) -> Result<Response, PageError> {
    let me = visit.api.me(&tokens.access_token).await?;
    visit.renew(Some(SignedIn::new(tokens, me.name.clone(), me.is_admin())));
    Ok(visit.respond(Redirect::to(next)))
}

/// What to tell the visitor when the API refused the form: the status to answer with and the
/// sentence to show. `conflict` is what a 401 or 409 means on this form; anything else the API
/// says is passed on as it says it. Failures that are not a refusal become error pages.
fn refusal(error: ApiError, conflict: &str) -> Result<(StatusCode, String), PageError> {
    let status = error.status();
    let Some(problem) = error.problem() else {
        return Err(error.into());
    };
    match status {
        Some(StatusCode::UNAUTHORIZED | StatusCode::CONFLICT) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, conflict.to_owned()))
        }
        Some(StatusCode::TOO_MANY_REQUESTS) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts. {}", problem.detail),
        )),
        Some(StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            "Some fields need another look.".to_owned(),
        )),
        _ => Err(error.into()),
    }
}

pub fn with_status(
    response: Result<Response, PageError>,
    status: StatusCode,
) -> Result<Response, PageError> {
    response.map(|mut response| {
        *response.status_mut() = status;
        response
    })
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next("/checkout"), "/checkout");
        assert_eq!(safe_next("/orders/1?x=2"), "/orders/1?x=2");
        for elsewhere in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "",
            "orders",
        ] {
            assert_eq!(safe_next(elsewhere), "/", "{elsewhere}");
        }
    }
}
