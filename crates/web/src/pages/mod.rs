//! The pages, one module per part of the shop. Each handler reads the visit, asks the API,
//! and renders a template from view types that hold exactly what the page shows.

pub mod account;
pub mod cart;
pub mod checkout;
pub mod orders;
pub mod shop;

use askama::Template;
use axum::response::{Html, Response};
use platform::money::{Currency, Money};

use crate::error::PageError;
use crate::session::Visit;

/// What every page's frame shows: who is signed in, the cart, and the form token.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub signed_in_as: Option<String>,
    pub cart_units: u32,
    pub csrf: String,
}

impl Chrome {
    pub fn of(visit: &Visit) -> Self {
        let user = visit.session.user.as_ref();
        Self {
            signed_in_as: user.map(|user| user.name.clone()),
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
