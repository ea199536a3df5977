//! The published event contract holds: every event type is produced by a real scenario, each
//! event names its schema (`dataschema`), and each validates against the schema served at
//! `/asyncapi/schemas/{type}.json`, checked by an independent JSON Schema validator (Python
//! `jsonschema`). The AsyncAPI document lists every type.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestStorage;

use crate::helpers::*;

/// Every envelope in every service's outbox.
async fn published(app: &TestApp) -> Vec<Value> {
    let mut events = Vec::new();
    for schema in SERVICE_SCHEMAS {
        let db = app.database(schema).await;
        let rows: Vec<String> = sqlx::query_scalar("SELECT envelope FROM outbox")
            .fetch_all(db.pool())
            .await
            .unwrap();
        db.close().await;
        events.extend(
            rows.iter()
                .map(|row| serde_json::from_str::<Value>(row).unwrap()),
        );
    }
    events
}

async fn types_of(app: &TestApp) -> BTreeSet<String> {
    published(app)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Validates each event's data with the Python `jsonschema` package; false if it is missing
/// and the test may be skipped.
async fn validate_independently(lines: String, count: usize) -> bool {
    PythonChecker {
        script: "event_schemas.py",
        package: "the jsonschema package (Python)",
        install: "pip install jsonschema",
        refused: "events that do not match their schema",
    }
    .check(&lines, count)
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_produced_validates_against_its_published_schema() {
    let storage = TestStorage::sqlite().await.unwrap();
    // Short holds, so that a payment that never decides lets its reservation expire.
    let app = spawn_app_with(&storage, &["--reservation-ttl", "2s"]).await;
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "CONTRACT-1", 10).await;
    let path = format!("/api/v1/products/{product}");
    let etag = app.get(&path, None).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let patch = json!({"price": {"amount": 1900, "currency": "EUR"}});
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", etag)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let retired = app.orderable_product(&admin, "CONTRACT-2", 1).await;
    let archived = app
        .send(
            Method::DELETE,
            &format!("/api/v1/products/{retired}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(archived.status(), 204);

    let (customer, _) = app.signed_up("contract@example.com").await;
    let place = |key: &'static str, quantity: i64, token: &'static str| {
        let (app, customer, product) = (&app, customer.clone(), product.clone());
        async move {
            let placed: Value = app
                .place(&customer, key, &order_body(&[(&product, quantity)], token))
                .await
                .json()
                .await
                .unwrap();
            let id = placed["id"].as_str().unwrap().to_owned();
            app.settled(&customer, &id).await;
            id
        }
    };
    let confirmed = place("c-1", 1, "tok_visa").await;
    let cancelled = app
        .send(
            Method::POST,
            &format!("/api/v1/orders/{confirmed}/cancel"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    place("c-2", 1, "tok_chargeDeclined").await;
    place("c-3", 50, "tok_visa").await;
    place("c-4", 1, "tok_pending").await;

    let every: BTreeSet<String> = events::contract::published()
        .iter()
        .map(|p| p.event_type.to_owned())
        .collect();
    wait_for("every event type published", || async {
        types_of(&app).await == every
    })
    .await;

    let document: Value = app.get("/asyncapi.json", None).await.json().await.unwrap();
    assert_eq!(document["asyncapi"], "3.0.0");
    let listed: BTreeSet<String> = document["components"]["messages"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, every, "the AsyncAPI document lists every type");

    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    for event_type in &every {
        let response = app
            .get(&format!("/asyncapi/schemas/{event_type}.json"), None)
            .await;
        assert_eq!(response.status(), 200, "{event_type}");
        schemas.insert(event_type.clone(), response.json().await.unwrap());
    }
    problem(
        app.get("/asyncapi/schemas/commercex.order.shipped.v1.json", None)
            .await,
        404,
    )
    .await;

    let events = published(&app).await;
    let mut lines = String::new();
    for event in &events {
        let schema = &schemas[event["type"].as_str().unwrap()];
        assert_eq!(event["dataschema"], schema["$id"], "{event}");
        lines.push_str(&json!({"schema": schema, "event": event}).to_string());
        lines.push('\n');
    }
    validate_independently(lines, events.len()).await;
    app.stop().await;
}
