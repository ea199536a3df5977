//! The checkout saga end to end: orders, inventory and payments moving an order to a final
//! state by events alone.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{app_tests, backend_tests};

use crate::helpers::*;

/// The consumer groups: each one's database (named after its group) and topics.
const GROUPS: [(&str, &[&str]); 4] = [
    (catalog::reactions::GROUP, catalog::reactions::TOPICS),
    (inventory::reactions::GROUP, inventory::reactions::TOPICS),
    (orders::reactions::GROUP, orders::reactions::TOPICS),
    (payments::reactions::GROUP, payments::reactions::TOPICS),
];

/// Waits until every consumer group's stored position in each of its topics is at the end of
/// that topic's log (its producer's outbox) on the in-database bus.
async fn caught_up(app: &TestApp, what: &str) {
    testkit::wait_for_within(what, std::time::Duration::from_secs(40), || async {
        for (group, topics) in GROUPS {
            let consumer = app.database(group).await;
            for topic in topics {
                let producer = app.database(topic.strip_prefix("commercex.").unwrap()).await;
                let column = match producer.backend() {
                    platform::db::Backend::Sqlite => "seq",
                    platform::db::Backend::Postgres => "position",
                };
                let end: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT MAX({column}) FROM outbox WHERE topic = $1"
                )))
                .bind(*topic)
                .fetch_one(producer.pool())
                .await
                .unwrap();
                producer.close().await;
                let at: Option<i64> = sqlx::query_scalar(
                    "SELECT position FROM consumer_positions WHERE consumer_group = $1 AND topic = $2",
                )
                .bind(group)
                .bind(*topic)
                .fetch_optional(consumer.pool())
                .await
                .unwrap();
                if end.is_some_and(|end| at.unwrap_or(0) < end) {
                    consumer.close().await;
                    return false;
                }
            }
            consumer.close().await;
        }
        true
    })
    .await;
}

/// What a customer and an operator can observe of some orders and their product.
async fn snapshot(app: &TestApp, ids: &[String], customer: &str, product: &str) -> Vec<Value> {
    let mut state = vec![json!(app.levels(product).await)];
    for id in ids {
        let order: Value = app
            .get(&format!("/api/v1/orders/{id}"), Some(customer))
            .await
            .json()
            .await
            .unwrap();
        state.push(json!([
            order["status"],
            order["cancel_reason"],
            app.steps(customer, id).await.len()
        ]));
        let payment = app.payment(customer, id).await;
        state.push(json!([
            payment["status"],
            payment["attempts"].as_array().unwrap().len()
        ]));
    }
    state
}

app_tests! {
    async fn a_paid_order_is_confirmed_and_its_stock_leaves_the_shelf(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-1", 10).await;
        let (customer, _) = app.signed_up("buyer@example.com").await;
        let response = app.place(&customer, "order-1", &order_body(&[(&product, 2)], "tok_visa")).await;
        assert_eq!(response.status(), 202);
        let placed: Value = response.json().await.unwrap();
        assert_eq!(placed["status"], "pending");
        assert_eq!(placed["total"], 3000);
        assert_eq!(placed["currency"], "EUR");
        let id = placed["id"].as_str().unwrap();

        let order = app.settled(&customer, id).await;
        assert_eq!(order.status, "confirmed");
        wait_for("the reservation committed", || async { app.levels(&product).await == (8, 0) }).await;
        let payment = app.payment(&customer, id).await;
        assert_eq!(payment["status"], "captured");
        assert_eq!(payment["amount"], json!({"amount": 3000, "currency": "EUR"}));
        assert_eq!(payment["attempts"].as_array().unwrap().len(), 1, "one charge");
        // On Kafka the reservation's note can land after the confirmation (other topic); the
        // timeline still lists the steps in the order they happened.
        wait_for("the whole timeline", || async { app.steps(&customer, id).await == ["placed", "stock_reserved", "confirmed"] }).await;
        let timeline: Value = app.get(&format!("/api/v1/orders/{id}/timeline"), Some(&customer)).await.json().await.unwrap();
        assert!(timeline["steps"][2]["event_id"].is_string(), "steps name their events");
        app.stop().await;
    }

    async fn the_payment_token_is_sealed_in_the_event_and_at_rest(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SEALED-1", 5).await;
        let (customer, _) = app.signed_up("sealed@example.com").await;
        let response = app.place(&customer, "sealed-1", &order_body(&[(&product, 1)], "tok_visa")).await;
        let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        // Payments opened it: the charge went through with the customer's token.
        assert_eq!(app.settled(&customer, &id).await.status, "confirmed");
        wait_for("order.placed on the bus", || async { !app.published(&id).await.is_empty() }).await;
        let published = app.published(&id).await;
        let placed = published.iter().find(|e| e["type"] == "commercex.order.placed.v1").unwrap();
        let sealed = placed["data"]["sealed_payment_token"].as_str().unwrap();
        assert!(sealed.starts_with("cxs1."), "{sealed}");
        assert!(placed["data"].get("payment_token").is_none());
        assert!(!placed.to_string().contains("tok_visa"), "the token is not in the event");
        let db = app.database("payments").await;
        let stored: String = sqlx::query_scalar("SELECT payment_token FROM payments WHERE order_id = $1")
            .bind(&id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.close().await;
        assert!(stored.starts_with("cxs1.") && !stored.contains("tok_visa"), "payments keeps it sealed");
        app.stop().await;
    }

    async fn a_client_waits_for_its_order_to_settle_in_one_request(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "WAIT-1", 10).await;
        let (customer, _) = app.signed_up("patient@example.com").await;
        let placed: Value = app.place(&customer, "w-1", &order_body(&[(&product, 1)], "tok_visa")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        let order: Value = app.get(&format!("/api/v1/orders/{id}?wait=8s"), Some(&customer)).await.json().await.unwrap();
        assert_eq!(order["status"], "confirmed", "one request waited for the saga");

        // A payment that never decides: the wait ends and the order is still pending.
        let placed: Value = app.place(&customer, "w-2", &order_body(&[(&product, 1)], "tok_pending")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        let asked = std::time::Instant::now();
        let order: Value = app.get(&format!("/api/v1/orders/{id}?wait=300ms"), Some(&customer)).await.json().await.unwrap();
        assert_eq!(order["status"], "pending");
        assert!(asked.elapsed() >= std::time::Duration::from_millis(300), "it waited as asked");

        // Someone else's order is not found, waiting or not; a bad wait is a 422.
        let (stranger, _) = app.signed_up("stranger@example.com").await;
        assert_eq!(app.get(&format!("/api/v1/orders/{id}?wait=1s"), Some(&stranger)).await.status(), 404);
        for wait in ["9s", "soon", "-1s"] {
            let problem = problem(app.get(&format!("/api/v1/orders/{id}?wait={wait}"), Some(&customer)).await, 422).await;
            assert_eq!(problem["errors"][0]["field"], "wait", "{problem}");
        }
        app.stop().await;
    }

    async fn orders_that_cannot_be_fulfilled_are_cancelled_with_the_reason(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-2", 3).await;
        let (customer, _) = app.signed_up("unlucky@example.com").await;

        let short: Value = app.place(&customer, "too-many", &order_body(&[(&product, 5)], "tok_visa")).await.json().await.unwrap();
        let order = app.settled(&customer, short["id"].as_str().unwrap()).await;
        assert_eq!((Some(order.status.as_str()), order.cancel_reason.as_deref()), (Some("cancelled"), Some("out_of_stock")));
        // Orders and payments each react to the rejection on their own; payments may be later.
        let short_id = short["id"].as_str().unwrap();
        // On Kafka the rejection can come before payments has even seen the order.
        wait_for("the payment voided", || async { app.payment_status(&customer, short_id).await.as_deref() == Some("voided") }).await;
        let payment = app.payment(&customer, short_id).await;
        assert!(payment["attempts"].as_array().unwrap().is_empty(), "never charged");

        for (token, reason) in [("tok_chargeDeclined", "card declined"), ("tok_insufficientFunds", "insufficient funds")] {
            let declined: Value = app.place(&customer, token, &order_body(&[(&product, 2)], token)).await.json().await.unwrap();
            let id = declined["id"].as_str().unwrap();
            let order = app.settled(&customer, id).await;
            assert_eq!(order.cancel_reason.as_deref(), Some("payment_declined"));
            let payment = app.payment(&customer, id).await;
            assert_eq!(payment["status"], "failed");
            assert_eq!(payment["failure_reason"], reason);
        }
        wait_for("the reservations released", || async { app.levels(&product).await == (3, 0) }).await;
        app.stop().await;
    }

    async fn a_transient_provider_error_is_retried_into_one_charge(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-3", 4).await;
        let (customer, _) = app.signed_up("patient@example.com").await;
        let placed: Value = app.place(&customer, "flaky", &order_body(&[(&product, 1)], "tok_processingError")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        assert_eq!(app.settled(&customer, id).await.status, "confirmed");
        let payment = app.payment(&customer, id).await;
        assert_eq!(payment["status"], "captured");
        assert_eq!(payment["attempts"].as_array().unwrap().len(), 1);
        app.stop().await;
    }

    async fn an_abandoned_payment_expires_the_reservation(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--reservation-ttl", "1s"]).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-4", 5).await;
        let (customer, _) = app.signed_up("walked-away@example.com").await;
        let placed: Value = app.place(&customer, "3ds", &order_body(&[(&product, 2)], "tok_pending")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        let order = app.settled(&customer, id).await;
        assert_eq!(order.cancel_reason.as_deref(), Some("reservation_expired"));
        wait_for("the stock back", || async { app.levels(&product).await == (5, 0) }).await;
        wait_for("the charge voided", || async { app.payment_status(&customer, id).await.as_deref() == Some("voided") }).await;
        app.stop().await;
    }

    async fn an_order_still_pending_at_the_saga_deadline_is_cancelled_released_and_voided(storage: TestStorage) {
        // The payment waits for the customer for ever and the hold would last an hour: only
        // the deadline ends this saga.
        // Long enough for the charge to reach the provider first on a loaded machine.
        let app = spawn_app_with(&storage, &["--saga-deadline", "5s", "--reservation-ttl", "1h"]).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-DL", 5).await;
        let (customer, _) = app.signed_up("stuck@example.com").await;
        let placed: Value = app.place(&customer, "stuck", &order_body(&[(&product, 2)], "tok_pending")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        wait_for("the charge pending at the provider", || async { app.payment_status(&customer, id).await.as_deref() == Some("pending") }).await;
        let order = app.settled(&customer, id).await;
        assert_eq!(order.status, "cancelled");
        assert_eq!(order.cancel_reason.as_deref(), Some("timed_out"));
        wait_for("the stock back", || async { app.levels(&product).await == (5, 0) }).await;
        wait_for("the charge voided", || async { app.payment_status(&customer, id).await.as_deref() == Some("voided") }).await;
        let timeline: Value = app.get(&format!("/api/v1/orders/{id}/timeline"), Some(&customer)).await.json().await.unwrap();
        assert!(timeline.to_string().contains("saga deadline"), "{timeline}");
        app.stop().await;
    }

    async fn cancelling_a_confirmed_order_refunds_and_restocks(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-5", 6).await;
        let (customer, _) = app.signed_up("changed-mind@example.com").await;
        let placed: Value = app.place(&customer, "regret", &order_body(&[(&product, 4)], "tok_visa")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap();
        assert_eq!(app.settled(&customer, id).await.status, "confirmed");
        wait_for("the stock committed", || async { app.levels(&product).await == (2, 0) }).await;

        let (stranger, _) = app.signed_up("stranger@example.com").await;
        problem(app.send(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&stranger), None).await, 404).await;
        let response = app.send(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&customer), None).await;
        assert_eq!(response.status(), 200);
        let cancelled: Value = response.json().await.unwrap();
        assert_eq!((cancelled["status"].as_str(), cancelled["cancel_reason"].as_str()), (Some("cancelled"), Some("cancelled_by_customer")));
        problem(app.send(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&customer), None).await, 409).await;
        wait_for("the refund", || async { app.payment_status(&customer, id).await.as_deref() == Some("refunded") }).await;
        wait_for("the restock", || async { app.levels(&product).await == (6, 0) }).await;
        wait_for("the refund in the timeline", || async { app.steps(&customer, id).await.contains(&"refunded".to_owned()) }).await;

        // Cancelling while pending releases the hold instead.
        let pending: Value = app.place(&customer, "quick-regret", &order_body(&[(&product, 1)], "tok_pending")).await.json().await.unwrap();
        let pending_id = pending["id"].as_str().unwrap();
        wait_for("the hold", || async { app.levels(&product).await == (6, 1) }).await;
        assert_eq!(app.send(Method::POST, &format!("/api/v1/orders/{pending_id}/cancel"), Some(&customer), None).await.status(), 200);
        wait_for("the hold released", || async { app.levels(&product).await == (6, 0) }).await;
        app.stop().await;
    }

    async fn placing_is_idempotent_validated_and_private(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "SAGA-6", 50).await;
        let (customer, _) = app.signed_up("careful@example.com").await;
        let body = order_body(&[(&product, 1)], "tok_visa");
        let first: Value = app.place(&customer, "same-key", &body).await.json().await.unwrap();
        let again = app.place(&customer, "same-key", &body).await;
        assert_eq!(again.status(), 202);
        assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"], "a retry is the same order");
        problem(app.place(&customer, "same-key", &order_body(&[(&product, 2)], "tok_visa")).await, 409).await;
        let list: Value = app.get("/api/v1/orders", Some(&customer)).await.json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "no second order");

        let no_key = app.client.post(app.url("/api/v1/orders")).bearer_auth(&customer).json(&body).send().await.unwrap();
        problem(no_key, 400).await;
        problem(app.send(Method::POST, "/api/v1/orders", None, Some(&body)).await, 401).await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let too_many: Vec<(&str, i64)> = (0..51).map(|_| (product.as_str(), 1)).collect();
        // Every line within its limit, but more units of one product than inventory holds.
        let too_many_units: Vec<(&str, i64)> = (0..11).map(|_| (product.as_str(), 100)).collect();
        let mut bad_address = body.clone();
        bad_address["shipping_address"]["country"] = json!("Germany");
        for (key, bad, field) in [
            ("q0", order_body(&[(&product, 0)], "tok_visa"), "/items/0/quantity"),
            ("q101", order_body(&[(&product, 101)], "tok_visa"), "/items/0/quantity"),
            ("unknown", order_body(&[(&unknown, 1)], "tok_visa"), "/items/0/product_id"),
            ("many", order_body(&too_many, "tok_visa"), "/items"),
            ("units", order_body(&too_many_units, "tok_visa"), "/items"),
            ("none", order_body(&[], "tok_visa"), "/items"),
            ("address", bad_address, "/shipping_address/country"),
        ] {
            let errors = problem(app.place(&customer, key, &bad).await, 422).await;
            assert_eq!(errors["errors"][0]["field"], field, "{key}");
        }
        // A product priced in another currency cannot share an order.
        let dollars = json!({"sku": "USD-1", "name": "Imported", "price": {"amount": 900, "currency": "USD"}, "category": "misc"});
        let usd = app.create_product(&admin, &dollars).await["id"].as_str().unwrap().to_owned();
        wait_for("orders to know the USD product", || app.known_to_orders(&usd)).await;
        let errors = problem(app.place(&customer, "mixed", &order_body(&[(&product, 1), (&usd, 1)], "tok_visa")).await, 422).await;
        assert_eq!(errors["errors"][0]["field"], "/items/1/product_id");

        // The caller's orders, newest first, a page at a time.
        for n in 0..3 {
            assert_eq!(app.place(&customer, &format!("more-{n}"), &order_body(&[(&product, 1)], "tok_visa")).await.status(), 202);
        }
        let page: Value = app.get("/api/v1/orders?limit=3", Some(&customer)).await.json().await.unwrap();
        let cursor = page["next_cursor"].as_str().unwrap();
        let rest: Value = app.get(&format!("/api/v1/orders?limit=3&cursor={cursor}"), Some(&customer)).await.json().await.unwrap();
        let mut seen: Vec<&str> = page["items"].as_array().unwrap().iter().chain(rest["items"].as_array().unwrap()).map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen.last(), Some(&first["id"].as_str().unwrap()), "the first order comes last");
        seen.dedup();
        assert_eq!(seen.len(), 4);

        let id = first["id"].as_str().unwrap();
        let (other, _) = app.signed_up("nosy@example.com").await;
        problem(app.get(&format!("/api/v1/orders/{id}"), Some(&other)).await, 404).await;
        problem(app.get(&format!("/api/v1/orders/{id}/timeline"), Some(&other)).await, 404).await;
        problem(app.get(&format!("/api/v1/payments?order_id={id}"), Some(&other)).await, 404).await;
        assert_eq!(app.get(&format!("/api/v1/orders/{id}"), Some(&admin)).await.status(), 200, "admins see every order");
        assert!(app.get("/api/v1/orders", Some(&other)).await.json::<Value>().await.unwrap()["items"].as_array().unwrap().is_empty());
        app.settled(&customer, id).await;
        app.stop().await;
    }

    async fn fifty_customers_racing_for_ten_units_never_oversell(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "LAST-10", 10).await;
        let mut customers = Vec::new();
        for n in 0..50 {
            customers.push(app.signed_up(&format!("racer{n}@example.com")).await.0);
        }
        let attempts = customers.iter().enumerate().map(|(n, token)| {
            let body = order_body(&[(&product, 1)], "tok_visa");
            let app = &app;
            async move {
                let response = app.place(token, &format!("race-{n}"), &body).await;
                let status = response.status();
                let placed: Value = response.json().await.unwrap();
                assert_eq!(status, 202, "{placed}");
                placed["id"].as_str().unwrap().to_owned()
            }
        });
        let ids = futures::future::join_all(attempts).await;
        let mut confirmed = 0;
        let mut out_of_stock = 0;
        for (token, id) in customers.iter().zip(&ids) {
            let order = app.settled(token, id).await;
            match (Some(order.status.as_str()), order.cancel_reason.as_deref()) {
                (Some("confirmed"), _) => confirmed += 1,
                (Some("cancelled"), Some("out_of_stock")) => out_of_stock += 1,
                other => panic!("unexpected final state {other:?}"),
            }
        }
        assert_eq!((confirmed, out_of_stock), (10, 40));
        wait_for("all stock committed", || async { app.levels(&product).await == (0, 0) }).await;
        app.stop().await;
    }

}

// These two drive the in-database bus and the embedded binary directly.
backend_tests! {
    async fn every_event_delivered_twice_has_one_effect(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "DUP-1", 10).await;
        let (customer, _) = app.signed_up("twice@example.com").await;
        let mut ids = Vec::new();
        for (key, token, quantity) in [("a", "tok_visa", 2), ("b", "tok_chargeDeclined", 1), ("c", "tok_visa", 20), ("d", "tok_visa", 1)] {
            let placed: Value = app.place(&customer, key, &order_body(&[(&product, quantity)], token)).await.json().await.unwrap();
            ids.push(placed["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            app.settled(&customer, id).await;
        }
        let last = ids[3].clone();
        app.send(Method::POST, &format!("/api/v1/orders/{last}/cancel"), Some(&customer), None).await;
        wait_for("the refund", || async { app.payment_status(&customer, &last).await.as_deref() == Some("refunded") }).await;
        wait_for("the restock", || async { app.levels(&product).await == (8, 0) }).await;
        // Every saga step, including the late ones (the refund's timeline note), is done.
        caught_up(&app, "the sagas to finish").await;
        let before = snapshot(&app, &ids, &customer, &product).await;
        app.stop().await;

        // Every group starts its topics over (as after restoring an old backup of its
        // database), so every event of those sagas reaches it a second time.
        let mut kinds = std::collections::HashSet::new();
        for schema in SERVICE_SCHEMAS {
            let db = storage.storage.open(schema, Default::default()).await.unwrap();
            let types: Vec<String> = sqlx::query_scalar("SELECT envelope FROM outbox").fetch_all(db.pool()).await.unwrap();
            kinds.extend(types.iter().map(|e| events::Envelope::from_json(e).unwrap().event_type));
            let mut tx = db.begin_as("rewind").await.unwrap();
            sqlx::query("UPDATE consumer_positions SET position = 0").execute(&mut **tx).await.unwrap();
            tx.commit().await.unwrap();
            db.close().await;
        }
        for kind in ["commercex.order.placed.v1", "commercex.inventory.reserved.v1", "commercex.payment.captured.v1",
                     "commercex.payment.failed.v1", "commercex.order.confirmed.v1", "commercex.order.cancelled.v1",
                     "commercex.inventory.rejected.v1", "commercex.payment.refunded.v1", "commercex.product.created.v1",
                     "commercex.inventory.stock_adjusted.v1"] {
            assert!(kinds.contains(kind), "{kind} is among the events delivered again");
        }
        let app = spawn_app(&storage).await;
        caught_up(&app, "every group past the duplicates").await;
        let customer = app.login("twice@example.com", PASSWORD).await.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(snapshot(&app, &ids, &customer, &product).await, before, "duplicates changed nothing");
        app.stop().await;
    }

    async fn sagas_survive_a_killed_process(storage: TestStorage) {
        let (mut args, guard) = crate::cli::with_storage(&storage, &["--listen", "127.0.0.1:0"]);
        let dir = tempfile::tempdir().unwrap();
        let password = write_file(dir.path(), "admin-password", PASSWORD);
        args.extend(["--admin-email".to_owned(), ADMIN_EMAIL.to_owned(), "--admin-password-file".to_owned(), password.display().to_string()]);
        let (mut child, addr) = crate::cli::start(&args).await;
        let app = TestApp::attach(addr.parse().unwrap(), &storage);
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "KILL-1", 20).await;
        let (customer, _) = app.signed_up("survivor@example.com").await;
        let mut ids = Vec::new();
        for (n, token) in ["tok_processingError", "tok_visa", "tok_processingError", "tok_chargeDeclined", "tok_visa", "tok_processingError"].iter().enumerate() {
            let placed: Value = app.place(&customer, &format!("k{n}"), &order_body(&[(&product, 2)], token)).await.json().await.unwrap();
            ids.push(placed["id"].as_str().unwrap().to_owned());
        }
        // In the middle of the sagas (transient payment errors are still backing off).
        let killed = crate::cli::signal_and_wait(&mut child, "-KILL").await;
        assert!(!killed.success());

        let (mut child, addr) = crate::cli::start(&args).await;
        let app = TestApp::attach(addr.parse().unwrap(), &storage);
        let mut confirmed = 0;
        for id in &ids {
            let order = app.settled(&customer, id).await;
            match Some(order.status.as_str()) {
                Some("confirmed") => confirmed += 1,
                _ => assert_eq!(order.cancel_reason.as_deref(), Some("payment_declined")),
            }
            let attempts = app.payment(&customer, id).await["attempts"].as_array().unwrap().len();
            assert_eq!(attempts, 1, "one charge per order, restart or not");
        }
        assert_eq!(confirmed, 5);
        wait_for("stock consistent with the orders", || async { app.levels(&product).await == (20 - 2 * confirmed, 0) }).await;
        assert!(crate::cli::signal_and_wait(&mut child, "-TERM").await.success());
        drop(guard);
    }

    /// SIGKILL while the consumers are busy with batches of sagas, three times: every order
    /// still ends, and every saga step happened exactly once (a step handled twice would
    /// leave a second timeline note, charge or ledger entry).
    async fn a_process_killed_amid_consumer_batches_loses_nothing_and_repeats_nothing(storage: TestStorage) {
        const ROUNDS: usize = 3;
        const ORDERS_PER_ROUND: usize = 60;
        let (mut args, guard) = crate::cli::with_storage(&storage, &["--listen", "127.0.0.1:0"]);
        let dir = tempfile::tempdir().unwrap();
        let password = write_file(dir.path(), "admin-password", PASSWORD);
        args.extend(["--admin-email".to_owned(), ADMIN_EMAIL.to_owned(), "--admin-password-file".to_owned(), password.display().to_string()]);
        let (mut child, addr) = crate::cli::start(&args).await;
        let mut app = TestApp::attach(addr.parse().unwrap(), &storage);
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "BATCH-KILL", 10_000).await;
        let (customer, _) = app.signed_up("batches@example.com").await;
        let mut ids = Vec::new();
        let mut interrupted = 0;
        for round in 0..ROUNDS {
            let placements = (0..ORDERS_PER_ROUND).map(|n| {
                let (app, customer, product) = (&app, &customer, &product);
                async move {
                    let body = order_body(&[(product, 1)], "tok_visa");
                    let placed: Value = app.place(customer, &format!("r{round}-{n}"), &body).await.json().await.unwrap();
                    placed["id"].as_str().unwrap().to_owned()
                }
            });
            ids.extend(futures::future::join_all(placements).await);
            // The consumers are working through those sagas in batches: kill it now.
            assert!(!crate::cli::signal_and_wait(&mut child, "-KILL").await.success());
            let orders = app.database("orders").await;
            let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'pending'")
                .fetch_one(orders.pool()).await.unwrap();
            orders.close().await;
            interrupted += usize::from(pending > 0);
            let (restarted, addr) = crate::cli::start(&args).await;
            child = restarted;
            app = TestApp::attach(addr.parse().unwrap(), &storage);
        }
        assert!(interrupted > 0, "no kill found a saga in flight");
        let customer = app.login("batches@example.com", PASSWORD).await.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        for id in &ids {
            assert_eq!(app.settled(&customer, id).await.status, "confirmed", "order {id}");
            assert_eq!(app.steps(&customer, id).await, ["placed", "stock_reserved", "confirmed"], "order {id}");
            let attempts = app.payment(&customer, id).await["attempts"].as_array().unwrap().len();
            assert_eq!(attempts, 1, "one charge for order {id}");
        }
        let sold = i64::try_from(ids.len()).unwrap();
        wait_for("the stock to match the orders", || async { app.levels(&product).await == (10_000 - sold, 0) }).await;
        let inventory = app.database("inventory").await;
        for kind in ["reservation", "committed"] {
            let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_ledger WHERE kind = $1")
                .bind(kind).fetch_one(inventory.pool()).await.unwrap();
            assert_eq!(entries, sold, "one {kind} entry per order");
        }
        inventory.close().await;
        assert!(crate::cli::signal_and_wait(&mut child, "-TERM").await.success());
        drop(guard);
    }

    async fn the_database_refuses_a_payment_status_the_domain_does_not_know(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let db = app.database("payments").await;
        let insert = |status: &str| {
            sqlx::query(
                "INSERT INTO payments (id, order_id, customer_id, amount, currency, payment_token, \
                 status, created_at, updated_at) VALUES ($1, $2, $3, 100, 'EUR', 'sealed', $4, 0, 0)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(status.to_owned())
            .execute(db.pool())
        };
        for status in payments::domain::PaymentStatus::ALL {
            insert(status.as_str()).await.unwrap();
        }
        assert!(insert("paid").await.is_err(), "an unknown status was stored");
        let renamed = sqlx::query("UPDATE payments SET status = 'Captured' WHERE status = 'captured'")
            .execute(db.pool())
            .await;
        assert!(renamed.is_err(), "a status was changed to an unknown one");
        app.stop().await;
    }
}

testkit::server_database_tests! {
    /// A client waiting for its order (`?wait=`) waits on the process it asked, and another
    /// process sharing the database (an instance of the service, a replica of the embedded
    /// runtime, a fix by hand) may settle the order. The process hears of it from PostgreSQL
    /// and answers the client then: while it listens it does not read the order again on its
    /// own, so without the notification the client would be answered only when its wait
    /// ends. Here the order stays pending (its payment never decides) until it is cancelled
    /// straight in the database while the client waits.
    async fn a_waiting_client_hears_of_a_settlement_committed_elsewhere(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let product = app.orderable_product(&admin, "HEARD-1", 5).await;
        let (customer, _) = app.signed_up("heard-elsewhere@example.com").await;
        let db = app.database("orders").await;
        wait_for("the orders service listening for settlements", || async {
            !listening(&db, orders::watchers::CHANNEL).await.is_empty()
        })
        .await;
        let placed: Value = app.place(&customer, "heard-1", &order_body(&[(&product, 1)], "tok_pending")).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap().to_owned();
        let wait = std::time::Duration::from_secs(8);
        let asked = std::time::Instant::now();
        let waiting = async {
            app.get(&format!("/api/v1/orders/{id}?wait=8s"), Some(&customer)).await.json::<Value>().await.unwrap()
        };
        let settled_elsewhere = async {
            // Long enough for the client's first look to find the order pending.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let cancelled = sqlx::query(
                "UPDATE orders SET status = 'cancelled', cancel_reason = 'cancelled_by_admin' \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&id)
            .execute(db.pool())
            .await
            .unwrap();
            assert_eq!(cancelled.rows_affected(), 1, "the order was still pending");
        };
        let (answer, ()) = tokio::join!(waiting, settled_elsewhere);
        assert_eq!(answer["status"], "cancelled", "{answer}");
        assert!(asked.elapsed() < wait, "answered when the wait ended, not when the order settled");
        db.close().await;
        app.stop().await;
    }
}
