//! Browsing: the catalog with search, filters and pages, and a product's own page.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use client::{ApiError, Product};
use serde::Deserialize;
use uuid::Uuid;

use platform::money::{Currency, Money};

use super::{Chrome, money, query_string, render};
use crate::error::PageError;
use crate::session::Visit;

/// The catalog's filters as the page's form sends them; empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Browse {
    q: String,
    category: String,
    /// Prices in major units (`19.99`), as a shopper writes them.
    min_price: String,
    max_price: String,
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

/// A price bound as the API takes it (minor units), from what the shopper wrote in major
/// units; `Err` with what is wrong.
fn minor_units(text: &str) -> Result<String, &'static str> {
    // The shop's prices are in cents; a bound is only compared, so any two-decimal currency
    // reads the same.
    let eur = Currency::parse("EUR")?;
    match text.trim() {
        "" => Ok(String::new()),
        "0" => Ok("0".to_owned()),
        bound => Money::parse_major(bound, eur)
            .map(|money| money.amount().to_string())
            .map_err(|_| "a price is a number such as 20 or 19.99"),
    }
}

impl Browse {
    fn api_query(&self) -> Result<String, &'static str> {
        let (min, max) = (minor_units(&self.min_price)?, minor_units(&self.max_price)?);
        let in_stock = if self.in_stock.is_some() { "true" } else { "" };
        Ok(query_string([
            ("q", self.q.as_str()),
            ("category", &self.category),
            ("min_price", &min),
            ("max_price", &max),
            ("sort", &self.sort),
            ("cursor", &self.cursor),
            ("in_stock", in_stock),
            ("limit", "12"),
        ]))
    }

    /// This page's address with another cursor: the link to the next page.
    fn with_cursor(&self, cursor: &str) -> String {
        let in_stock = if self.in_stock.is_some() { "on" } else { "" };
        let query = query_string([
            ("q", self.q.as_str()),
            ("category", &self.category),
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
            ("sort", &self.sort),
            ("in_stock", in_stock),
            ("cursor", cursor),
        ]);
        format!("/?{query}")
    }

    /// Whether the visitor asked for anything but the whole catalog's first page.
    fn narrowed(&self) -> bool {
        [
            &self.q,
            &self.category,
            &self.min_price,
            &self.max_price,
            &self.cursor,
        ]
        .iter()
        .any(|value| !value.trim().is_empty())
            || self.in_stock.is_some()
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
    /// The whole catalog was asked for (an empty result means an empty catalog).
    everything: bool,
    chrome: Chrome,
    browse: Browse,
    sorts: Vec<SortChoice>,
    products: Vec<ProductView>,
    next_page: Option<String>,
    /// Why the search could not be run (the API refused a filter).
    problem: Option<String>,
}

pub async fn home(visit: Visit, Query(browse): Query<Browse>) -> Result<Response, PageError> {
    let (products, next_page, problem) = match browse.api_query() {
        Err(problem) => (Vec::new(), None, Some(problem.to_owned())),
        Ok(query) => match visit.api.products(&query).await {
            Ok(page) => (
                page.items.into_iter().map(ProductView::from).collect(),
                page.next_cursor.map(|cursor| browse.with_cursor(&cursor)),
                None,
            ),
            Err(ApiError::Status { status, problem })
                if status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                let detail = problem
                    .errors
                    .first()
                    .map_or(problem.detail.clone(), |error| error.detail.clone());
                (Vec::new(), None, Some(detail))
            }
            Err(error) => return Err(error.into()),
        },
    };
    let page = Home {
        everything: !browse.narrowed(),
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

#[cfg(test)]
mod tests {
    use super::minor_units;

    #[test]
    fn price_bounds_are_read_in_major_units() {
        assert_eq!(minor_units("20"), Ok("2000".to_owned()));
        assert_eq!(minor_units(" 19.99 "), Ok("1999".to_owned()));
        assert_eq!(minor_units(""), Ok(String::new()));
        assert_eq!(minor_units("0"), Ok("0".to_owned()));
        assert!(minor_units("cheap").is_err() && minor_units("-5").is_err());
    }
}
