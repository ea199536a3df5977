//! The admin console as an operator's browser meets it: products and stock, every customer's
//! orders, dead letters, accounts and webhook endpoints, all through the public API's admin
//! operations.

use reqwest::StatusCode;
use testkit::backend_tests;

use crate::dead_letters::poisoned_order_placed;
use crate::helpers::*;
use crate::storefront::{check_out, customer_with_a_cart};
use crate::webhooks::signed_with;

/// The text of `body` between the first `start` after `after` and the next `end`.
fn between<'a>(body: &'a str, after: &str, start: &str, end: &str) -> &'a str {
    let from = body.find(after).expect(after) + after.len();
    let from = body[from..].find(start).expect(start) + from + start.len();
    let to = body[from..].find(end).expect(end) + from;
    &body[from..to]
}

async fn operator(app: &TestApp) -> Browser {
    let mut browser = Browser::new(app);
    browser.sign_in(ADMIN_EMAIL, PASSWORD).await;
    browser
}

/// Posts the product form on `path` with `name` and the version the form page carried.
async fn save_product(browser: &mut Browser, path: &str, form: &Page, name: &str) -> Page {
    let (csrf, version) = (form.csrf(), form.hidden("version").unwrap());
    browser
        .post(
            path,
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("sku", "DESK-9"),
                ("name", name),
                ("description", "Oak, 160 cm"),
                ("price", "349.50"),
                ("currency", "EUR"),
                ("category", "furniture"),
            ],
        )
        .await
}

backend_tests! {
    async fn an_operator_creates_stocks_edits_and_archives_a_product(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let mut browser = operator(&app).await;
        let form = browser.get("/admin/products/new").await;
        assert_eq!(form.status, 200);
        let created = save_product(&mut browser, "/admin/products/new", &form, "Oak desk").await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text());
        let product = created.location().unwrap().to_owned();
        let id = product.trim_start_matches("/admin/products/").to_owned();

        // Stock, once inventory keeps a record for the new product.
        let page = browser.page_saying(&product, "data-stock").await;
        let adjusted = browser
            .post(&format!("{product}/stock"), &[("csrf", &page.csrf()), ("delta", "7"), ("reason", "first delivery")])
            .await;
        assert_eq!(adjusted.status, StatusCode::SEE_OTHER, "{}", adjusted.text());
        let page = browser.get(&product).await;
        assert!(page.text().contains("On hand 7") && page.text().contains("first delivery"), "{}", page.text());
        browser.page_saying(&format!("/products/{id}"), "7 available").await;
        assert!(browser.get(&format!("/products/{id}")).await.text().contains("349.50 EUR"));

        // Two tabs open the same version; the second save meets the first's change.
        let (tab_one, tab_two) = (browser.get(&product).await, browser.get(&product).await);
        assert_eq!(save_product(&mut browser, &product, &tab_one, "Oak desk, large").await.status, StatusCode::SEE_OTHER);
        let conflict = save_product(&mut browser, &product, &tab_two, "Oak writing desk").await;
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert!(conflict.text().contains("Someone else saved this product") && conflict.text().contains("Oak desk, large"), "{}", conflict.text());
        assert!(conflict.body.contains("value=\"Oak writing desk\""), "the operator's own values are kept");
        // Saving again, knowingly, replaces it.
        assert_eq!(save_product(&mut browser, &product, &conflict, "Oak writing desk").await.status, StatusCode::SEE_OTHER);
        browser.page_saying(&format!("/products/{id}"), "Oak writing desk").await;

        let page = browser.get(&product).await;
        let archived = browser.post(&format!("{product}/archive"), &[("csrf", &page.csrf())]).await;
        assert_eq!(archived.status, StatusCode::SEE_OTHER);
        assert!(browser.get(&product).await.text().contains("Archived"));
        assert_eq!(browser.get(&format!("/products/{id}")).await.status, 404);
        app.stop().await;
    }

    async fn an_operator_finds_a_customers_order_and_cancels_it_with_refund_and_restock(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (mut customer, lamp) = customer_with_a_cart(&app, "LAMP-ADM", 5, "2").await;
        let order = check_out(&mut customer, "tok_visa").await;
        customer.page_saying(&order, "data-status=\"confirmed\"").await;
        let id = order.trim_start_matches("/orders/").to_owned();

        let mut browser = operator(&app).await;
        let found = browser.get("/admin/orders?status=confirmed&email=lamp-adm%40example.com").await;
        assert!(found.body.contains(&id) && found.text().contains("lamp-adm@example.com"), "{}", found.text());
        let nobody = browser.get("/admin/orders?email=nobody%40example.com").await;
        assert!(nobody.text().contains("No account has the email nobody@example.com"));
        let elsewhere = browser.get("/admin/orders?status=cancelled&email=lamp-adm%40example.com").await;
        assert!(!elsewhere.body.contains(&id));

        let page = browser.get(&format!("/admin/orders/{id}")).await;
        assert!(page.text().contains("Payment captured, order confirmed") && page.body.contains("data-payment-status=\"captured\""), "{}", page.text());
        let cancelled = browser.post(&format!("/admin/orders/{id}/cancel"), &[("csrf", &page.csrf())]).await;
        assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
        let page = browser.page_saying(&format!("/admin/orders/{id}"), "refunded").await;
        assert!(page.text().contains("cancelled_by_admin"), "{}", page.text());
        wait_for("the stock back", || async { app.levels(&lamp).await == (5, 0) }).await;
        // The customer reads why.
        assert!(customer.get(&order).await.text().contains("The shop cancelled it"));
        app.stop().await;
    }

    async fn an_operator_replays_and_discards_dead_letters(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let mut browser = operator(&app).await;
        app.inject("commercex.orders", poisoned_order_placed()).await;
        let page = browser.page_saying("/admin/dead-letters", "commercex.order.placed.v1").await;
        assert!(!page.body.contains("tok_secret_card"), "payment tokens are redacted");
        let overview = browser.get("/admin").await;
        assert!(overview.text().contains("dead letters in payments"));
        // The first letter's form: replay it, then discard what is dead again.
        let action = |page: &Page| {
            let start = page.body.find("action=\"/admin/dead-letters/").unwrap() + "action=\"".len();
            page.body[start..start + page.body[start..].find('"').unwrap()].to_owned()
        };
        let replayed = browser.post(&action(&page), &[("csrf", &page.csrf()), ("action", "replay")]).await;
        assert_eq!(replayed.status, StatusCode::SEE_OTHER);
        let page = browser.page_saying("/admin/dead-letters", "value=\"discard\"").await;
        let discarded = browser.post(&action(&page), &[("csrf", &page.csrf()), ("action", "discard")]).await;
        assert_eq!(discarded.status, StatusCode::SEE_OTHER);
        app.stop().await;
    }

    async fn operators_promote_customers_but_cannot_demote_themselves(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let grace_id = app.register("grace@example.com").await["id"].as_str().unwrap().to_owned();
        app.register("heidi@example.com").await;
        // The accounts API finds accounts by id too, for the console's lists.
        let admin = app.admin_token().await;
        let by_id: serde_json::Value = app.get(&format!("/api/v1/admin/users?ids={grace_id}"), Some(&admin)).await.json().await.unwrap();
        assert_eq!(by_id["items"].as_array().unwrap().len(), 1);
        assert_eq!(by_id["items"][0]["email"], "grace@example.com");
        problem(app.get(&format!("/api/v1/admin/users?ids={grace_id},nobody"), Some(&admin)).await, 422).await;
        let mut browser = operator(&app).await;
        let found = browser.get("/admin/customers?q=GRACE").await;
        assert!(found.text().contains("grace@example.com") && !found.text().contains(ADMIN_EMAIL), "{}", found.text());
        let start = found.body.find("action=\"/admin/customers/").unwrap() + "action=\"".len();
        let promote = found.body[start..start + found.body[start..].find('"').unwrap()].to_owned();
        let promoted = browser.post(&promote, &[("csrf", &found.csrf()), ("admin", "true"), ("q", "grace")]).await;
        assert_eq!(promoted.status, StatusCode::SEE_OTHER);
        let mut grace = Browser::new(&app);
        grace.sign_in("grace@example.com", PASSWORD).await;
        assert_eq!(grace.get("/admin").await.status, 200, "an administrator now");

        let me = browser.get("/admin/customers?q=admin%40example.com").await;
        let start = me.body.find("action=\"/admin/customers/").unwrap() + "action=\"".len();
        let demote = me.body[start..start + me.body[start..].find('"').unwrap()].to_owned();
        let refused = browser.post(&demote, &[("csrf", &me.csrf()), ("admin", "false")]).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(refused.text().contains("cannot take away their own administrator role"));
        app.stop().await;
    }

    async fn the_order_search_filters_by_status_customer_and_date_and_refuses_bad_filters(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let lamp = app.orderable_product(&admin, "LAMP-S", 10).await;
        let (ann, _) = app.signed_up("ann@example.com").await;
        let (ben, _) = app.signed_up("ben@example.com").await;
        let mut placed = Vec::new();
        for (customer, card) in [(&ann, "tok_visa"), (&ann, "tok_chargeDeclined"), (&ben, "tok_visa")] {
            let response = app.place(customer, &uuid::Uuid::now_v7().to_string(), &order_body(&[(&lamp, 1)], card)).await;
            let id = response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
            app.settled(customer, &id).await;
            placed.push(id);
        }
        let ann_id = app.get("/api/v1/users/me", Some(&ann)).await.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let ids = |query: String| {
            let app = &app;
            let admin = admin.clone();
            async move {
                let response = app.get(&format!("/api/v1/admin/orders?{query}"), Some(&admin)).await;
                assert_eq!(response.status(), 200, "{query}");
                let page: serde_json::Value = response.json().await.unwrap();
                page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(String::new()).await, [placed[2].clone(), placed[1].clone(), placed[0].clone()], "every customer's, newest first");
        assert_eq!(ids(format!("customer_id={ann_id}")).await, [placed[1].clone(), placed[0].clone()]);
        assert_eq!(ids(format!("customer_id={ann_id}&status=confirmed")).await, [placed[0].clone()]);
        assert_eq!(ids("status=cancelled".into()).await, [placed[1].clone()]);
        assert_eq!(ids("placed_to=2020-01-01".into()).await, Vec::<String>::new());
        assert_eq!(ids("placed_from=2020-01-01T00:00:00Z&limit=1".into()).await, [placed[2].clone()]);
        let page: serde_json::Value = app.get("/api/v1/admin/orders?limit=2", Some(&admin)).await.json().await.unwrap();
        let next = page["next_cursor"].as_str().unwrap();
        assert_eq!(ids(format!("limit=2&cursor={next}")).await, [placed[0].clone()]);
        for bad in ["status=lost", "customer_id=nobody", "placed_from=yesterday", "limit=0", "colour=red"] {
            let refused = app.get(&format!("/api/v1/admin/orders?{bad}"), Some(&admin)).await;
            problem(refused, 422).await;
        }
        app.stop().await;
    }

    async fn the_dashboard_counts_orders_payments_and_events(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let lamp = app.orderable_product(&admin, "LAMP-D", 10).await;
        let (customer, _) = app.signed_up("dora@example.com").await;
        for card in ["tok_visa", "tok_chargeDeclined"] {
            let response = app.place(&customer, &uuid::Uuid::now_v7().to_string(), &order_body(&[(&lamp, 1)], card)).await;
            let id = response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
            app.settled(&customer, &id).await;
        }
        let get = |path: &'static str| {
            let (app, admin) = (&app, admin.clone());
            async move {
                let response = app.get(path, Some(&admin)).await;
                assert_eq!(response.status(), 200, "{path}");
                response.json::<serde_json::Value>().await.unwrap()
            }
        };
        let orders = get("/api/v1/admin/orders/summary").await;
        let per_minute = orders["placed_per_minute"].as_array().unwrap();
        assert_eq!(per_minute.len(), 60);
        assert_eq!(per_minute.iter().map(|n| n.as_i64().unwrap()).sum::<i64>(), 2);
        assert_eq!(orders["pending"], 0);
        assert_eq!(orders["last_day_by_status"], serde_json::json!({"cancelled": 1, "confirmed": 1}));
        assert_eq!(orders["last_day_cancelled_by_reason"], serde_json::json!({"payment_declined": 1}));
        let payments = get("/api/v1/admin/payments/summary").await;
        assert_eq!(payments["last_day_by_status"], serde_json::json!({"captured": 1, "failed": 1}));

        app.inject("commercex.orders", poisoned_order_placed()).await;
        wait_for("the poison dead-lettered", || async {
            get("/api/v1/admin/events/payments").await["dead_letters"]["payments"] == 1
        })
        .await;
        let flow = get("/api/v1/admin/events/orders").await;
        assert!(flow["outbox_backlog"].as_i64().is_some() && flow["consumer_lag"].is_array(), "{flow}");
        problem(app.get("/api/v1/admin/events/shipping", Some(&admin)).await, 404).await;

        let mut browser = operator(&app).await;
        let overview = browser.get("/admin").await;
        assert!(overview.text().contains("2 orders placed in the last hour"), "{}", overview.text());
        assert!(overview.text().contains("payment_declined 1") && overview.text().contains("1 dead letters in payments"), "{}", overview.text());
        app.stop().await;
    }

    async fn an_operator_registers_tests_replays_pauses_rotates_and_deletes_a_webhook(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let receiver = Receiver::up().await;
        let mut browser = operator(&app).await;
        let list = browser.get("/admin/webhooks").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(list.text().contains("No endpoint yet."), "{}", list.text());
        let csrf = list.csrf();
        let refused = browser
            .post("/admin/webhooks", &[("csrf", &csrf), ("url", "ftp://hooks.example.com/"), ("event_types", "commercex.order.*")])
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.text().contains("url:"), "{}", refused.text());
        assert!(browser.get("/admin/webhooks").await.text().contains("No endpoint yet."), "bad input changed nothing");

        let url = receiver.url();
        let created = browser
            .post("/admin/webhooks", &[("csrf", &csrf), ("url", &url), ("event_types", "commercex.order.*, commercex.payment.*"), ("description", "the warehouse")])
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text());
        assert!(created.text().contains("shown this once"), "{}", created.text());
        let secret = between(&created.body, "data-secret", ">", "<").to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let id = between(&created.body, "", "action=\"/admin/webhooks/", "/state").to_owned();
        let endpoint = format!("/admin/webhooks/{id}");
        let shown = browser.get(&endpoint).await;
        assert!(!shown.body.contains(&secret) && !shown.body.contains("whsec_"), "shown once only");
        assert!(shown.text().contains("healthy") && shown.text().contains("commercex.payment.*"), "{}", shown.text());
        let listed = browser.get("/admin/webhooks").await;
        assert!(listed.text().contains(&url) && listed.text().contains("the warehouse"), "{}", listed.text());

        // A test event, signed with the secret shown; then replayed from the page.
        let sent = browser.post(&format!("{endpoint}/test"), &[("csrf", &shown.csrf())]).await;
        assert_eq!(sent.location(), Some(endpoint.as_str()));
        wait_for("the test event", || async { receiver.delivered().len() == 1 }).await;
        let test = receiver.received().remove(0);
        assert!(signed_with(&test, &secret));
        let page = browser.page_saying(&endpoint, "delivered").await;
        assert!(page.text().contains("commercex.webhook.test.v1") && page.text().contains("HTTP 200"), "{}", page.text());
        let delivery = between(&page.body, "/deliveries/", "", "/replay").to_owned();
        let replayed = browser.post(&format!("{endpoint}/deliveries/{delivery}/replay"), &[("csrf", &page.csrf())]).await;
        assert_eq!(replayed.location(), Some(endpoint.as_str()));
        wait_for("the replay", || async { receiver.delivered() == vec![test.id.clone(), test.id.clone()] }).await;

        // Paused, then enabled again.
        let paused = browser.post(&format!("{endpoint}/state"), &[("csrf", &page.csrf()), ("action", "pause")]).await;
        assert_eq!(paused.location(), Some(endpoint.as_str()));
        assert!(browser.get(&endpoint).await.body.contains("data-state=\"paused\""));
        browser.post(&format!("{endpoint}/state"), &[("csrf", &page.csrf()), ("action", "enable")]).await;
        assert!(browser.get(&endpoint).await.body.contains("data-state=\"healthy\""));

        // A new secret, the old one retired at once: what goes out next is signed by the new only.
        let rotated = browser.post(&format!("{endpoint}/rotate"), &[("csrf", &page.csrf()), ("overlap", "0")]).await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
        let fresh = between(&rotated.body, "data-secret", ">", "<").to_owned();
        assert!(fresh.starts_with("whsec_") && fresh != secret, "{fresh}");
        browser.post(&format!("{endpoint}/test"), &[("csrf", &page.csrf())]).await;
        wait_for("the second test event", || async { receiver.delivered().len() == 3 }).await;
        let last = receiver.received().pop().unwrap();
        assert!(signed_with(&last, &fresh) && !signed_with(&last, &secret), "{}", last.signature);
        let odd = browser.post(&format!("{endpoint}/rotate"), &[("csrf", &page.csrf()), ("overlap", "12345")]).await;
        assert_eq!(odd.status, StatusCode::NOT_FOUND, "an overlap the form does not offer");

        let deleted = browser.post(&format!("{endpoint}/delete"), &[("csrf", &page.csrf())]).await;
        assert_eq!(deleted.location(), Some("/admin/webhooks"));
        assert!(browser.get("/admin/webhooks").await.text().contains("No endpoint yet."));
        assert_eq!(browser.get(&endpoint).await.status, StatusCode::NOT_FOUND);
        app.stop().await;
    }

    async fn customers_and_visitors_cannot_open_the_console(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let mut visitor = Browser::new(&app);
        let page = visitor.get("/admin/orders").await;
        assert_eq!(page.location(), Some("/login?next=%2Fadmin%2Forders"));
        visitor.sign_up("Mallory", "mallory@example.com", "/").await;
        for path in ["/admin", "/admin/orders", "/admin/products/new", "/admin/dead-letters", "/admin/customers", "/admin/webhooks"] {
            assert_eq!(visitor.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
        }
        let csrf = visitor.get("/orders").await.csrf();
        let forged = visitor.post("/admin/products/new", &[("csrf", &csrf), ("sku", "X-1"), ("name", "X"), ("price", "1"), ("currency", "EUR"), ("category", "x")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}
