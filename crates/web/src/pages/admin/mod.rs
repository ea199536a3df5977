//! The admin console (`/admin`): the shop's operators see and act on what the public API lets
//! an administrator see and do: orders, products and stock, dead letters, accounts.

pub mod customers;
pub mod dead_letters;
pub mod orders;
pub mod products;
pub mod webhooks;

use axum::response::Response;

use super::render;
use crate::error::PageError;
use crate::session::Visit;

/// The services whose consumers can dead-letter an event.
pub const SERVICES: [&str; 6] = [
    "users",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "webhooks",
];

impl Visit {
    /// The signed-in administrator's access token; a sign-in page for a visitor, a refusal
    /// for a customer.
    pub fn admin(&self, then: &str) -> Result<String, PageError> {
        let user = self.signed_in(then)?;
        if !user.admin {
            return Err(PageError::NotAnAdmin);
        }
        Ok(user.access_token().to_owned())
    }
}

/// What the API's refusal of the form says, for the page; a failure that is not a refusal
/// is an error page.
pub fn refused(error: client::ApiError) -> Result<String, PageError> {
    match (error.status(), error.problem()) {
        (Some(status), Some(problem)) if status.is_client_error() => Ok(problem
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field.trim_start_matches('/'), e.detail))
            .reduce(|all, one| format!("{all}; {one}"))
            .unwrap_or_else(|| problem.detail.clone())),
        _ => Err(error.into()),
    }
}

/// A bar of the orders-per-minute chart: where it stands and how tall it is, in the
/// chart's own units (an SVG, so no inline style is needed under the page's CSP).
struct Bar {
    x: usize,
    y: i64,
    height: i64,
    count: i64,
}

/// How tall the chart is, in its units.
const CHART_HEIGHT: i64 = 100;

fn bars(per_minute: &[i64]) -> Vec<Bar> {
    let top = per_minute.iter().copied().max().unwrap_or(0).max(1);
    per_minute
        .iter()
        .enumerate()
        .map(|(minute, &count)| {
            let height = count * CHART_HEIGHT / top;
            Bar {
                x: minute * 10,
                y: CHART_HEIGHT - height,
                height,
                count,
            }
        })
        .collect()
}

/// A service's event flow, as the overview lists it.
struct ServiceFlow {
    service: &'static str,
    backlog: i64,
    oldest_unpublished_seconds: f64,
    dead_letters: i64,
    lag: i64,
}

#[derive(askama::Template)]
#[template(path = "admin/home.html")]
struct Home {
    chrome: super::Chrome,
    bars: Vec<Bar>,
    placed_last_hour: i64,
    summary: client::OrdersSummary,
    payments: std::collections::BTreeMap<String, i64>,
    flows: Vec<ServiceFlow>,
}

/// The dashboard: orders per minute, pending orders and their age, the last day's outcomes
/// and cancellation reasons, payment outcomes, and per service the outbox backlog, dead
/// letters and consumer lag. All from the admin API.
pub async fn home(visit: Visit) -> Result<Response, PageError> {
    let token = visit.admin("/admin")?;
    let summary = visit.api.orders_summary(&token).await?;
    let payments = visit.api.payments_summary(&token).await?;
    let mut flows = Vec::new();
    for service in SERVICES {
        let flow = visit.api.event_flow(&token, service).await?;
        flows.push(ServiceFlow {
            service,
            backlog: flow.outbox_backlog,
            oldest_unpublished_seconds: flow.oldest_unpublished_seconds,
            dead_letters: flow.dead_letters.values().sum(),
            lag: flow.consumer_lag.iter().map(|lag| lag.events).sum(),
        });
    }
    let page = Home {
        chrome: super::Chrome::of(&visit),
        bars: bars(&summary.placed_per_minute),
        placed_last_hour: summary.placed_per_minute.iter().sum(),
        summary,
        payments,
        flows,
    };
    render(visit, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_minute_fills_the_chart_and_an_idle_hour_draws_nothing() {
        let drawn = bars(&[0, 5, 10]);
        assert_eq!(
            drawn.iter().map(|b| b.height).collect::<Vec<_>>(),
            [0, 50, 100]
        );
        assert_eq!(drawn[2].y, 0);
        assert_eq!(drawn[1].x, 10);
        assert!(bars(&[0; 60]).iter().all(|b| b.height == 0));
    }
}
