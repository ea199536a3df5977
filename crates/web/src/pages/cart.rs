//! The cart: adding from a product page, changing quantities, and what it all costs now.

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::response::{Redirect, Response};
use client::{ApiClient, Product};
use serde::Deserialize;
use uuid::Uuid;

use super::shop::ProductView;
use super::{Chrome, money, render};
use crate::cart::{Cart, CartError};
use crate::error::PageError;
use crate::session::Visit;

/// A cart line with what the catalog says of its product today.
pub struct LineView {
    pub product: ProductView,
    pub quantity: u32,
    pub line_total: String,
}

/// The cart priced from the catalog: its lines, the total, and products that can no longer
/// be bought (taken out of the cart).
pub struct PricedCart {
    pub lines: Vec<LineView>,
    pub total: Option<String>,
    pub gone: usize,
}

impl PricedCart {
    pub async fn of(cart: &mut Cart, api: &ApiClient) -> Result<Self, PageError> {
        let products =
            futures::future::join_all(cart.lines().iter().map(|line| api.product(line.product_id)))
                .await;
        let mut lines = Vec::new();
        let mut gone = Vec::new();
        let mut sum: Option<(i64, String)> = None;
        let mut mixed = false;
        for (line, product) in cart.lines().iter().zip(products) {
            let product: Product = match product {
                Ok(product) if !product.archived => product,
                Ok(_) => {
                    gone.push(line.product_id);
                    continue;
                }
                Err(error) if error.status() == Some(http::StatusCode::NOT_FOUND) => {
                    gone.push(line.product_id);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let line_total = product.price.amount * i64::from(line.quantity);
            match &mut sum {
                None => sum = Some((line_total, product.price.currency.clone())),
                Some((amount, currency)) if *currency == product.price.currency => {
                    *amount += line_total;
                }
                Some(_) => mixed = true,
            }
            lines.push(LineView {
                line_total: money(line_total, &product.price.currency),
                quantity: line.quantity,
                product: product.into(),
            });
        }
        for product in &gone {
            cart.set(*product, 0).map_err(PageError::internal)?;
        }
        Ok(Self {
            lines,
            total: sum
                .filter(|_| !mixed)
                .map(|(amount, currency)| money(amount, &currency)),
            gone: gone.len(),
        })
    }
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage {
    chrome: Chrome,
    cart: PricedCart,
    problem: Option<String>,
}

pub async fn show(mut visit: Visit) -> Result<Response, PageError> {
    let mut cart = visit.session.cart.clone();
    let priced = PricedCart::of(&mut cart, &visit.api).await?;
    if priced.gone > 0 {
        visit.session_mut().cart = cart;
    }
    let page = CartPage {
        chrome: Chrome::of(&visit),
        cart: priced,
        problem: None,
    };
    render(visit, &page)
}

#[derive(Debug, Deserialize)]
pub struct AddToCart {
    csrf: String,
    product_id: Uuid,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

pub async fn add(mut visit: Visit, Form(form): Form<AddToCart>) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let added = visit.session_mut().cart.add(form.product_id, form.quantity);
    answer(visit, added).await
}

#[derive(Debug, Deserialize)]
pub struct ChangeLine {
    csrf: String,
    quantity: u32,
}

pub async fn update(
    mut visit: Visit,
    Path(product_id): Path<String>,
    Form(form): Form<ChangeLine>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let product_id = Uuid::parse_str(&product_id).map_err(|_| PageError::NotFound)?;
    let changed = visit.session_mut().cart.set(product_id, form.quantity);
    answer(visit, changed).await
}

/// To the cart after a change; the cart with the reason when the change was refused.
async fn answer(mut visit: Visit, change: Result<(), CartError>) -> Result<Response, PageError> {
    match change {
        Ok(()) => Ok(visit.respond(Redirect::to("/cart"))),
        Err(refused) => {
            let mut cart = visit.session.cart.clone();
            let priced = PricedCart::of(&mut cart, &visit.api).await?;
            visit.session_mut().cart = cart;
            let page = CartPage {
                chrome: Chrome::of(&visit),
                cart: priced,
                problem: Some(refused.to_string()),
            };
            render(visit, &page).map(|mut response| {
                *response.status_mut() = http::StatusCode::UNPROCESSABLE_ENTITY;
                response
            })
        }
    }
}
