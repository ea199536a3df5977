//! Checkout: where to send it, which (sandbox) card pays, and placing the order.

use askama::Template;
use axum::Form;
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use client::ShippingAddress;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::account::with_status;
use super::cart::PricedCart;
use super::{Chrome, render};
use crate::error::PageError;
use crate::session::Visit;

/// The sandbox provider's cards: (token, name, what happens).
const CARDS: [(&str, &str, &str); 5] = [
    (
        "tok_visa",
        "Visa that pays",
        "The payment is captured and the order confirmed.",
    ),
    (
        "tok_chargeDeclined",
        "Declined card",
        "The bank declines: the order is cancelled and its stock released.",
    ),
    (
        "tok_insufficientFunds",
        "Card without funds",
        "Declined for insufficient funds: the order is cancelled.",
    ),
    (
        "tok_processingError",
        "Unreliable processor",
        "The provider fails twice, then approves: the retries are in the order's timeline.",
    ),
    (
        "tok_pending",
        "Provider that never answers",
        "No decision ever comes: the order is cancelled when the saga's deadline passes.",
    ),
];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckoutForm {
    csrf: String,
    /// Makes a form sent twice (a double click, a retried post) place one order.
    key: String,
    card: String,
    name: String,
    line1: String,
    line2: String,
    city: String,
    postal_code: String,
    country: String,
}

/// What is wrong with each field, as the API said.
#[derive(Debug, Default)]
struct FieldProblems {
    name: Option<String>,
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
    card: Option<String>,
}

/// A card to pick, and whether it is the one picked.
struct CardChoice {
    token: &'static str,
    name: &'static str,
    what: &'static str,
    picked: bool,
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage {
    chrome: Chrome,
    cart: PricedCart,
    cards: Vec<CardChoice>,
    form: CheckoutForm,
    problems: FieldProblems,
    problem: Option<String>,
}

pub async fn form(visit: Visit) -> Result<Response, PageError> {
    let name = visit.signed_in("/checkout")?.name.clone();
    let form = CheckoutForm {
        key: Uuid::new_v4().to_string(),
        card: CARDS[0].0.to_owned(),
        name,
        ..CheckoutForm::default()
    };
    show(visit, form, FieldProblems::default(), None, StatusCode::OK).await
}

async fn show(
    mut visit: Visit,
    form: CheckoutForm,
    problems: FieldProblems,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let mut cart = visit.session.cart.clone();
    let priced = PricedCart::of(&mut cart, &visit.api).await?;
    if priced.gone > 0 {
        visit.session_mut().cart = cart;
    }
    if priced.lines.is_empty() {
        return Err(PageError::EmptyCart);
    }
    let page = CheckoutPage {
        chrome: Chrome::of(&visit),
        cart: priced,
        cards: CARDS
            .iter()
            .map(|&(token, name, what)| CardChoice {
                token,
                name,
                what,
                picked: form.card == token,
            })
            .collect(),
        form,
        problems,
        problem,
    };
    with_status(render(visit, &page), status)
}

pub async fn place(
    mut visit: Visit,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let token = visit.signed_in("/checkout")?.access_token().to_owned();
    let items: Vec<_> = visit
        .session
        .cart
        .lines()
        .iter()
        .map(|line| json!({"product_id": line.product_id, "quantity": line.quantity}))
        .collect();
    let optional = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
    let address = ShippingAddress {
        name: form.name.trim().to_owned(),
        line1: form.line1.trim().to_owned(),
        line2: optional(&form.line2),
        city: form.city.trim().to_owned(),
        postal_code: form.postal_code.trim().to_owned(),
        country: form.country.trim().to_uppercase(),
    };
    let body = json!({"items": items, "payment_token": form.card, "shipping_address": address});
    let key = Uuid::parse_str(&form.key).map_err(|_| PageError::StaleForm)?;
    match visit.api.place_order(&token, &key.to_string(), &body).await {
        Ok(order) => {
            visit.session_mut().cart.clear();
            Ok(visit.respond(Redirect::to(&format!("/orders/{}", order.id))))
        }
        Err(error) if error.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let fields = error.problem().cloned().unwrap_or_default();
            let about = |field: &str| {
                fields
                    .about(&format!("/shipping_address/{field}"))
                    .map(str::to_owned)
            };
            let problems = FieldProblems {
                name: about("name"),
                line1: about("line1"),
                line2: about("line2"),
                city: about("city"),
                postal_code: about("postal_code"),
                country: about("country"),
                card: fields.about("/payment_token").map(str::to_owned),
            };
            let problem = Some(match fields.errors.first() {
                Some(first) if !first.field.starts_with("/shipping_address") => {
                    first.detail.clone()
                }
                _ => "Some fields need another look.".to_owned(),
            });
            show(
                visit,
                form,
                problems,
                problem,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}
