//! Products and their stock: the catalog as an operator sees it, a product created, edited
//! (a save against a version someone else changed is shown as a conflict, not lost) and
//! archived, and its stock adjusted with the ledger of every movement.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use client::{LedgerEntry, Product, Stock};
use platform::money::{Currency, Money};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::account::with_status;
use super::super::shop::ProductView;
use super::super::{Chrome, FormToken, query_string, render};
use super::refused;
use crate::error::PageError;
use crate::session::Visit;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Find {
    q: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin/products.html")]
struct ProductsPage {
    chrome: Chrome,
    q: String,
    products: Vec<ProductView>,
    next_page: Option<String>,
}

pub async fn list(visit: Visit, Query(find): Query<Find>) -> Result<Response, PageError> {
    visit.admin("/admin/products")?;
    let query = query_string([
        ("q", find.q.as_str()),
        ("cursor", &find.cursor),
        ("limit", "50"),
    ]);
    let page = visit.api.products(&query).await?;
    let next_page = page.next_cursor.map(|cursor| {
        let next = query_string([("q", find.q.as_str()), ("cursor", &cursor)]);
        format!("/admin/products?{next}")
    });
    let page = ProductsPage {
        chrome: Chrome::of(&visit),
        q: find.q,
        products: page.items.into_iter().map(ProductView::from).collect(),
        next_page,
    };
    render(visit, &page)
}

/// The product form's fields, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProductForm {
    csrf: String,
    /// The version the form was filled from (`ETag`).
    version: String,
    sku: String,
    name: String,
    description: String,
    price: String,
    currency: String,
    category: String,
}

impl ProductForm {
    fn of(product: &Product, version: String) -> Self {
        let currency = Currency::parse(&product.price.currency);
        let price = currency.map_or(product.price.amount.to_string(), |currency| {
            let shown = Money::new(product.price.amount, currency).to_string();
            shown.split(' ').next().unwrap_or_default().to_owned()
        });
        Self {
            csrf: String::new(),
            version,
            sku: product.sku.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            price,
            currency: product.price.currency.clone(),
            category: product.category.clone(),
        }
    }

    /// The price in minor units, or what is wrong with it.
    fn amount(&self) -> Result<i64, String> {
        let currency = Currency::parse(self.currency.trim()).map_err(str::to_owned)?;
        Money::parse_major(&self.price, currency)
            .map(|money| money.amount())
            .map_err(str::to_owned)
    }

    /// The fields as the API takes them; `None` for the price when it does not read.
    fn body(&self) -> (Value, Option<String>) {
        let (amount, problem) = match self.amount() {
            Ok(amount) => (amount, None),
            Err(problem) => (0, Some(problem)),
        };
        let body = json!({
            "name": self.name.trim(),
            "description": self.description.trim(),
            "price": {"amount": amount, "currency": self.currency.trim()},
            "category": self.category.trim(),
        });
        (body, problem)
    }
}

#[derive(Template)]
#[template(path = "admin/product.html")]
struct ProductPage {
    chrome: Chrome,
    /// `None` for a product not created yet.
    id: Option<Uuid>,
    archived: bool,
    form: ProductForm,
    problem: Option<String>,
    /// Set when the save met a newer version: what that version says.
    conflict: Option<ProductForm>,
    stock: Option<Stock>,
    ledger: Vec<LedgerEntry>,
}

pub async fn new_form(visit: Visit) -> Result<Response, PageError> {
    visit.admin("/admin/products/new")?;
    let page = ProductPage {
        chrome: Chrome::of(&visit),
        id: None,
        archived: false,
        form: ProductForm {
            currency: "EUR".to_owned(),
            ..ProductForm::default()
        },
        problem: None,
        conflict: None,
        stock: None,
        ledger: Vec::new(),
    };
    render(visit, &page)
}

pub async fn create(visit: Visit, Form(form): Form<ProductForm>) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let token = visit.admin("/admin/products/new")?;
    let (mut body, price_problem) = form.body();
    body["sku"] = json!(form.sku.trim());
    let problem = match price_problem {
        Some(problem) => problem,
        None => match visit.api.create_product(&token, &body).await {
            Ok(id) => return Ok(visit.respond(Redirect::to(&format!("/admin/products/{id}")))),
            Err(error) => refused(error)?,
        },
    };
    let page = ProductPage {
        chrome: Chrome::of(&visit),
        id: None,
        archived: false,
        form,
        problem: Some(problem),
        conflict: None,
        stock: None,
        ledger: Vec::new(),
    };
    with_status(render(visit, &page), StatusCode::UNPROCESSABLE_ENTITY)
}

/// The product's page: its form, its stock, its ledger; `form` and `problem` when a save
/// was refused.
async fn show(
    visit: Visit,
    id: Uuid,
    edited: Option<(ProductForm, String)>,
    conflict: bool,
) -> Result<Response, PageError> {
    let token = visit.admin(&format!("/admin/products/{id}"))?;
    let (product, version) = visit.api.product_version(&token, id).await?;
    let current = ProductForm::of(&product, version.clone());
    let stock = visit.api.stock(id).await.ok();
    let ledger = visit
        .api
        .ledger(&token, id)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let (form, problem, conflict) = match edited {
        // The newer version's tag goes with the visitor's values: saving again overwrites it
        // knowingly.
        Some((mut form, problem)) if conflict => {
            form.version = version;
            (form, Some(problem), Some(current))
        }
        Some((form, problem)) => (form, Some(problem), None),
        None => (current, None, None),
    };
    let status = match (&problem, &conflict) {
        (_, Some(_)) => StatusCode::CONFLICT,
        (Some(_), None) => StatusCode::UNPROCESSABLE_ENTITY,
        (None, None) => StatusCode::OK,
    };
    let page = ProductPage {
        chrome: Chrome::of(&visit),
        id: Some(id),
        archived: product.archived,
        form,
        problem,
        conflict,
        stock,
        ledger,
    };
    with_status(render(visit, &page), status)
}

fn product_id(raw: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError::NotFound)
}

pub async fn edit_form(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    show(visit, product_id(&id)?, None, false).await
}

pub async fn update(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<ProductForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let id = product_id(&id)?;
    let token = visit.admin(&format!("/admin/products/{id}"))?;
    let (body, price_problem) = form.body();
    if let Some(problem) = price_problem {
        return show(visit, id, Some((form, problem)), false).await;
    }
    match visit
        .api
        .update_product(&token, id, &form.version, &body)
        .await
    {
        Ok(_) => Ok(visit.respond(Redirect::to(&format!("/admin/products/{id}")))),
        Err(error) if error.status() == Some(StatusCode::PRECONDITION_FAILED) => {
            let problem = "Someone else saved this product since you opened it. Their version is \
                           shown beside yours; save again to replace it with yours."
                .to_owned();
            show(visit, id, Some((form, problem)), true).await
        }
        Err(error) => {
            let problem = refused(error)?;
            show(visit, id, Some((form, problem)), false).await
        }
    }
}

pub async fn archive(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<FormToken>,
) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    let id = product_id(&id)?;
    let token = visit.admin(&format!("/admin/products/{id}"))?;
    match visit.api.archive_product(&token, id).await {
        Ok(()) => {}
        Err(error) if error.status() == Some(StatusCode::NOT_FOUND) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(visit.respond(Redirect::to(&format!("/admin/products/{id}"))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdjustForm {
    csrf: String,
    delta: String,
    reason: String,
}

/// Adds or removes units; a refused adjustment shows why on the product's page.
pub async fn adjust(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<AdjustForm>,
) -> Result<Response, PageError> {
    visit.check_form(&form.csrf)?;
    let id = product_id(&id)?;
    let token = visit.admin(&format!("/admin/products/{id}"))?;
    let Ok(delta) = form.delta.trim().parse::<i64>() else {
        let problem = "The change is a whole number of units, e.g. 10 or -3.".to_owned();
        return show_stock_problem(visit, id, problem).await;
    };
    match visit
        .api
        .adjust_stock(&token, id, delta, form.reason.trim())
        .await
    {
        Ok(()) => Ok(visit.respond(Redirect::to(&format!("/admin/products/{id}#stock")))),
        Err(error) => {
            let problem = refused(error)?;
            show_stock_problem(visit, id, problem).await
        }
    }
}

async fn show_stock_problem(
    visit: Visit,
    id: Uuid,
    problem: String,
) -> Result<Response, PageError> {
    let token = visit.admin(&format!("/admin/products/{id}"))?;
    let (product, version) = visit.api.product_version(&token, id).await?;
    show(
        visit,
        id,
        Some((
            ProductForm::of(&product, version),
            format!("Stock: {problem}"),
        )),
        false,
    )
    .await
}
