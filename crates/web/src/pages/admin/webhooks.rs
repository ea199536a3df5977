//! Webhook endpoints: registered (the signing secret shown once, on the page that answers
//! the registration), paused and enabled again, their secret rotated, a test event sent, and
//! each one's latest deliveries with their last answer, replayed one by one.

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use client::{WebhookDelivery, WebhookEndpoint};
use serde::Deserialize;
use uuid::Uuid;

use super::super::account::with_status;
use super::super::{Chrome, FormToken, render};
use crate::error::PageError;
use crate::session::Visit;

/// How many of an endpoint's deliveries its page shows, newest first.
const DELIVERIES_SHOWN: u32 = 50;

/// The overlaps an operator picks from when rotating a secret, in seconds, with their names.
const OVERLAPS: [(u64, &str); 3] = [(0, "none"), (3_600, "1 hour"), (86_400, "24 hours")];

/// The registration form, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndpointForm {
    csrf: String,
    url: String,
    /// Event type patterns, separated by spaces or commas.
    event_types: String,
    description: String,
}

impl EndpointForm {
    fn patterns(&self) -> Vec<String> {
        self.event_types
            .split([' ', ',', '\n', '\r', '\t'])
            .filter(|pattern| !pattern.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct EndpointsPage {
    chrome: Chrome,
    endpoints: Vec<WebhookEndpoint>,
    form: EndpointForm,
    problem: Option<String>,
}

pub async fn list(visit: Visit) -> Result<Response, PageError> {
    let token = visit.admin("/admin/webhooks")?;
    let endpoints = visit.api.webhook_endpoints(&token).await?;
    let page = EndpointsPage {
        chrome: Chrome::of(&visit),
        endpoints,
        form: EndpointForm::default(),
        problem: None,
    };
    render(visit, &page)
}

/// Registers the endpoint and answers with its page, the secret on it this once (a redirect
/// would have to carry the secret somewhere).
pub async fn register(visit: Visit, Form(form): Form<EndpointForm>) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let token = visit.admin("/admin/webhooks")?;
    let registered = visit
        .api
        .register_webhook_endpoint(
            &token,
            form.url.trim(),
            &form.patterns(),
            form.description.trim(),
        )
        .await;
    match registered {
        Ok(created) => {
            let secret = Secret {
                value: created.secret,
                previous_valid_until: None,
            };
            show(visit, &token, created.endpoint.id, Some(secret)).await
        }
        Err(error) => {
            let problem = super::refused(error)?;
            let endpoints = visit.api.webhook_endpoints(&token).await?;
            let page = EndpointsPage {
                chrome: Chrome::of(&visit),
                endpoints,
                form,
                problem: Some(problem),
            };
            with_status(render(visit, &page), StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// A signing secret just made, shown once.
struct Secret {
    value: String,
    /// Until when the secrets it replaced sign too (a rotation), in UTC.
    previous_valid_until: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/webhook.html")]
struct EndpointPage {
    chrome: Chrome,
    endpoint: WebhookEndpoint,
    deliveries: Vec<WebhookDelivery>,
    secret: Option<Secret>,
    overlaps: [(u64, &'static str); 3],
}

async fn show(
    visit: Visit,
    token: &str,
    id: Uuid,
    secret: Option<Secret>,
) -> Result<Response, PageError> {
    let endpoint = visit.api.webhook_endpoint(token, id).await?;
    let deliveries = visit
        .api
        .webhook_deliveries(token, id, DELIVERIES_SHOWN)
        .await?
        .items;
    let page = EndpointPage {
        chrome: Chrome::of(&visit),
        endpoint,
        deliveries,
        secret,
        overlaps: OVERLAPS,
    };
    render(visit, &page)
}

fn endpoint_id(raw: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError::NotFound)
}

pub async fn one(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    let token = visit.admin(&format!("/admin/webhooks/{id}"))?;
    show(visit, &token, id, None).await
}

#[derive(Debug, Deserialize)]
pub struct StateForm {
    csrf: String,
    /// `pause` or `enable`.
    action: String,
}

pub async fn set_state(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<StateForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let id = endpoint_id(&id)?;
    let token = visit.admin(&format!("/admin/webhooks/{id}"))?;
    let enabled = match form.action.as_str() {
        "enable" => true,
        "pause" => false,
        _ => return Err(PageError::NotFound),
    };
    visit
        .api
        .set_webhook_endpoint_enabled(&token, id, enabled)
        .await?;
    Ok(visit.respond(Redirect::to(&format!("/admin/webhooks/{id}"))))
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    csrf: String,
    /// One of [`OVERLAPS`], in seconds.
    overlap: u64,
}

/// A new secret, shown on the page that answers (as at registration).
pub async fn rotate(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let id = endpoint_id(&id)?;
    let token = visit.admin(&format!("/admin/webhooks/{id}"))?;
    if !OVERLAPS.iter().any(|(seconds, _)| *seconds == form.overlap) {
        return Err(PageError::NotFound);
    }
    let rotated = visit
        .api
        .rotate_webhook_secret(&token, id, form.overlap)
        .await?;
    let secret = Secret {
        value: rotated.secret,
        previous_valid_until: Some(
            rotated
                .previous_valid_until
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
        ),
    };
    show(visit, &token, id, Some(secret)).await
}

/// Sends a test event, or removes the endpoint.
pub async fn act(
    visit: Visit,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<FormToken>,
) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    let id = endpoint_id(&id)?;
    let token = visit.admin(&format!("/admin/webhooks/{id}"))?;
    let then = match action.as_str() {
        "test" => {
            visit.api.send_webhook_test(&token, id).await?;
            format!("/admin/webhooks/{id}")
        }
        "delete" => {
            visit.api.delete_webhook_endpoint(&token, id).await?;
            "/admin/webhooks".to_owned()
        }
        _ => return Err(PageError::NotFound),
    };
    Ok(visit.respond(Redirect::to(&then)))
}

pub async fn replay(
    visit: Visit,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<FormToken>,
) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    let (id, delivery) = (endpoint_id(&id)?, endpoint_id(&delivery)?);
    let token = visit.admin(&format!("/admin/webhooks/{id}"))?;
    visit
        .api
        .replay_webhook_delivery(&token, id, delivery)
        .await?;
    Ok(visit.respond(Redirect::to(&format!("/admin/webhooks/{id}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_read_whatever_separates_them() {
        let form = EndpointForm {
            event_types: "commercex.order.*, commercex.payment.*\ncommercex.user.registered.v1 "
                .into(),
            ..EndpointForm::default()
        };
        assert_eq!(
            form.patterns(),
            [
                "commercex.order.*",
                "commercex.payment.*",
                "commercex.user.registered.v1"
            ]
        );
        assert!(EndpointForm::default().patterns().is_empty());
    }
}
