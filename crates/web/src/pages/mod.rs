//! The pages, one module per part of the shop. Each handler reads the visit, asks the API,
//! and renders a template from view types that hold exactly what the page shows.

pub mod account;
pub mod admin;
pub mod cart;
pub mod checkout;
pub mod orders;
pub mod shop;

use askama::Template;
use axum::response::{Html, Response};
use platform::money::{Currency, Money};

use crate::error::PageError;
use crate::session::Visit;

/// A form that carries nothing but the session's form token (a button that acts).
#[derive(Debug, serde::Deserialize)]
pub struct FormToken {
    csrf: String,
}

impl FormToken {
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// What every page's frame shows: who is signed in, the cart, and the form token.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub signed_in_as: Option<String>,
    pub admin: bool,
    pub cart_units: u32,
    pub csrf: String,
}

impl Chrome {
    pub fn of(visit: &Visit) -> Self {
        let user = visit.session.user.as_ref();
        Self {
            signed_in_as: user.map(|user| user.name.clone()),
            admin: user.is_some_and(|user| user.admin),
            cart_units: visit.session.cart.units(),
            csrf: visit.session.csrf().to_owned(),
        }
    }

    /// For pages shown without a visit (errors).
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// Renders `template` and answers with it, with the session's cookie if it changed.
pub fn render(visit: Visit, template: &impl Template) -> Result<Response, PageError> {
    let html = template.render()?;
    Ok(visit.respond(Html(html)))
}

/// `19.99 EUR`, or the raw figures if the currency is not one we know.
pub fn money(amount: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(currency) => Money::new(amount, currency).to_string(),
        Err(_) => format!("{amount} {currency}"),
    }
}

/// A query string of the pairs whose value is not blank (values trimmed).
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.trim().is_empty() {
            query.append_pair(name, value.trim());
        }
    }
    query.finish()
}
