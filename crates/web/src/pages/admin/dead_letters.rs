//! Dead letters: per service, the event and the error it died of; replay it (the consumer
//! takes it again) or discard it (kept as a record).

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::response::{Redirect, Response};
use client::DeadLetter;
use serde::Deserialize;
use uuid::Uuid;

use super::super::{Chrome, render};
use super::SERVICES;
use crate::error::PageError;
use crate::session::Visit;

struct LetterView {
    letter: DeadLetter,
    /// The event as delivered, pretty-printed.
    event: String,
}

#[derive(Template)]
#[template(path = "admin/dead_letters.html")]
struct DeadLettersPage {
    chrome: Chrome,
    queues: Vec<(&'static str, Vec<LetterView>)>,
}

pub async fn list(visit: Visit) -> Result<Response, PageError> {
    let token = visit.admin("/admin/dead-letters")?;
    let mut queues = Vec::new();
    for service in SERVICES {
        let letters = visit.api.dead_letters(&token, service).await?;
        let views = letters
            .into_iter()
            .map(|letter| LetterView {
                event: serde_json::to_string_pretty(&letter.envelope).unwrap_or_default(),
                letter,
            })
            .collect();
        queues.push((service, views));
    }
    let page = DeadLettersPage {
        chrome: Chrome::of(&visit),
        queues,
    };
    render(visit, &page)
}

#[derive(Debug, Deserialize)]
pub struct SettleForm {
    csrf: String,
    /// `replay` or `discard`.
    action: String,
}

pub async fn settle(
    visit: Visit,
    Path((service, id)): Path<(String, String)>,
    Form(form): Form<SettleForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let token = visit.admin("/admin/dead-letters")?;
    let service = SERVICES
        .into_iter()
        .find(|known| *known == service)
        .ok_or(PageError::NotFound)?;
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let replay = match form.action.as_str() {
        "replay" => true,
        "discard" => false,
        _ => return Err(PageError::NotFound),
    };
    match visit
        .api
        .settle_dead_letter(&token, service, id, replay)
        .await
    {
        Ok(_) => {}
        // Settled already (another operator, a second click): the list says how.
        Err(error) if error.status() == Some(http::StatusCode::CONFLICT) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(visit.respond(Redirect::to("/admin/dead-letters")))
}
