//! Accounts: find them by email or name, make one an administrator or no longer one.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use client::Account;
use serde::Deserialize;
use uuid::Uuid;

use super::super::account::with_status;
use super::super::{Chrome, query_string, render};
use crate::error::PageError;
use crate::session::Visit;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Find {
    q: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin/customers.html")]
struct CustomersPage {
    chrome: Chrome,
    q: String,
    accounts: Vec<Account>,
    next_page: Option<String>,
    problem: Option<String>,
}

async fn page(visit: Visit, find: Find, problem: Option<String>) -> Result<Response, PageError> {
    let token = visit.admin("/admin/customers")?;
    let after = Uuid::parse_str(&find.cursor).ok();
    let found = visit.api.accounts(&token, &find.q, after).await?;
    let next_page = found.next_cursor.map(|cursor| {
        let next = query_string([("q", find.q.as_str()), ("cursor", &cursor.to_string())]);
        format!("/admin/customers?{next}")
    });
    let status = match problem {
        Some(_) => StatusCode::CONFLICT,
        None => StatusCode::OK,
    };
    let page = CustomersPage {
        chrome: Chrome::of(&visit),
        q: find.q,
        accounts: found.items,
        next_page,
        problem,
    };
    with_status(render(visit, &page), status)
}

pub async fn list(visit: Visit, Query(find): Query<Find>) -> Result<Response, PageError> {
    page(visit, find, None).await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    csrf: String,
    /// `true` to make an administrator, `false` to make a customer only.
    admin: bool,
    #[serde(default)]
    q: String,
}

pub async fn set_role(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let token = visit.admin("/admin/customers")?;
    let find = Find {
        q: form.q,
        cursor: String::new(),
    };
    match visit.api.set_admin(&token, id, form.admin).await {
        Ok(_) => {
            let back = query_string([("q", find.q.as_str())]);
            Ok(visit.respond(Redirect::to(&format!("/admin/customers?{back}"))))
        }
        Err(error) if error.status() == Some(StatusCode::CONFLICT) => {
            let problem = error.problem().map(|p| p.detail.clone());
            page(visit, find, problem).await
        }
        Err(error) => Err(error.into()),
    }
}
