//! Checking out: placing orders, waiting for them to settle, and what inventory and payments
//! made of them.

use std::time::Duration;

use client::Order;
use serde_json::{Value, json};

use super::{TestApp, wait_for};

fn address() -> Value {
    json!({"name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"})
}

pub fn order_body(lines: &[(&str, i64)], token: &str) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"product_id": id, "quantity": q}))
        .collect();
    json!({"items": items, "payment_token": token, "shipping_address": address()})
}

impl TestApp {
    /// A stocked product that orders can already price (its read model follows catalog
    /// events, so a brand-new product is briefly unknown there).
    pub async fn orderable_product(&self, admin: &str, sku: &str, units: i64) -> String {
        let id = self.stocked_product(admin, sku, units).await;
        wait_for("orders to know the product", || self.known_to_orders(&id)).await;
        id
    }

    pub async fn known_to_orders(&self, product_id: &str) -> bool {
        let db = self.database("orders").await;
        let found: Option<String> =
            sqlx::query_scalar("SELECT sku FROM catalog_products WHERE product_id = $1")
                .bind(product_id)
                .fetch_optional(db.pool())
                .await
                .unwrap();
        db.close().await;
        found.is_some()
    }

    pub async fn place(&self, token: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/orders"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits until the order leaves `pending` (32 s at most, with the API's long poll);
    /// returns it.
    pub async fn settled(&self, token: &str, order_id: &str) -> Order {
        let id = order_id.parse().expect("an order id");
        let order = self
            .api
            .settled(token, id, Duration::from_secs(32))
            .await
            .expect("the order");
        assert!(
            !order.is_pending(),
            "order {order_id} still pending after 32 s"
        );
        order
    }

    pub async fn levels(&self, product_id: &str) -> (i64, i64) {
        let levels: Value = self
            .get(&format!("/api/v1/inventory/{product_id}"), None)
            .await
            .json()
            .await
            .unwrap();
        (
            levels["on_hand"].as_i64().unwrap(),
            levels["reserved"].as_i64().unwrap(),
        )
    }

    pub async fn payment(&self, token: &str, order_id: &str) -> Value {
        let response = self
            .get(
                &format!("/api/v1/payments?order_id={order_id}"),
                Some(token),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["items"][0].clone()
    }

    /// The status of the order's payment; `None` while payments has not seen the order.
    pub async fn payment_status(&self, token: &str, order_id: &str) -> Option<String> {
        let response = self
            .get(
                &format!("/api/v1/payments?order_id={order_id}"),
                Some(token),
            )
            .await;
        if response.status() == 404 {
            return None;
        }
        assert_eq!(response.status(), 200);
        let payments: Value = response.json().await.unwrap();
        payments["items"][0]["status"].as_str().map(str::to_owned)
    }

    pub async fn steps(&self, token: &str, order_id: &str) -> Vec<String> {
        let timeline: Value = self
            .get(&format!("/api/v1/orders/{order_id}/timeline"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        timeline["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap().to_owned())
            .collect()
    }
}
