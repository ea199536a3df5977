//! The admin console (`/admin`): the shop's operators see and act on what the public API lets
//! an administrator see and do: orders, products and stock, dead letters, accounts.

pub mod customers;
pub mod dead_letters;
pub mod orders;
pub mod products;

use axum::response::Response;

use super::render;
use crate::error::PageError;
use crate::session::Visit;

/// The services whose consumers can dead-letter an event.
pub const SERVICES: [&str; 5] = ["users", "catalog", "inventory", "orders", "payments"];

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

#[derive(askama::Template)]
#[template(path = "admin/home.html")]
struct Home {
    chrome: super::Chrome,
    pending: usize,
    more_pending: bool,
    dead: Vec<(&'static str, usize)>,
}

/// What needs an operator now: pending orders and dead letters.
pub async fn home(visit: Visit) -> Result<Response, PageError> {
    let token = visit.admin("/admin")?;
    let pending = visit
        .api
        .search_orders(&token, "status=pending&limit=100")
        .await?;
    let mut dead = Vec::new();
    for service in SERVICES {
        dead.push((
            service,
            visit.api.dead_letters(&token, service).await?.len(),
        ));
    }
    let page = Home {
        chrome: super::Chrome::of(&visit),
        pending: pending.items.len(),
        more_pending: pending.next_cursor.is_some(),
        dead,
    };
    render(visit, &page)
}
