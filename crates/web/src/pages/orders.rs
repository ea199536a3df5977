//! The visitor's orders: the list, one order with its saga's steps (live while it is
//! pending), and cancelling.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use client::{ApiClient, Order, Step};
use futures::Stream;
use uuid::Uuid;

use super::{Chrome, FormToken, money, render};
use crate::error::PageError;
use crate::session::Visit;

/// How long one live stream runs before the browser reconnects (and the session's token is
/// renewed on the way).
const LIVE_FOR: Duration = Duration::from_secs(120);
/// How long each look at a pending order waits for it to settle (the API's long poll).
const LOOK_EVERY: Duration = Duration::from_secs(1);

pub struct OrderView {
    pub id: Uuid,
    pub status: String,
    pub status_label: &'static str,
    /// Why it was cancelled, in words; `reason_code` as the API says it.
    pub reason: Option<String>,
    pub reason_code: Option<String>,
    pub total: String,
    pub placed_at: String,
    pub lines: Vec<(String, i64, String)>,
    pub ship_to: String,
    pub steps: Vec<StepView>,
}

pub struct StepView {
    pub label: String,
    pub detail: String,
    pub at: String,
}

impl OrderView {
    pub fn new(order: Order, steps: Vec<Step>) -> Self {
        let currency = order.currency.clone();
        let address = &order.shipping_address;
        Self {
            id: order.id,
            status_label: status_label(&order.status),
            reason: order.cancel_reason.as_deref().map(reason_in_words),
            reason_code: order.cancel_reason.clone(),
            total: money(order.total, &currency),
            placed_at: order.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            ship_to: format!(
                "{}, {}, {} {}, {}",
                address.name, address.line1, address.postal_code, address.city, address.country
            ),
            lines: order
                .items
                .iter()
                .map(|line| {
                    (
                        line.name.clone(),
                        line.quantity,
                        money(line.line_total, &currency),
                    )
                })
                .collect(),
            status: order.status,
            steps: steps
                .into_iter()
                .map(|step| {
                    let label = step_label(&step.step);
                    StepView {
                        // The API's details are written for operators; a step the page has
                        // no words for is shown with them.
                        detail: if label.is_none() {
                            step.detail
                        } else {
                            String::new()
                        },
                        label: label.unwrap_or(step.step),
                        at: step.at.format("%H:%M:%S").to_string(),
                    }
                })
                .collect(),
        }
    }

    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }

    pub fn can_cancel(&self) -> bool {
        self.status != "cancelled"
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "pending" => "Being processed",
        "confirmed" => "Confirmed",
        "cancelled" => "Cancelled",
        _ => "Unknown",
    }
}

/// Why an order was cancelled, in words a customer reads.
fn reason_in_words(reason: &str) -> String {
    match reason {
        "out_of_stock" => "Some items were out of stock.",
        "payment_declined" => "The payment was declined.",
        "reservation_expired" => "The items were held for you, but the payment came too late.",
        "cancelled_by_customer" => "You cancelled it.",
        "cancelled_by_admin" => "The shop cancelled it; anything paid is refunded.",
        "timed_out" => "It could not be completed in time.",
        other => return format!("Cancelled ({other})."),
    }
    .to_owned()
}

/// A saga step in words a customer reads, for the steps there are words for.
fn step_label(step: &str) -> Option<String> {
    let label = match step {
        "placed" => "Order placed",
        "stock_reserved" => "Items reserved for you",
        "confirmed" => "Payment captured, order confirmed",
        "cancelled" => "Cancelled",
        "refund_requested" => "Refund requested",
        "refunded" => "Refunded",
        _ => return None,
    };
    Some(label.to_owned())
}

async fn view(
    api: &ApiClient,
    token: &str,
    id: Uuid,
    wait: Duration,
) -> Result<OrderView, PageError> {
    let mut order = api.order(token, id, wait).await?;
    let steps = api.timeline(token, id).await?;
    // The saga may have ended between the two reads (the status and its step are written in
    // one transaction): the status shown goes with the steps shown.
    let ended = |step: &Step| matches!(step.step.as_str(), "confirmed" | "cancelled");
    if order.is_pending() && steps.iter().any(ended) {
        order = api.order(token, id, Duration::ZERO).await?;
    }
    Ok(OrderView::new(order, steps))
}

fn order_id(raw: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError::NotFound)
}

#[derive(Template)]
#[template(path = "orders/list.html")]
struct MyOrders {
    chrome: Chrome,
    orders: Vec<OrderView>,
}

pub async fn mine(visit: Visit) -> Result<Response, PageError> {
    let token = visit.signed_in("/orders")?.access_token().to_owned();
    let page = visit.api.orders(&token, None).await?;
    let orders = page
        .items
        .into_iter()
        .map(|order| OrderView::new(order, Vec::new()))
        .collect();
    let page = MyOrders {
        chrome: Chrome::of(&visit),
        orders,
    };
    render(visit, &page)
}

#[derive(Template)]
#[template(path = "orders/one.html")]
struct OnePage {
    chrome: Chrome,
    order: OrderView,
}

#[derive(Template)]
#[template(path = "orders/progress.html")]
struct Progress {
    order: OrderView,
}

pub async fn one(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = order_id(&id)?;
    let token = visit
        .signed_in(&format!("/orders/{id}"))?
        .access_token()
        .to_owned();
    let order = view(&visit.api, &token, id, Duration::ZERO).await?;
    let page = OnePage {
        chrome: Chrome::of(&visit),
        order,
    };
    render(visit, &page)
}

/// Server-Sent Events with the order's progress as HTML to put in place: a `progress` event
/// each time it changes, and `settled` once it is confirmed or cancelled.
pub async fn live(visit: Visit, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = order_id(&id)?;
    let token = visit
        .signed_in(&format!("/orders/{id}"))?
        .access_token()
        .to_owned();
    let stream = progress(visit.api.clone(), token, id);
    Ok(visit.respond(
        Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response(),
    ))
}

struct Watch {
    api: ApiClient,
    token: String,
    id: Uuid,
    shown: String,
    until: Instant,
    over: bool,
}

fn progress(
    api: ApiClient,
    token: String,
    id: Uuid,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let watch = Watch {
        api,
        token,
        id,
        shown: String::new(),
        until: Instant::now() + LIVE_FOR,
        over: false,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        loop {
            if watch.over || Instant::now() >= watch.until {
                return None;
            }
            let order = match view(&watch.api, &watch.token, watch.id, LOOK_EVERY).await {
                Ok(order) => order,
                Err(error) => {
                    tracing::info!(order_id = %watch.id, "the live view stops: {error}");
                    return None;
                }
            };
            let settled = !order.is_pending();
            let html = match (Progress { order }).render() {
                Ok(html) => html,
                Err(error) => {
                    tracing::error!("rendering an order's progress: {error}");
                    return None;
                }
            };
            if settled {
                watch.over = true;
                let event = Event::default().event("settled").data(html);
                return Some((Ok(event), watch));
            }
            if html != watch.shown {
                watch.shown.clone_from(&html);
                let event = Event::default().event("progress").data(html);
                return Some((Ok(event), watch));
            }
        }
    })
}

pub async fn cancel(
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<FormToken>,
) -> Result<Response, PageError> {
    visit.check_form(form.csrf())?;
    let id = order_id(&id)?;
    let token = visit
        .signed_in(&format!("/orders/{id}"))?
        .access_token()
        .to_owned();
    cancel_then_show(visit, &token, id, &format!("/orders/{id}")).await
}

/// Cancels the order with `token` (its customer's, or an administrator's), then goes to
/// `page`. An order already cancelled (a second click) is not an error: the page says so.
pub async fn cancel_then_show(
    visit: Visit,
    token: &str,
    id: Uuid,
    page: &str,
) -> Result<Response, PageError> {
    match visit.api.cancel(token, id).await {
        Ok(_) => {}
        Err(error) if error.status() == Some(http::StatusCode::CONFLICT) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(visit.respond(Redirect::to(page)))
}
