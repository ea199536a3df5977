//! Every customer's orders: a search by status, customer and date, and one order with its
//! saga's steps, its payments and a cancel that refunds and restocks.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use client::Payment;
use serde::Deserialize;
use uuid::Uuid;

use super::super::orders::{OrderView, cancel_then_show};
use super::super::{Chrome, FormToken, money, query_string, render};
use crate::error::PageError;
use crate::session::Visit;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Search {
    status: String,
    email: String,
    from: String,
    to: String,
    cursor: String,
}

impl Search {
    /// The API's query for this search, for `customer` when the email named one.
    fn query(&self, customer: Option<Uuid>) -> String {
        let customer = customer.map(|id| id.to_string()).unwrap_or_default();
        query_string([
            ("status", self.status.as_str()),
            ("placed_from", &self.from),
            ("placed_to", &self.to),
            ("cursor", &self.cursor),
            ("customer_id", &customer),
        ])
    }

    fn next_page(&self, cursor: Uuid) -> String {
        let next = query_string([
            ("status", self.status.as_str()),
            ("email", &self.email),
            ("from", &self.from),
            ("to", &self.to),
            ("cursor", &cursor.to_string()),
        ]);
        format!("/admin/orders?{next}")
    }
}

/// An order in the list, with its customer's email.
struct Row {
    order: OrderView,
    email: String,
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage {
    chrome: Chrome,
    search: Search,
    orders: Vec<Row>,
    next_page: Option<String>,
    problem: Option<String>,
}

pub async fn list(visit: Visit, Query(search): Query<Search>) -> Result<Response, PageError> {
    let token = visit.admin("/admin/orders")?;
    let email = search.email.trim().to_lowercase();
    let customer = if email.is_empty() {
        None
    } else {
        let accounts = visit.api.accounts(&token, &email, None).await?;
        match accounts.items.into_iter().find(|a| a.email == email) {
            Some(account) => Some(account.id),
            None => {
                let page = OrdersPage {
                    chrome: Chrome::of(&visit),
                    search,
                    orders: Vec::new(),
                    next_page: None,
                    problem: Some(format!("No account has the email {email}.")),
                };
                return render(visit, &page);
            }
        }
    };
    let (orders, next_page, problem) = match visit
        .api
        .search_orders(&token, &search.query(customer))
        .await
    {
        Ok(page) => {
            let next_page = page.next_cursor.map(|cursor| search.next_page(cursor));
            (
                with_emails(&visit, &token, page.items).await?,
                next_page,
                None,
            )
        }
        Err(error) if error.status() == Some(http::StatusCode::UNPROCESSABLE_ENTITY) => {
            let detail = error
                .problem()
                .and_then(|p| p.errors.first().map(|e| e.detail.clone()))
                .unwrap_or_default();
            (Vec::new(), None, Some(detail))
        }
        Err(error) => return Err(error.into()),
    };
    let page = OrdersPage {
        chrome: Chrome::of(&visit),
        search,
        orders,
        next_page,
        problem,
    };
    render(visit, &page)
}

/// The orders with their customers' emails, looked up in one call.
async fn with_emails(
    visit: &Visit,
    token: &str,
    orders: Vec<client::Order>,
) -> Result<Vec<Row>, PageError> {
    let mut customers: Vec<Uuid> = orders.iter().map(|order| order.customer_id).collect();
    customers.sort_unstable();
    customers.dedup();
    let accounts = visit.api.accounts_by_id(token, &customers).await?;
    Ok(orders
        .into_iter()
        .map(|order| {
            let email = accounts
                .iter()
                .find(|account| account.id == order.customer_id)
                .map_or_else(
                    || order.customer_id.to_string(),
                    |account| account.email.clone(),
                );
            Row {
                order: OrderView::new(order, Vec::new()),
                email,
            }
        })
        .collect())
}

/// A payment as the console shows it.
struct PaymentView {
    amount: String,
    status: String,
    failure_reason: Option<String>,
    attempts: Vec<(String, String, String, String)>,
}

impl From<Payment> for PaymentView {
    fn from(payment: Payment) -> Self {
        Self {
            amount: money(payment.amount.amount, &payment.amount.currency),
            status: payment.status,
            failure_reason: payment.failure_reason,
            attempts: payment
                .attempts
                .into_iter()
                .map(|a| {
                    (
                        a.at.format("%H:%M:%S").to_string(),
                        a.operation,
                        a.outcome,
                        a.detail,
                    )
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/order.html")]
struct OrderPage {
    chrome: Chrome,
    order: OrderView,
    /// The customer's email (their id, if the account is gone).
    customer: String,
    payments: Vec<PaymentView>,
}

pub async fn one(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let token = visit.admin(&format!("/admin/orders/{id}"))?;
    let order = visit
        .api
        .order(&token, id, std::time::Duration::ZERO)
        .await?;
    let steps = visit.api.timeline(&token, id).await?;
    let payments = visit.api.payments(&token, id).await?;
    let customer = with_emails(&visit, &token, vec![order.clone()])
        .await?
        .pop()
        .map(|row| row.email)
        .unwrap_or_default();
    let page = OrderPage {
        chrome: Chrome::of(&visit),
        customer,
        order: OrderView::new(order, steps),
        payments: payments.into_iter().map(PaymentView::from).collect(),
    };
    render(visit, &page)
}

/// Cancels for the customer: a confirmed order is refunded and restocked.
pub async fn cancel(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<FormToken>,
) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let token = visit.admin(&format!("/admin/orders/{id}"))?;
    cancel_then_show(visit, &token, id, &format!("/admin/orders/{id}")).await
}
