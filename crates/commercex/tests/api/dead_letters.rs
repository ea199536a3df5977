//! Poison events on purpose: they land in the consuming services' dead-letter queues with
//! the error, the metrics show the depth, and admins (only admins) list, show, replay and
//! discard them over `/api/v1/admin/dlq`.

use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

/// `order.placed` with data no consumer can read (but a payment token, which an operator must
/// not see): payments and inventory both give up on it.
pub fn poisoned_order_placed() -> events::Envelope {
    let order_id = uuid::Uuid::now_v7().to_string();
    events::Envelope::new(
        "commercex/chaos",
        "commercex.order.placed.v1",
        order_id,
        &json!({"poisoned": true, "payment_token": "tok_secret_card"}),
    )
}

/// Where a service's metrics are: its own process when distributed, the one process otherwise.
fn metrics_base(app: &TestApp, service: &str) -> String {
    match &app.deployment {
        Some(deployment) => deployment.named(service)[0].url(),
        None => app.url(""),
    }
}

async fn open_letters(app: &TestApp, admin: &str, service: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/api/v1/admin/dlq/{service}"), Some(admin))
        .await;
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    list["items"].as_array().unwrap().clone()
}

app_tests! {
    async fn poison_events_are_dead_lettered_and_admins_replay_or_discard_them(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let (customer, _) = app.signed_up("curious@example.com").await;
        // Every group's depth is there from the start, at 0.
        for service in ["catalog", "inventory", "orders", "payments"] {
            let base = metrics_base(&app, service);
            wait_for("every depth at 0", || async {
                let text = app.metrics_of(&base).await;
                sample(&text, "commercex_dlq_depth", &[&format!("consumer_group=\"{service}\"")]) == Some(0.0)
            })
            .await;
        }
        let poison = poisoned_order_placed();
        app.inject("commercex.orders", poison.clone()).await;

        for service in ["payments", "inventory"] {
            wait_for("the poison dead-lettered", || async { !open_letters(&app, &admin, service).await.is_empty() }).await;
            let letters = open_letters(&app, &admin, service).await;
            assert_eq!(letters.len(), 1, "{letters:?}");
            let letter = &letters[0];
            assert_eq!(letter["service"], service);
            assert_eq!(letter["event_id"], poison.id.to_string());
            assert_eq!(letter["event_type"], "commercex.order.placed.v1");
            assert_eq!(letter["status"], "dead");
            assert_eq!(letter["attempts"], 1, "unreadable data is not retried");
            assert!(letter["error"].as_str().unwrap().contains("unreadable data"), "{letter}");
            // Shown without the card token it carries.
            assert_eq!(letter["envelope"]["data"], json!({"poisoned": true, "payment_token": "[redacted]"}));
            let id = letter["id"].as_str().unwrap();
            let shown: Value = app.get(&format!("/api/v1/admin/dlq/{service}/{id}"), Some(&admin)).await.json().await.unwrap();
            assert_eq!(&shown, letter);
            let base = metrics_base(&app, service);
            wait_for("the depth in the metrics", || async {
                let text = app.metrics_of(&base).await;
                sample(&text, "commercex_dlq_depth", &[&format!("consumer_group=\"{service}\"")]) == Some(1.0)
            })
            .await;
        }
        let listed = open_letters(&app, &admin, "payments").await;
        let payments_letter = listed[0]["id"].as_str().unwrap().to_owned();
        let inventory_letter = open_letters(&app, &admin, "inventory").await[0]["id"].as_str().unwrap().to_owned();

        // Only admins see or touch the queues; nonsense is refused before anything happens.
        problem(app.get("/api/v1/admin/dlq/payments", None).await, 401).await;
        problem(app.get("/api/v1/admin/dlq/payments", Some(&customer)).await, 403).await;
        let customer_replay = app.send(reqwest::Method::POST, &format!("/api/v1/admin/dlq/payments/{payments_letter}/replay"), Some(&customer), None).await;
        problem(customer_replay, 403).await;
        problem(app.get("/api/v1/admin/dlq/payments?limit=0", Some(&admin)).await, 422).await;
        problem(app.get("/api/v1/admin/dlq/payments?limit=1001", Some(&admin)).await, 422).await;
        problem(app.get("/api/v1/admin/dlq/payments/not-an-id", Some(&admin)).await, 404).await;
        problem(app.get(&format!("/api/v1/admin/dlq/payments/{}", uuid::Uuid::now_v7()), Some(&admin)).await, 404).await;
        problem(app.get(&format!("/api/v1/admin/dlq/inventory/{payments_letter}"), Some(&admin)).await, 404).await;
        problem(app.get("/api/v1/admin/dlq/nobody", Some(&admin)).await, 404).await;
        assert_eq!(open_letters(&app, &admin, "payments").await, listed, "refusals changed nothing");

        // Discarded: kept as a record, out of the open list, not discarded twice.
        let discard = format!("/api/v1/admin/dlq/payments/{payments_letter}/discard");
        let discarded = app.send(reqwest::Method::POST, &discard, Some(&admin), None).await;
        assert_eq!(discarded.status(), 200);
        assert_eq!(discarded.json::<Value>().await.unwrap()["status"], "discarded");
        assert!(open_letters(&app, &admin, "payments").await.is_empty());
        problem(app.send(reqwest::Method::POST, &discard, Some(&admin), None).await, 409).await;
        let replay_discarded = format!("/api/v1/admin/dlq/payments/{payments_letter}/replay");
        problem(app.send(reqwest::Method::POST, &replay_discarded, Some(&admin), None).await, 409).await;

        // Replayed: the consumer takes it again; still poison, so it is dead again, tried twice.
        let replay = format!("/api/v1/admin/dlq/inventory/{inventory_letter}/replay");
        let requested = app.send(reqwest::Method::POST, &replay, Some(&admin), None).await;
        assert_eq!(requested.status(), 202);
        let requested: Value = requested.json().await.unwrap();
        assert!(["replay_requested", "dead"].contains(&requested["status"].as_str().unwrap()), "{requested}");
        let show = format!("/api/v1/admin/dlq/inventory/{inventory_letter}");
        wait_for("the replay handled", || async {
            let letter: Value = app.get(&show, Some(&admin)).await.json().await.unwrap();
            letter["attempts"] == 2
        })
        .await;
        let letter: Value = app.get(&show, Some(&admin)).await.json().await.unwrap();
        assert_eq!(letter["status"], "dead", "{letter}");
        app.stop().await;
    }
}
