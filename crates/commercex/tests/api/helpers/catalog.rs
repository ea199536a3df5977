//! Products and stock: creating them as the administrator, listing and walking pages.

use reqwest::Method;
use serde_json::{Value, json};

use super::{TestApp, wait_for};

pub fn product(sku: &str, name: &str, amount: i64, category: &str) -> Value {
    json!({"sku": sku, "name": name, "description": format!("{name}, described"),
           "price": {"amount": amount, "currency": "EUR"}, "category": category,
           "attributes": {"color": "black"}})
}

impl TestApp {
    /// Creates a product as the admin; returns its JSON.
    pub async fn create_product(&self, admin: &str, body: &Value) -> Value {
        let response = self
            .send(Method::POST, "/api/v1/products", Some(admin), Some(body))
            .await;
        assert_eq!(response.status(), 201, "create {body}");
        response.json().await.unwrap()
    }

    pub async fn list(&self, query: &str) -> Value {
        let response = self.get(&format!("/api/v1/products?{query}"), None).await;
        assert_eq!(response.status(), 200, "list {query}");
        response.json().await.unwrap()
    }

    /// The ids of the first page of a listing.
    pub async fn found(&self, query: &str) -> Vec<String> {
        ids(&self.list(query).await)
    }

    /// Walks every page of a listing, calling `between` after each page.
    pub async fn walk(&self, query: &str, mut between: impl AsyncFnMut()) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_query = match &cursor {
                Some(cursor) => format!("{query}&cursor={cursor}"),
                None => query.to_owned(),
            };
            let page = self.list(&page_query).await;
            ids.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_owned()),
            );
            between().await;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return ids,
            }
        }
    }

    /// Creates a product and waits until inventory keeps stock for it.
    pub async fn stocked_product(&self, admin: &str, sku: &str, units: i64) -> String {
        let created = self
            .create_product(
                admin,
                &product(sku, &format!("Product {sku}"), 1500, "misc"),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/inventory/{id}");
        wait_for("the stock record", || async {
            self.get(&path, None).await.status() == 200
        })
        .await;
        if units > 0 {
            let body = json!({"delta": units, "reason": "initial delivery"});
            let response = self
                .send(
                    Method::POST,
                    &format!("{path}/adjustments"),
                    Some(admin),
                    Some(&body),
                )
                .await;
            assert_eq!(response.status(), 200);
        }
        id
    }
}

/// The ids of a listing's page.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}
