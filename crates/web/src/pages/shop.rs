//! Browsing: the catalog with search, filters and pages, and a product's own page.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use client::{ApiError, Product};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, money, render};
use crate::error::PageError;
use crate::session::Visit;

/// The catalog's filters as the page's form sends them; empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Browse {
    q: String,
    category: String,
    sort: String,
    in_stock: Option<String>,
    cursor: String,
}

/// The ways a visitor can order the catalog, as (API value, label).
const SORTS: [(&str, &str); 5] = [
    ("", "Best match / newest"),
    ("price", "Price, low to high"),
    ("-price", "Price, high to low"),
    ("name", "Name"),
    ("-created_at", "Newest"),
];

impl Browse {
    fn api_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("category", &self.category),
            ("sort", &self.sort),
            ("cursor", &self.cursor),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        if self.in_stock.is_some() {
            query.append_pair("in_stock", "true");
        }
        query.append_pair("limit", "12");
        query.finish()
    }

    /// This page's address with another cursor: the link to the next page.
    fn with_cursor(&self, cursor: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("category", &self.category),
            ("sort", &self.sort),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        if self.in_stock.is_some() {
            query.append_pair("in_stock", "on");
        }
        query.append_pair("cursor", cursor);
        format!("/?{}", query.finish())
    }
}

/// A product as a card in a listing, or on its own page.
pub struct ProductView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: String,
    pub available: i64,
}

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        Self {
            id: product.id,
            price: money(product.price.amount, &product.price.currency),
            name: product.name,
            description: product.description,
            category: product.category,
            available: product.available,
        }
    }
}

/// A way to order the catalog, and whether it is the one chosen.
struct SortChoice {
    value: &'static str,
    label: &'static str,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "shop/home.html")]
struct Home {
    chrome: Chrome,
    browse: Browse,
    sorts: Vec<SortChoice>,
    products: Vec<ProductView>,
    next_page: Option<String>,
    /// Why the search could not be run (the API refused a filter).
    problem: Option<String>,
}

pub async fn home(visit: Visit, Query(browse): Query<Browse>) -> Result<Response, PageError> {
    let (products, next_page, problem) = match visit.api.products(&browse.api_query()).await {
        Ok(page) => (
            page.items.into_iter().map(ProductView::from).collect(),
            page.next_cursor.map(|cursor| browse.with_cursor(&cursor)),
            None,
        ),
        Err(ApiError::Status { status, problem }) if status == StatusCode::UNPROCESSABLE_ENTITY => {
            let detail = problem
                .errors
                .first()
                .map_or(problem.detail.clone(), |error| error.detail.clone());
            (Vec::new(), None, Some(detail))
        }
        Err(error) => return Err(error.into()),
    };
    let page = Home {
        chrome: Chrome::of(&visit),
        sorts: SORTS
            .iter()
            .map(|&(value, label)| SortChoice {
                value,
                label,
                chosen: browse.sort == value,
            })
            .collect(),
        browse,
        products,
        next_page,
        problem,
    };
    render(visit, &page)
}

#[derive(Template)]
#[template(path = "shop/product.html")]
struct ProductPage {
    chrome: Chrome,
    product: ProductView,
}

pub async fn product(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let product = visit.api.product(id).await?;
    if product.archived {
        return Err(PageError::NotFound);
    }
    let page = ProductPage {
        chrome: Chrome::of(&visit),
        product: product.into(),
    };
    render(visit, &page)
}
