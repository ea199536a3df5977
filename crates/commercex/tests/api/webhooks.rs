//! Webhooks end to end: a real receiver that is down, fails, asks for time and is too slow
//! gets every event it subscribed to, signed (checked with the Standard Webhooks reference
//! library), at least once, in event-time order, the same `webhook-id` on every try; through
//! a restart of CommerceX; and the breaker disables an endpoint that stays dead.

use std::collections::HashSet;
use std::time::Duration;

use platform::sealing::SealingKeys;
use serde_json::{Value, json};
use testkit::{TestStorage, app_tests, backend_tests, wait_for_within};

use crate::helpers::*;

/// Backoff short enough for a test: 200 ms doubling to 2 s; a try gives up after 1 s.
const FAST: &[&str] = &[
    "--webhook-retry-first",
    "200ms",
    "--webhook-retry-max",
    "2s",
    "--webhook-timeout",
    "1s",
];

/// [`FAST`], with webhook secret keys of the test's own (`lines`, written into `dir`): on
/// PostgreSQL an app started again gets a new data directory, and with it a new development
/// key, which opens none of the secrets sealed before.
fn fast_with_keys(dir: &std::path::Path, lines: &[&str]) -> Vec<String> {
    let file = write_file(dir, "webhook-secret-keys", &lines.join("\n"));
    let mut options: Vec<String> = FAST.iter().map(|s| (*s).to_owned()).collect();
    options.extend([
        "--webhook-secret-keys-file".to_owned(),
        file.display().to_string(),
    ]);
    options
}

fn as_strs(options: &[String]) -> Vec<&str> {
    options.iter().map(String::as_str).collect()
}

/// Places an order for one unit of `product` and waits until it is confirmed.
async fn confirmed_order(app: &TestApp, customer: &str, product: &str, key: &str) -> String {
    let placed: Value = app
        .place(customer, key, &order_body(&[(product, 1)], "tok_visa"))
        .await
        .json()
        .await
        .unwrap();
    let id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(customer, &id).await.status, "confirmed");
    id
}

/// Sends the endpoint a test event; its webhook-id.
async fn send_test(app: &TestApp, admin: &str, endpoint: &str) -> String {
    let path = format!("/api/v1/admin/webhooks/endpoints/{endpoint}/test");
    let response = app
        .send(reqwest::Method::POST, &path, Some(admin), None)
        .await;
    assert_eq!(response.status(), 202);
    let queued: Value = response.json().await.unwrap();
    queued["webhook_id"].as_str().unwrap().to_owned()
}

/// Whether one of the `webhook-signature` header's signatures is `secret`'s.
pub fn signed_with(received: &Received, secret: &str) -> bool {
    let secret = webhooks::domain::SigningSecret::parse(secret).unwrap();
    let timestamp: i64 = received.timestamp.parse().unwrap();
    let expected = secret.sign(&received.id, timestamp, received.body.as_bytes());
    received
        .signature
        .split(' ')
        .any(|signature| signature == expected)
}

async fn deliveries(app: &TestApp, admin: &str, endpoint: &str, query: &str) -> Vec<Value> {
    let page = app
        .webhook(admin, &format!("{endpoint}/deliveries?limit=200{query}"))
        .await;
    page["items"].as_array().unwrap().clone()
}

app_tests! {
    async fn deliveries_survive_failures_and_arrive_signed_in_event_order(storage: TestStorage) {
        let app = spawn_app_with(&storage, FAST).await;
        let admin = app.admin_token().await;
        let receiver = Receiver::up().await;
        // The first event meets a 500, a 429 asking for 1 s, an answer too slow to wait for.
        receiver.script([
            Reply::Status(500),
            Reply::TooMany(1),
            Reply::Slow(Duration::from_secs(3)),
        ]);
        let types = ["commercex.order.*", "commercex.payment.*"];
        let (endpoint, secret) = app.webhook_endpoint(&admin, &receiver.url(), &types).await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        let product = app.orderable_product(&admin, "HOOK-1", 10).await;
        let (customer, _) = app.signed_up("hooked@example.com").await;
        let order = confirmed_order(&app, &customer, &product, "hook-1").await;

        wait_for_within("placed, captured and confirmed delivered", Duration::from_secs(30), || async {
            receiver.delivered().len() >= 3
        })
        .await;
        let received = receiver.received();
        // The first three requests met the script; then each event went through once.
        let answers: Vec<u16> = received.iter().map(|r| r.answered).collect();
        assert_eq!(answers[..3], [500, 429, 0], "{answers:?}");
        assert_eq!(answers.len(), 6, "three failures, then each event once: {answers:?}");
        // A failed delivery goes again with the same webhook-id, once the 429's Retry-After
        // (1 s) is over.
        let asked = &received[1];
        let again = received[2..].iter().find(|r| r.id == asked.id).expect("the 429 tried again");
        assert!(again.at - asked.at >= Duration::from_secs(1), "Retry-After honoured: {:?}", again.at - asked.at);
        let delivered: Vec<&Received> = received.iter().filter(|r| r.answered == 200).collect();
        let mut kinds: Vec<String> = delivered.iter().map(|r| r.event()["type"].as_str().unwrap().to_owned()).collect();
        if app.deployment.is_some() {
            // From Kafka, payments' topic may reach the webhooks service before the orders
            // topic: an event recorded after a later one was sent goes after it.
            kinds.sort();
        }
        let mut expected = vec!["commercex.order.placed.v1", "commercex.payment.captured.v1", "commercex.order.confirmed.v1"];
        if app.deployment.is_some() {
            expected.sort();
        }
        assert_eq!(kinds, expected, "once each, in event-time order");
        for delivery in &delivered {
            let event = delivery.event();
            assert_eq!(event["id"], delivery.id.as_str(), "webhook-id is the event's id");
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(event["correlationid"], order.as_str());
            assert!(delivery.content_type.starts_with("application/cloudevents+json"));
        }
        verify_with_reference_library(&received, &[&secret]).await;

        // What an operator sees: three delivered, each with every try it took.
        let listed = deliveries(&app, &admin, &endpoint, "&status=delivered").await;
        assert_eq!(listed.len(), 3, "{listed:?}");
        for (n, scripted) in received[..3].iter().enumerate() {
            let tries = received.iter().filter(|r| r.id == scripted.id).count();
            let delivery = listed.iter().find(|d| d["webhook_id"] == scripted.id.as_str()).unwrap();
            assert_eq!(delivery["attempts"], tries, "{delivery}");
            assert_eq!(delivery["last_status_code"], 200);
            let detail = app
                .webhook(&admin, &format!("{endpoint}/deliveries/{}", delivery["id"].as_str().unwrap()))
                .await;
            let attempts = detail["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), tries, "{detail}");
            let answered = |a: &Value| (a["status_code"].clone(), a["error"].as_str().unwrap_or_default().to_owned());
            let seen: Vec<(Value, String)> = attempts.iter().map(answered).collect();
            let expected = match n {
                0 => (json!(500), "HTTP 500"),
                1 => (json!(429), "HTTP 429"),
                _ => (Value::Null, "timed out"),
            };
            assert!(
                seen.iter().any(|(code, error)| *code == expected.0 && error.starts_with(expected.1)),
                "{detail}"
            );
        }
        assert_eq!(app.webhook(&admin, &endpoint).await["state"], "healthy");
        app.stop().await;
    }
}

backend_tests! {
    async fn an_endpoint_down_through_a_restart_gets_every_event_once_it_is_back(storage: TestStorage) {
        let mut receiver = Receiver::down();
        let keys_dir = tempfile::tempdir().unwrap();
        let options = fast_with_keys(keys_dir.path(), &[&SealingKeys::generate_line().unwrap()]);
        let app = spawn_app_with(&storage, &as_strs(&options)).await;
        let admin = app.admin_token().await;
        let (endpoint, secret) = app.webhook_endpoint(&admin, &receiver.url(), &["commercex.order.*"]).await;
        let product = app.orderable_product(&admin, "HOOK-2", 10).await;
        let (customer, _) = app.signed_up("patient@example.com").await;
        for n in 0..3 {
            confirmed_order(&app, &customer, &product, &format!("down-{n}")).await;
        }
        wait_for("the endpoint failing", || async {
            app.webhook(&admin, &endpoint).await["state"] == "failing"
        })
        .await;
        // Placed and confirmed, for three orders: recorded (the webhooks consumer follows the
        // saga's last event by a moment), waiting.
        wait_for("six deliveries recorded", || async {
            deliveries(&app, &admin, &endpoint, "&status=pending").await.len() == 6
        })
        .await;
        let waiting = deliveries(&app, &admin, &endpoint, "&status=pending").await;
        let expected: HashSet<String> = waiting.iter().map(|d| d["webhook_id"].as_str().unwrap().to_owned()).collect();
        app.stop().await;

        receiver.come_up().await;
        let app = spawn_app_with(&storage, &as_strs(&options)).await;
        wait_for("every waiting event delivered", || async {
            receiver.delivered().into_iter().collect::<HashSet<_>>() == expected
        })
        .await;
        let received: Vec<Received> = receiver.received().into_iter().filter(|r| r.answered == 200).collect();
        let times: Vec<String> = received.iter().map(|r| r.event()["time"].as_str().unwrap().to_owned()).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "delivered in event-time order");
        verify_with_reference_library(&received, &[&secret]).await;
        let admin = app.admin_token().await;
        wait_for("the endpoint healthy again", || async {
            app.webhook(&admin, &endpoint).await["state"] == "healthy"
        })
        .await;
        app.stop().await;
    }

    async fn signing_secrets_are_sealed_at_rest_and_sealed_again_under_a_new_key(storage: TestStorage) {
        let keys_dir = tempfile::tempdir().unwrap();
        let (old_key, new_key, other_key) = (
            SealingKeys::generate_line().unwrap(),
            SealingKeys::generate_line().unwrap(),
            SealingKeys::generate_line().unwrap(),
        );
        let with_keys = |lines: &[&str]| fast_with_keys(keys_dir.path(), lines);
        let stored = async |app: &TestApp| -> Vec<(String, String)> {
            let db = app.database("webhooks").await;
            sqlx::query_as("SELECT endpoint_id, secret FROM webhook_secrets ORDER BY id")
                .fetch_all(db.pool())
                .await
                .unwrap()
        };
        let options = with_keys(&[&old_key]);
        let app = spawn_app_with(&storage, &as_strs(&options)).await;
        let admin = app.admin_token().await;
        let (first_receiver, second_receiver) = (Receiver::up().await, Receiver::up().await);
        let types = ["commercex.order.*"];
        let (first, first_secret) = app.webhook_endpoint(&admin, &first_receiver.url(), &types).await;
        let (second, second_secret) = app.webhook_endpoint(&admin, &second_receiver.url(), &types).await;
        let old = SealingKeys::parse(&old_key).unwrap();
        for (endpoint, secret) in stored(&app).await {
            assert!(old.sealed_by_current_key(&secret), "{endpoint}: {secret}");
            for shown in [&first_secret, &second_secret] {
                let key = shown.trim_start_matches("whsec_");
                assert!(!secret.contains(key) && !secret.contains("whsec_"), "in the clear: {secret}");
            }
        }
        // The second secret as a version before sealing kept it: in the clear.
        let db = app.database("webhooks").await;
        sqlx::query("UPDATE webhook_secrets SET secret = $1 WHERE endpoint_id = $2")
            .bind(&second_secret)
            .bind(&second)
            .execute(db.pool())
            .await
            .unwrap();
        app.stop().await;

        // A new key first, the old one below it: at start-up every secret is sealed under the
        // new key, and each still signs as the one its receiver holds.
        let options = with_keys(&[&new_key, &old_key]);
        let app = spawn_app_with(&storage, &as_strs(&options)).await;
        let rotated = SealingKeys::parse(&[new_key.as_str(), &old_key].join("\n")).unwrap();
        let secrets = stored(&app).await;
        assert_eq!(secrets.len(), 2);
        for (endpoint, secret) in &secrets {
            assert!(rotated.sealed_by_current_key(secret), "{endpoint}: {secret}");
        }
        let admin = app.admin_token().await;
        send_test(&app, &admin, &first).await;
        send_test(&app, &admin, &second).await;
        wait_for("both test events delivered", || async {
            first_receiver.delivered().len() == 1 && second_receiver.delivered().len() == 1
        })
        .await;
        for (receiver, secret) in [(&first_receiver, &first_secret), (&second_receiver, &second_secret)] {
            let received = receiver.received();
            assert!(signed_with(&received[0], secret), "{:?}", received[0].signature);
            verify_with_reference_library(&received, &[secret]).await;
        }
        app.stop().await;

        // Keys that open none of the secrets: the service starts, sends nothing unsigned, says
        // why on the delivery, and a rotated secret signs again.
        let options = with_keys(&[&other_key]);
        let app = spawn_app_with(&storage, &as_strs(&options)).await;
        let admin = app.admin_token().await;
        let waiting = send_test(&app, &admin, &first).await;
        wait_for("a try that was not sent", || async {
            let tried = deliveries(&app, &admin, &first, "&status=pending").await;
            tried.iter().any(|d| {
                d["webhook_id"] == waiting.as_str()
                    && d["last_error"].as_str().is_some_and(|e| e.starts_with("not sent"))
            })
        })
        .await;
        assert_eq!(first_receiver.received().len(), 1, "nothing unsigned went out");
        let rotate = format!("/api/v1/admin/webhooks/endpoints/{first}/secret/rotate");
        let rotated: Value = app
            .send(reqwest::Method::POST, &rotate, Some(&admin), Some(&json!({"overlap_seconds": 0})))
            .await
            .json()
            .await
            .unwrap();
        let fresh = rotated["secret"].as_str().unwrap().to_owned();
        wait_for("the waiting event delivered", || async {
            first_receiver.delivered() == vec![first_receiver.received()[0].id.clone(), waiting.clone()]
        })
        .await;
        let sent = first_receiver.received().pop().unwrap();
        assert!(signed_with(&sent, &fresh), "{:?}", sent.signature);
        app.stop().await;
    }

    async fn the_breaker_disables_a_dead_endpoint_and_enabling_it_sends_what_waited(storage: TestStorage) {
        let mut receiver = Receiver::down();
        let mut options = FAST.to_vec();
        options.extend(["--webhook-disable-after", "1s"]);
        let app = spawn_app_with(&storage, &options).await;
        let admin = app.admin_token().await;
        let (endpoint, _) = app.webhook_endpoint(&admin, &receiver.url(), &["commercex.order.*"]).await;
        let first = send_test(&app, &admin, &endpoint).await;
        wait_for("the breaker to disable the endpoint", || async {
            app.webhook(&admin, &endpoint).await["state"] == "disabled"
        })
        .await;
        let disabled = app.webhook(&admin, &endpoint).await;
        assert!(disabled["disabled_reason"].as_str().unwrap().contains("could not connect"), "{disabled}");
        assert_eq!(disabled["enabled"], false);
        wait_for("the disabled endpoint in the metrics", || async {
            let text = app.metrics_of(&app.url("")).await;
            sample(&text, "commercex_webhook_endpoints", &["state=\"disabled\""]) == Some(1.0)
        })
        .await;
        // Still recorded while disabled by the breaker, to go out once it is enabled.
        let second = send_test(&app, &admin, &endpoint).await;
        receiver.come_up().await;
        let enabled = app
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/admin/webhooks/endpoints/{endpoint}"),
                Some(&admin),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(enabled.status(), 200);
        let enabled: Value = enabled.json().await.unwrap();
        assert_eq!(enabled["state"], "healthy", "{enabled}");
        assert!(enabled.get("disabled_reason").is_none());
        wait_for("both test events delivered", || async { receiver.delivered().len() == 2 }).await;
        assert_eq!(receiver.delivered(), vec![first, second]);
        app.stop().await;
    }

    async fn delivered_history_is_pruned_after_its_retention_and_waiting_deliveries_stay(storage: TestStorage) {
        let app = spawn_app_with(&storage, FAST).await;
        let admin = app.admin_token().await;
        let receiver = Receiver::up().await;
        let (up, _) = app.webhook_endpoint(&admin, &receiver.url(), &["commercex.order.*"]).await;
        let unreachable = Receiver::down();
        let (down, _) = app.webhook_endpoint(&admin, &unreachable.url(), &["commercex.order.*"]).await;
        send_test(&app, &admin, &up).await;
        send_test(&app, &admin, &down).await;
        wait_for("the reachable endpoint's delivery", || async { receiver.delivered().len() == 1 }).await;
        wait_for("a failed try at the other", || async {
            deliveries(&app, &admin, &down, "").await[0]["attempts"].as_i64().unwrap() > 0
        })
        .await;

        let retention = webhooks::retention::Retention::new(
            app.webhook_store().await,
            Duration::from_secs(30 * 24 * 60 * 60),
        );
        let now = chrono::Utc::now();
        let nothing = webhooks::retention::Pruned::default();
        assert_eq!(retention.prune(now).await.unwrap(), nothing, "all of it is recent");
        let later = now + chrono::Duration::days(31);
        let pruned = retention.prune(later).await.unwrap();
        assert_eq!(pruned, webhooks::retention::Pruned { deliveries: 1, messages: 1 });
        assert!(deliveries(&app, &admin, &up, "").await.is_empty(), "the delivered one is gone");
        let waiting = deliveries(&app, &admin, &down, "").await;
        assert_eq!(waiting.len(), 1, "the waiting one stays, however old");
        assert_eq!(waiting[0]["status"], "pending");
        assert_eq!(retention.prune(later).await.unwrap(), nothing);
        app.stop().await;
    }

    async fn operators_manage_endpoints_rotate_secrets_and_replay(storage: TestStorage) {
        let app = spawn_app_with(&storage, FAST).await;
        let admin = app.admin_token().await;
        let (customer, _) = app.signed_up("nosy@example.com").await;
        let endpoints = "/api/v1/admin/webhooks/endpoints";
        let post = |token: String, body: Value| {
            let app = &app;
            async move { app.send(reqwest::Method::POST, endpoints, Some(&token), Some(&body)).await }
        };
        let body = json!({"url": "https://hooks.example.com/in", "event_types": ["commercex.order.*"]});
        assert_eq!(post(customer.clone(), body.clone()).await.status(), 403);
        for (bad, field) in [
            (json!({"url": "http://hooks.example.com/in", "event_types": ["commercex.order.*"]}), "url"),
            (json!({"url": "ftp://hooks.example.com/", "event_types": ["*"]}), "url"),
            (json!({"url": "https://hooks.example.com/", "event_types": ["commercex.ordr.*"]}), "event_types"),
            (json!({"url": "https://hooks.example.com/", "event_types": []}), "event_types"),
            (json!({"url": "https://hooks.example.com/", "event_types": ["commercex.*.placed"]}), "event_types"),
        ] {
            let refused = problem(post(admin.clone(), bad.clone()).await, 422).await;
            assert_eq!(refused["errors"][0]["field"], field, "{bad} -> {refused}");
        }
        let unknown = json!({"url": "https://hooks.example.com/", "event_types": ["*"], "colour": "red"});
        assert_eq!(post(admin.clone(), unknown).await.status(), 422);
        let listed = app.webhook(&admin, "").await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 0, "bad input changed nothing");
        assert_eq!(app.get(&format!("{endpoints}/{}", uuid::Uuid::now_v7()), Some(&admin)).await.status(), 404);

        let receiver = Receiver::up().await;
        let (endpoint, old) = app.webhook_endpoint(&admin, &receiver.url(), &["commercex.order.*"]).await;
        let shown = app.webhook(&admin, &endpoint).await;
        assert!(!shown.to_string().contains("whsec_"), "the secret is shown once: {shown}");
        let rotated: Value = app
            .send(reqwest::Method::POST, &format!("{endpoints}/{endpoint}/secret/rotate"), Some(&admin), Some(&json!({"overlap_seconds": 3600})))
            .await
            .json()
            .await
            .unwrap();
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        let sent = send_test(&app, &admin, &endpoint).await;
        wait_for("the test event", || async { receiver.delivered().len() == 1 }).await;
        let test = receiver.received().remove(0);
        assert_eq!(test.id, sent);
        assert_eq!(test.event()["type"], "commercex.webhook.test.v1");
        assert_eq!(test.signature.split(' ').count(), 2, "both secrets sign during the overlap");
        // Each secret on its own verifies it: the receiver may switch at any time.
        verify_with_reference_library(std::slice::from_ref(&test), &[&old, &new]).await;

        // Replayed, it arrives again with the same webhook-id; "since" queues it once more.
        let delivery = deliveries(&app, &admin, &endpoint, "").await[0]["id"].as_str().unwrap().to_owned();
        let replay = app.send(reqwest::Method::POST, &format!("{endpoints}/{endpoint}/deliveries/{delivery}/replay"), Some(&admin), None).await;
        assert_eq!(replay.status(), 202);
        wait_for("the replay", || async { receiver.delivered().len() == 2 }).await;
        let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
        let queued: Value = app
            .send(reqwest::Method::POST, &format!("{endpoints}/{endpoint}/replay"), Some(&admin), Some(&json!({"since": since})))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(queued, json!({"queued": 0, "more": false}), "a test event is not of the endpoint's types");
        assert!(receiver.delivered().iter().all(|id| *id == test.id));

        let patched = app
            .send(reqwest::Method::PATCH, &format!("{endpoints}/{endpoint}"), Some(&admin), Some(&json!({"event_types": ["commercex.order.cancelled.v1"], "description": "cancellations"})))
            .await;
        assert_eq!(patched.status(), 200);
        let patched: Value = patched.json().await.unwrap();
        assert_eq!(patched["event_types"], json!(["commercex.order.cancelled.v1"]));
        assert_eq!(patched["version"], 2);
        let deleted = app.send(reqwest::Method::DELETE, &format!("{endpoints}/{endpoint}"), Some(&admin), None).await;
        assert_eq!(deleted.status(), 204);
        assert_eq!(app.get(&format!("{endpoints}/{endpoint}"), Some(&admin)).await.status(), 404);
        app.stop().await;
    }
}

/// Distributed, the webhooks service knows which events endpoints want from what PostgreSQL
/// tells it of every change to them, whoever commits it: until an endpoint wants an order's
/// events they cost it no transaction (skipped, not handled), and once an endpoint is
/// enabled by hand in the database, not through this instance, the next order reaches it.
#[tokio::test]
async fn a_subscription_committed_elsewhere_is_heard_and_unwanted_events_cost_nothing() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let app = spawn_app_with(&storage, FAST).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::up().await;
    let response = app
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/webhooks/endpoints",
            Some(&admin),
            Some(&json!({"url": receiver.url(), "event_types": ["commercex.order.*"], "enabled": false})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let product = app.orderable_product(&admin, "HOOK-HEARD", 10).await;
    let (customer, _) = app.signed_up("heard@example.com").await;

    // Nobody wants this order's events: the webhooks consumer moves past them.
    confirmed_order(&app, &customer, &product, "heard-1").await;
    let webhooks = app.deployment.as_ref().unwrap().named("webhooks")[0].url();
    let consumed = |text: &str, outcome: &str| {
        sample(
            text,
            "commercex_events_consumed_total",
            &[
                "consumer_group=\"webhooks\"",
                "event_type=\"commercex.order.confirmed.v1\"",
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    wait_for(
        "the webhooks consumer past the first confirmation",
        || async { consumed(&app.metrics_of(&webhooks).await, "skipped").is_some() },
    )
    .await;
    let text = app.metrics_of(&webhooks).await;
    assert_eq!(
        consumed(&text, "handled"),
        None,
        "an unwanted event opened a transaction"
    );

    // Enabled by hand: only PostgreSQL's notification tells the service.
    let db = app.database("webhooks").await;
    sqlx::query("UPDATE webhook_endpoints SET enabled = 1 WHERE id = $1")
        .bind(&endpoint)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let order = confirmed_order(&app, &customer, &product, "heard-2").await;
    wait_for_within(
        "the second order's events delivered",
        Duration::from_secs(30),
        || async { receiver.delivered().len() >= 2 },
    )
    .await;
    for delivery in receiver.received().iter().filter(|r| r.answered == 200) {
        assert_eq!(
            delivery.event()["correlationid"],
            order.as_str(),
            "only the second order's events"
        );
    }
    app.stop().await;
}
