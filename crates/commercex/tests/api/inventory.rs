use reqwest::Method;
use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

/// Holds `quantity` units of product `id` for a new order, through the inventory the running
/// app uses (the way the checkout saga will reach it).
async fn reserve(
    storage: &testkit::TestStorage,
    id: &str,
    quantity: i64,
    ttl: chrono::Duration,
) -> (inventory::InventoryService, uuid::Uuid) {
    use inventory::domain::{Quantity, ReservationLine, ReservationRequest};
    let service = inventory::InventoryService::open(&storage.storage, Default::default())
        .await
        .unwrap();
    let line = ReservationLine {
        product_id: uuid::Uuid::parse_str(id).unwrap(),
        quantity: Quantity::parse(quantity).unwrap(),
    };
    let order_id = uuid::Uuid::now_v7();
    let request = ReservationRequest::new(order_id, &[line], chrono::Utc::now() + ttl).unwrap();
    let outcome = service.inventory().reserve(&request).await.unwrap();
    assert_eq!(outcome, inventory::app::ReserveOutcome::Reserved);
    (service, order_id)
}

app_tests! {
    async fn a_new_product_gets_stock_at_zero_and_availability_flows_back(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "INV-1", 0).await;
        let levels: Value = app.get(&format!("/api/v1/inventory/{id}"), None).await.json().await.unwrap();
        assert_eq!(levels, json!({"product_id": id, "on_hand": 0, "reserved": 0, "available": 0}));
        // Read once, so that a read cache (memory when embedded, Redis when distributed) holds it.
        let product_path = format!("/api/v1/products/{id}");
        assert_eq!(app.get(&product_path, None).await.json::<Value>().await.unwrap()["available"], 0);

        let response = app.send(Method::POST, &format!("/api/v1/inventory/{id}/adjustments"), Some(&admin),
            Some(&json!({"delta": 12, "reason": "delivery"}))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["available"], 12);
        wait_for("availability in the catalog", || async {
            app.get(&product_path, None).await.json::<Value>().await.unwrap()["available"] == 12
        }).await;
        let in_stock = app.list("in_stock=true").await;
        assert_eq!(in_stock["items"][0]["id"], id.as_str());
        app.stop().await;
    }

    async fn adjustments_are_for_admins_and_validated(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "INV-2", 5).await;
        let path = format!("/api/v1/inventory/{id}/adjustments");
        let body = json!({"delta": 1, "reason": "found one"});
        problem(app.send(Method::POST, &path, None, Some(&body)).await, 401).await;
        let (customer, _) = app.signed_up("stocker@example.com").await;
        problem(app.send(Method::POST, &path, Some(&customer), Some(&body)).await, 403).await;
        problem(app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": 0, "reason": "x"}))).await, 422).await;
        problem(app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": 1, "reason": " "}))).await, 422).await;
        problem(app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": "one", "reason": "x"}))).await, 422).await;
        // Below zero (nothing reserved): a conflict with the stock that exists.
        problem(app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": -6, "reason": "shrinkage"}))).await, 409).await;
        let unknown = format!("/api/v1/inventory/{}/adjustments", uuid::Uuid::now_v7());
        problem(app.send(Method::POST, &unknown, Some(&admin), Some(&body)).await, 404).await;
        problem(app.get(&format!("/api/v1/inventory/{}", uuid::Uuid::now_v7()), None).await, 404).await;
        problem(app.get("/api/v1/inventory/nope", None).await, 404).await;
        let levels: Value = app.get(&format!("/api/v1/inventory/{id}"), None).await.json().await.unwrap();
        assert_eq!(levels["on_hand"], 5, "refused adjustments changed nothing");
        app.stop().await;
    }

    async fn the_sweeper_releases_expired_reservations(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "INV-5", 5).await;
        let (service, order_id) = reserve(&storage, &id, 3, chrono::Duration::milliseconds(300)).await;
        let path = format!("/api/v1/inventory/{id}");
        assert_eq!(app.get(&path, None).await.json::<Value>().await.unwrap()["reserved"], 3);
        wait_for("the sweeper to free the units", || async {
            app.get(&path, None).await.json::<Value>().await.unwrap()["reserved"] == 0
        })
        .await;
        let ledger: Value = app.get(&format!("{path}/ledger"), Some(&admin)).await.json().await.unwrap();
        assert_eq!(ledger["items"][0]["kind"], "expired");
        wait_for("reservation_expired on the bus", || async {
            app.published(&order_id.to_string())
                .await
                .iter()
                .any(|e| e["type"] == "commercex.inventory.reservation_expired.v1")
        })
        .await;
        service.store().db.close().await;
        app.stop().await;
    }

    async fn adjusting_below_reserved_is_a_conflict(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "INV-3", 5).await;
        let (service, _) = reserve(&storage, &id, 4, chrono::Duration::minutes(15)).await;
        let path = format!("/api/v1/inventory/{id}/adjustments");
        problem(app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": -2, "reason": "breakage"}))).await, 409).await;
        let response = app.send(Method::POST, &path, Some(&admin), Some(&json!({"delta": -1, "reason": "breakage"}))).await;
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"product_id": id, "on_hand": 4, "reserved": 4, "available": 0}));
        service.store().db.close().await;
        app.stop().await;
    }

    async fn the_ledger_records_who_when_why_and_how_much(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "INV-4", 10).await;
        let path = format!("/api/v1/inventory/{id}");
        app.send(Method::POST, &format!("{path}/adjustments"), Some(&admin), Some(&json!({"delta": -3, "reason": "damaged in storage"}))).await;
        let (customer, _) = app.signed_up("ledger@example.com").await;
        problem(app.get(&format!("{path}/ledger"), Some(&customer)).await, 403).await;
        let ledger: Value = app.get(&format!("{path}/ledger"), Some(&admin)).await.json().await.unwrap();
        let items = ledger["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["on_hand_delta"], -3);
        assert_eq!(items[0]["reason"], "damaged in storage");
        assert_eq!(items[0]["on_hand_after"], 7);
        assert_eq!(items[1]["on_hand_delta"], 10);
        let admin_id = app.get("/api/v1/users/me", Some(&admin)).await.json::<Value>().await.unwrap()["id"].clone();
        assert_eq!(items[0]["actor"], admin_id);
        assert!(items[0]["at"].is_string());

        let first: Value = app.get(&format!("{path}/ledger?limit=1"), Some(&admin)).await.json().await.unwrap();
        let cursor = first["next_cursor"].as_str().unwrap();
        let second: Value = app.get(&format!("{path}/ledger?limit=1&cursor={cursor}"), Some(&admin)).await.json().await.unwrap();
        assert_eq!(second["items"][0]["on_hand_delta"], 10);
        problem(app.get(&format!("{path}/ledger?limit=0"), Some(&admin)).await, 422).await;
        app.stop().await;
    }
}
