//! What an operator sees from outside: one trace per checkout across every hop, Prometheus
//! metrics that promtool accepts on every process, and JSON logs that carry ids and never
//! secrets.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::otlp::{Collector, ReceivedSpan};
use testkit::{TestStorage, app_tests};

use crate::deployment::{Layout, launch};
use crate::helpers::*;

const TOPIC_ORDERS: &str = "commercex.orders";
const TOPIC_INVENTORY: &str = "commercex.inventory";
const TOPIC_PAYMENTS: &str = "commercex.payments";

fn order_body(product: &str, payment_token: &str) -> Value {
    json!({
        "items": [{"product_id": product, "quantity": 1}],
        "payment_token": payment_token,
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"}
    })
}

/// Tracing to `collector`, exported quickly so a test does not wait for the default 5 s batch.
fn otel_env(collector: &Collector) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ]
}

/// Places one order under a trace the test starts itself, waits for it to be confirmed, and
/// returns the trace id.
async fn traced_checkout(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "TRACE-1", 10).await;
    let (customer, _) = app.signed_up("traced@example.com").await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let response = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&customer)
        .header("idempotency-key", "traced-1")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&order_body(&product, "tok_visa"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.settled(&customer, &id).await.status, "confirmed");
    trace_id
}

/// The spans of `trace_id`, once the confirmation's consumer span has arrived and every span
/// has its parent (processes export on their own schedules, so a parent may come last).
async fn spans_of(collector: &Collector, trace_id: &str) -> HashMap<String, ReceivedSpan> {
    let trace = || -> HashMap<String, ReceivedSpan> {
        collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| (s.span_id.clone(), s))
            .collect()
    };
    let confirmed = |spans: &HashMap<String, ReceivedSpan>| {
        spans.values().any(|s| {
            s.kind == "SPAN_KIND_CONSUMER"
                && s.attributes.get("event_type").map(String::as_str)
                    == Some("commercex.payment.captured.v1")
                && s.attributes
                    .get("messaging.consumer.group.name")
                    .map(String::as_str)
                    == Some("orders")
        })
    };
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let spans = trace();
            if confirmed(&spans) && cut_off(&spans).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let spans = trace();
    if waited.is_err() {
        assert!(confirmed(&spans), "the confirmation's span never arrived");
        panic!("spans cut off from the trace: {:?}", cut_off(&spans));
    }
    spans
}

/// From the span where orders handled the captured payment up to the root: `(service, kind,
/// name)` of each span that crosses a boundary (server, client, producer, consumer; database
/// transactions are client spans).
fn path_to_root(spans: &HashMap<String, ReceivedSpan>) -> Vec<(String, String, String)> {
    let mut span = spans
        .values()
        .find(|s| {
            s.kind == "SPAN_KIND_CONSUMER"
                && s.attributes
                    .get("messaging.consumer.group.name")
                    .map(String::as_str)
                    == Some("orders")
                && s.attributes.get("event_type").map(String::as_str)
                    == Some("commercex.payment.captured.v1")
        })
        .expect("orders handled the payment in this trace");
    let mut path = Vec::new();
    loop {
        if span.kind != "SPAN_KIND_INTERNAL" {
            path.push((span.service.clone(), span.kind.clone(), span.name.clone()));
        }
        if span.parent_span_id == "00f067aa0ba902b7" {
            return path;
        }
        span = spans.get(&span.parent_span_id).unwrap_or_else(|| {
            panic!(
                "span {} ({}) has a parent that is not in the trace: {:#?}",
                span.name,
                span.service,
                spans
                    .values()
                    .map(|s| (&s.service, &s.name))
                    .collect::<Vec<_>>()
            )
        });
    }
}

fn step(service: &str, kind: &str, name: &str) -> (String, String, String) {
    (
        service.to_owned(),
        format!("SPAN_KIND_{kind}"),
        name.to_owned(),
    )
}

/// `(service, name)` of every span whose parent is neither in the trace nor the test's own
/// span.
fn cut_off(spans: &HashMap<String, ReceivedSpan>) -> Vec<(String, String)> {
    spans
        .values()
        .filter(|s| {
            s.parent_span_id != "00f067aa0ba902b7" && !spans.contains_key(&s.parent_span_id)
        })
        .map(|s| (s.service.clone(), s.name.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_is_one_trace_across_every_service() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let collector = Collector::start().await;
    let layout = Layout {
        env: otel_env(&collector),
        ..Layout::default()
    };
    let app = spawn_app_layout(&storage, &[], &layout).await;
    let trace_id = traced_checkout(&app).await;
    let spans = spans_of(&collector, &trace_id).await;
    let mut path = path_to_root(&spans);
    path.reverse();
    let expected = vec![
        step("commercex-gateway", "SERVER", "POST /api/v1/orders"),
        step("commercex-gateway", "CLIENT", "POST"),
        step("commercex-orders", "SERVER", "POST /api/v1/orders"),
        step(
            "commercex-orders",
            "PRODUCER",
            &format!("{TOPIC_ORDERS} publish"),
        ),
        step(
            "commercex-inventory",
            "CONSUMER",
            &format!("{TOPIC_ORDERS} process"),
        ),
        step(
            "commercex-inventory",
            "PRODUCER",
            &format!("{TOPIC_INVENTORY} publish"),
        ),
        step(
            "commercex-payments",
            "CONSUMER",
            &format!("{TOPIC_INVENTORY} process"),
        ),
        step(
            "commercex-payments",
            "PRODUCER",
            &format!("{TOPIC_PAYMENTS} publish"),
        ),
        step(
            "commercex-orders",
            "CONSUMER",
            &format!("{TOPIC_PAYMENTS} process"),
        ),
    ];
    assert_eq!(path, expected);
    // The relay's batches link to the events they carry instead of joining their traces.
    let relay = collector
        .spans()
        .into_iter()
        .find(|s| s.name == "outbox relay" && s.links.iter().any(|(t, _)| *t == trace_id));
    assert!(relay.is_some(), "no relay span links to the checkout");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_is_one_trace_in_the_embedded_runtime() {
    let Some(storage) = TestStorage::sqlite().await else {
        return;
    };
    let collector = Collector::start().await;
    let (args, data_dir, _guard) = storage_args(&storage);
    let password_file = write_file(&data_dir, "admin-password", &format!("{PASSWORD}\n"));
    let mut env = otel_env(&collector);
    env.extend([
        ("COMMERCEX_ADMIN_EMAIL".to_owned(), ADMIN_EMAIL.to_owned()),
        (
            "COMMERCEX_ADMIN_PASSWORD_FILE".to_owned(),
            password_file.display().to_string(),
        ),
        ("COMMERCEX_LOG_FORMAT".to_owned(), "json".to_owned()),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut process = launch("embedded", &["serve"], &args, &env, &data_dir).await;
    let app = TestApp::attach(process.addr.parse().unwrap(), &storage);
    let trace_id = traced_checkout(&app).await;
    let spans = spans_of(&collector, &trace_id).await;
    let mut path = path_to_root(&spans);
    path.reverse();
    let expected = vec![
        step("commercex", "SERVER", "POST /api/v1/orders"),
        step("commercex", "PRODUCER", &format!("{TOPIC_ORDERS} publish")),
        step("commercex", "CONSUMER", &format!("{TOPIC_ORDERS} process")),
        step(
            "commercex",
            "PRODUCER",
            &format!("{TOPIC_INVENTORY} publish"),
        ),
        step(
            "commercex",
            "CONSUMER",
            &format!("{TOPIC_INVENTORY} process"),
        ),
        step(
            "commercex",
            "PRODUCER",
            &format!("{TOPIC_PAYMENTS} publish"),
        ),
        step(
            "commercex",
            "CONSUMER",
            &format!("{TOPIC_PAYMENTS} process"),
        ),
    ];
    assert_eq!(path, expected);
    // Each consumer's batch transaction links to the events it handled.
    let batches = collector.spans().into_iter().filter(|s| {
        s.name.starts_with("handle events") && s.links.iter().any(|(t, _)| *t == trace_id)
    });
    assert!(
        batches.count() >= 3,
        "the batches of inventory, payments and orders link to the checkout"
    );
    let status = crate::cli::signal_and_wait(&mut process.child, "-TERM").await;
    assert!(status.success());
}

/// `promtool check metrics` on `text`, when promtool is installed (CI must have it).
async fn promtool_accepts(text: &str) {
    let Some(promtool) = testkit::required_tool("promtool", "promtool check metrics") else {
        return;
    };
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_serves_metrics_that_promtool_accepts() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let app = spawn_app_layout(&storage, &[], &Layout::default()).await;
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "METRIC-1", 1).await;
    let (customer, _) = app.signed_up("metrics@example.com").await;
    let mut ids = Vec::new();
    for key in ["m-1", "m-2"] {
        let response = app
            .place(&customer, key, &order_body(&product, "tok_visa"))
            .await;
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut outcomes = Vec::new();
    for id in &ids {
        outcomes.push(app.settled(&customer, id).await.status);
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["cancelled", "confirmed"],
        "one unit for two orders"
    );
    let deployment = app.deployment.as_ref().unwrap();
    let mut texts = HashMap::new();
    for process in &deployment.processes {
        let text = app.metrics_of(&process.url()).await;
        promtool_accepts(&text).await;
        let service = process.name.split('-').next().unwrap().to_owned();
        assert!(
            text.contains(&format!("service=\"{service}\"")),
            "{service}: {text}"
        );
        texts.insert(service, text);
    }
    let gateway = &texts["gateway"];
    assert!(
        sample(
            gateway,
            "http_server_request_duration_seconds_count",
            &[
                "http_route=\"/api/v1/orders\"",
                "http_response_status_code=\"202\""
            ]
        )
        .is_some_and(|n| n >= 2.0),
        "{gateway}"
    );
    assert!(
        sample(
            gateway,
            "http_client_request_duration_seconds_count",
            &["service=\"orders\""]
        )
        .is_some()
    );
    // The sampler runs every 5 s: wait for the settled state to be sampled.
    testkit::wait_for_within(
        "pending orders to be sampled as 0",
        Duration::from_secs(30),
        || async {
            let text = app.metrics_of(&deployment.named("orders")[0].url()).await;
            sample(&text, "commercex_orders_pending", &[]) == Some(0.0)
        },
    )
    .await;
    let orders = app.metrics_of(&deployment.named("orders")[0].url()).await;
    assert_eq!(
        sample(&orders, "commercex_orders_placed_total", &[]),
        Some(2.0),
        "{orders}"
    );
    assert_eq!(
        sample(
            &orders,
            "commercex_orders_finished_total",
            &["outcome=\"confirmed\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &orders,
            "commercex_orders_finished_total",
            &["outcome=\"cancelled\"", "reason=\"out_of_stock\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&orders, "commercex_checkout_duration_seconds_count", &[]).map(|n| n >= 1.0),
        Some(true)
    );
    assert!(
        sample(
            &orders,
            "http_server_request_duration_seconds_count",
            &["http_route=\"/api/v1/orders/{id}\""]
        )
        .is_some(),
        "{orders}"
    );
    assert!(
        sample(
            &orders,
            "commercex_events_consumed_total",
            &[
                "consumer_group=\"orders\"",
                "event_type=\"commercex.payment.captured.v1\"",
                "outcome=\"handled\""
            ]
        )
        .is_some()
    );
    assert!(
        sample(
            &orders,
            "commercex_event_handler_duration_seconds_count",
            &["consumer_group=\"orders\""]
        )
        .is_some()
    );
    assert!(
        sample(
            &orders,
            "commercex_events_published_total",
            &["event_type=\"commercex.order.placed.v1\"", "outcome=\"ok\""]
        )
        .is_some_and(|n| n >= 2.0)
    );
    assert_eq!(
        sample(
            &orders,
            "commercex_outbox_backlog",
            &["db_namespace=\"orders\""]
        ),
        Some(0.0)
    );
    assert!(sample(&orders, "commercex_outbox_oldest_age_seconds", &[]).is_some());
    assert!(
        sample(
            &orders,
            "db_client_connections_max",
            &["db_namespace=\"orders\""]
        )
        .is_some_and(|n| n > 0.0)
    );
    assert!(sample(&orders, "db_client_connections_usage", &["state=\"idle\""]).is_some());
    testkit::wait_for_within(
        "consumer lag to be reported",
        Duration::from_secs(30),
        || async {
            let text = app
                .metrics_of(&deployment.named("inventory")[0].url())
                .await;
            sample(
                &text,
                "commercex_consumer_lag",
                &["consumer_group=\"inventory\"", "topic=\"commercex.orders\""],
            )
            .is_some()
        },
    )
    .await;
    app.stop().await;
}

app_tests! {
    async fn the_embedded_runtime_serves_its_metrics_on_its_own_port(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        app.get("/healthz", None).await;
        let text = app.metrics_of(&app.url("")).await;
        promtool_accepts(&text).await;
        assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"), "{text}");
        assert!(text.contains("http_route=\"/healthz\""), "{text}");
    }
}

/// Every line of `log` is one JSON object with the fields operators filter on.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .inspect(|line| {
            for field in ["timestamp", "level", "service", "message"] {
                assert!(line.get(field).is_some(), "no {field}: {line}");
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_ids_and_never_carry_secrets() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    // Debug everywhere: the most a troubleshooting operator would turn on.
    let layout = Layout {
        env: vec![(
            "RUST_LOG".into(),
            "debug,h2=info,hyper=info,rdkafka=info".into(),
        )],
        ..Layout::default()
    };
    let app = spawn_app_layout(&storage, &[], &layout).await;
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "SECRET-1", 5).await;
    app.register("secretive@example.com").await;
    let login: Value = app
        .login("secretive@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let refreshed: Value = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await
        .json()
        .await
        .unwrap();
    let new_access = refreshed["access_token"].as_str().unwrap().to_owned();
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    // The sandbox's approving token: the order must be paid for the trace to reach the
    // confirmation, and the token must still appear nowhere in the logs.
    let payment_token = "tok_visa";
    let response = app
        .place(
            &new_access,
            "secret-1",
            &order_body(&product, payment_token),
        )
        .await;
    assert_eq!(response.status(), 202);
    let order_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settled(&new_access, &order_id).await;
    let deployment = app.deployment.as_ref().unwrap();
    let logs: Vec<(String, String)> = deployment
        .processes
        .iter()
        .map(|p| (p.name.clone(), p.log_text()))
        .collect();
    let secrets = [
        ("the password", PASSWORD.to_owned()),
        ("the admin password", PASSWORD.to_owned()),
        ("an access token", access.clone()),
        ("a refreshed access token", new_access.clone()),
        ("a refresh token", refresh.clone()),
        ("a rotated refresh token", new_refresh.clone()),
        ("the payment token", payment_token.to_owned()),
        ("an Authorization header", "Bearer ".to_owned()),
    ];
    for (name, log) in &logs {
        for (what, secret) in &secrets {
            assert!(!log.contains(secret.as_str()), "{name}'s log holds {what}");
        }
        // The token's signature alone would be enough to leak it.
        for token in [&access, &new_access] {
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !log.contains(signature),
                "{name}'s log holds a token signature"
            );
        }
        assert!(
            !log.to_lowercase().contains("\"authorization\""),
            "{name} logged a header map"
        );
    }
    let orders = json_lines(&deployment.named("orders")[0].log_text());
    let placed = orders
        .iter()
        .find(|line| line["message"] == "order placed")
        .expect("orders logged the order");
    assert_eq!(placed["order_id"], order_id.as_str());
    assert_eq!(placed["service"], "orders");
    assert!(
        placed["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{placed}"
    );
    assert_eq!(
        placed["trace_id"].as_str().map(str::len),
        Some(32),
        "{placed}"
    );
    assert_eq!(
        placed["span_id"].as_str().map(str::len),
        Some(16),
        "{placed}"
    );
    // The line is written just after the confirmation commits, so it may trail it.
    let consumed_payment = || {
        json_lines(&deployment.named("orders")[0].log_text())
            .into_iter()
            .find(|line| {
                line["message"] == "event consumed"
                    && line["event_type"] == "commercex.payment.captured.v1"
            })
    };
    testkit::wait_for("orders to log the payment it consumed", || async {
        consumed_payment().is_some()
    })
    .await;
    let consumed = consumed_payment().expect("orders logged the payment it consumed");
    assert_eq!(consumed["order_id"], order_id.as_str(), "{consumed}");
    assert!(consumed["event_id"].as_str().is_some(), "{consumed}");
    // The same trace runs through the request that placed the order and the event that
    // confirmed it.
    assert_eq!(consumed["trace_id"], placed["trace_id"]);
    for (name, log) in &logs {
        json_lines(log);
        assert!(!log.is_empty(), "{name} logged nothing");
    }
    app.stop().await;
}
