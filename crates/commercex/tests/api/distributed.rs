//! What only the distributed runtime has: several instances of a service sharing HTTP and
//! event load, the gateway in front of services that are down or slow, a broker that stops
//! answering, and quotas shared by every gateway through Redis.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestStorage;

use crate::deployment::Layout;
use crate::helpers::*;

/// A fresh deployment with `layout`, or `None` when Kafka and Redis are not given.
async fn deploy(extra: &[&str], layout: Layout) -> Option<(TestApp, TestStorage)> {
    let storage = TestStorage::distributed().await?;
    let app = spawn_app_layout(&storage, extra, &layout).await;
    Some((app, storage))
}

/// The ids of the events a process's consumers handled (not skipped as duplicates), from its
/// JSON log.
fn handled_events(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "event consumed")
        .filter(|entry| {
            entry["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("Handled"))
        })
        .map(|entry| entry["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends `request` in a quota window with at least 10 s left (waiting for the next window
/// when this one is about to end), so that the requests after it count in the same window.
async fn first_in_window<F, Fut>(request: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let reset: u64 = request().await.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    if reset < 10 {
        tokio::time::sleep(Duration::from_secs(reset + 1)).await;
        request().await;
    }
}

fn order_body(product: &str) -> Value {
    json!({
        "items": [{"product_id": product, "quantity": 1}],
        "payment_token": "tok_visa",
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inventory_instances_share_requests_and_events_and_handle_each_event_once() {
    let Some((app, _storage)) = deploy(
        &[],
        Layout {
            inventory_instances: 2,
            ..Layout::default()
        },
    )
    .await
    else {
        return;
    };
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "TWIN-1", 500).await;
    let (customer, _) = app.signed_up("twins@example.com").await;
    let deployment = app.deployment.as_ref().unwrap();
    let instances = deployment.named("inventory");
    assert_eq!(instances.len(), 2);
    // Orders are keyed by their id, so they spread over the partitions, and the partitions
    // over the group's members: keep ordering until both instances have handled some.
    let mut placed = 0;
    while instances
        .iter()
        .any(|p| handled_events(&p.log_text()).is_empty())
    {
        assert!(placed < 60, "one inventory instance never got any events");
        let response = app
            .place(&customer, &format!("twin-{placed}"), &order_body(&product))
            .await;
        assert_eq!(response.status(), 202);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(app.settled(&customer, &id).await.status, "confirmed");
        placed += 1;
    }
    for _ in 0..4 {
        assert_eq!(
            app.get(&format!("/api/v1/inventory/{product}"), None)
                .await
                .status(),
            200
        );
    }
    let mut seen = HashSet::new();
    for instance in &instances {
        let log = instance.log_text();
        assert!(
            log.contains("/api/v1/inventory/"),
            "{} served no request",
            instance.name
        );
        for event in handled_events(&log) {
            assert!(
                seen.insert(event.clone()),
                "event {event} was handled twice"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_503_for_a_service_that_is_down_and_504_for_one_that_hangs() {
    // Payments accepts connections and never answers; inventory refuses them.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_addr = hanging.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            open.push(socket);
        }
    });
    let refusing = RefusingPort::reserve();
    let refused = refusing.addr();
    let layout = Layout {
        gateway_env: vec![
            (
                "COMMERCEX_PAYMENTS_URL".into(),
                format!("http://{hanging_addr}"),
            ),
            (
                "COMMERCEX_INVENTORY_URL".into(),
                format!("http://{refused}"),
            ),
            ("COMMERCEX_ROUTE_TIMEOUTS".into(), "payments=1s".into()),
        ],
        ..Layout::default()
    };
    let Some((app, _storage)) = deploy(&[], layout).await else {
        return;
    };
    let (customer, _) = app.signed_up("patient@example.com").await;
    let slow = app
        .get(
            "/api/v1/payments?order_id=01a2138a-5a7e-709c-99c5-896cfacf9c8b",
            Some(&customer),
        )
        .await;
    let body = problem(slow, 504).await;
    assert_eq!(body["type"], "urn:commercex:problem:gateway-timeout");
    let down = app
        .get(
            "/api/v1/inventory/01a2138a-5a7e-709c-99c5-896cfacf9c8b",
            None,
        )
        .await;
    let body = problem(down, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("inventory"),
        "{body}"
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 503);
    let checks: Value = ready.json().await.unwrap();
    assert_eq!(checks["checks"]["users"], "ok");
    // Not ready, and nothing of why for whoever asks: the cause is in the log.
    assert_eq!(checks["checks"]["inventory"], "unavailable", "{checks}");
    held.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_shared_by_every_gateway_through_redis() {
    let layout = Layout {
        gateways: 2,
        gateway_env: vec![("COMMERCEX_RATE_LIMIT_PER_CLIENT".into(), "6".into())],
        ..Layout::default()
    };
    let Some((app, _storage)) = deploy(&[], layout).await else {
        return;
    };
    let gateways: Vec<String> = app
        .deployment
        .as_ref()
        .unwrap()
        .named("gateway")
        .iter()
        .map(|g| g.url())
        .collect();
    first_in_window(|| async {
        app.client
            .get(format!("{}/api/v1/products", gateways[0]))
            .send()
            .await
            .unwrap()
    })
    .await;
    for i in 1..6 {
        let response = app
            .client
            .get(format!("{}/api/v1/products", gateways[i % 2]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "6");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            (5 - i).to_string().as_str()
        );
    }
    for gateway in &gateways {
        let refused = app
            .client
            .get(format!("{gateway}/api/v1/products"))
            .send()
            .await
            .unwrap();
        assert!(refused.headers().contains_key("retry-after"));
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        problem(refused, 429).await;
    }
    app.stop().await;
}

/// A tansu broker of the test's own, to be frozen or restarted without disturbing other
/// tests.
struct OwnBroker {
    child: std::process::Child,
    addr: String,
    storage: String,
    /// Where a durable broker keeps its log (`storage` is relative to it).
    dir: tempfile::TempDir,
}

impl OwnBroker {
    /// A broker that keeps everything in memory. `None` when tansu cannot run and the test
    /// may be skipped (`testkit::ALLOW_SKIP`).
    async fn start() -> Option<Self> {
        Self::start_with("memory://tansu/").await
    }

    /// A broker that keeps its log in an SQLite file, so it comes back with everything it
    /// had acknowledged after a kill, as the fault run's does.
    async fn start_durable() -> Option<Self> {
        Self::start_with("sqlite://tansu.db").await
    }

    async fn start_with(storage: &str) -> Option<Self> {
        let port = testkit::free_port();
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let child = Self::spawn(&addr, storage, dir.path())?;
        let broker = Self {
            child,
            addr,
            storage: storage.to_owned(),
            dir,
        };
        broker.listening().await;
        Some(broker)
    }

    fn spawn(addr: &str, storage: &str, dir: &std::path::Path) -> Option<std::process::Child> {
        let tansu = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let spawned = std::process::Command::new(&tansu)
            .args(["broker", "--listener-url", &format!("tcp://{addr}")])
            .args(["--advertised-listener-url", &format!("tcp://{addr}")])
            .args(["--storage-engine", storage])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => Some(child),
            Err(error) => {
                testkit::cannot_run(
                    &format!("tansu cannot run ({tansu}: {error})"),
                    "install tansu or set TANSU to its path",
                );
                None
            }
        }
    }

    async fn listening(&self) {
        wait_for("the broker to listen", || async {
            tokio::net::TcpStream::connect(&self.addr).await.is_ok()
        })
        .await;
    }

    /// SIGKILL, and the same broker again on the same port: its connections are reset and
    /// refused meanwhile.
    async fn crash_and_restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        tokio::time::sleep(down_for).await;
        self.child = Self::spawn(&self.addr, &self.storage, self.dir.path()).unwrap();
        self.listening().await;
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // Not `signal`: a test that failed mid-restart has no broker to wake.
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_accepted_while_the_broker_is_down_and_flow_once_it_is_back() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let Some(broker) = OwnBroker::start().await else {
        return;
    };
    let layout = Layout {
        env: vec![("COMMERCEX_KAFKA_BROKERS".into(), broker.addr.clone())],
        ..Layout::default()
    };
    let app = spawn_app_layout(&storage, &[], &layout).await;
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "OUTAGE-1", 5).await;
    let (customer, _) = app.signed_up("outage@example.com").await;

    // The broker stops answering: connections stay open, nothing comes back.
    broker.signal("-STOP");
    let response = app
        .place(&customer, "during-outage", &order_body(&product))
        .await;
    assert_eq!(
        response.status(),
        202,
        "orders are accepted without the broker"
    );
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders = app.database("orders").await;
    wait_for("the order's event waiting in the outbox", || async {
        events::relay::backlog(&orders).await.unwrap() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        events::relay::backlog(&orders).await.unwrap() > 0,
        "nothing can leave while the broker is down"
    );
    let order: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&customer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "pending");

    broker.signal("-CONT");
    assert_eq!(app.settled(&customer, &id).await.status, "confirmed");
    orders.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_ensure_creates_what_is_missing_and_reports_under_replication_loudly() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let brokers = storage.distributed.as_ref().unwrap().kafka_brokers.clone();
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let ensure = |replication: &'static str| {
        let (brokers, prefix) = (brokers.clone(), prefix.clone());
        async move {
            commercex_command()
                .args([
                    "topics",
                    "ensure",
                    "--bus",
                    "kafka",
                    "--kafka-brokers",
                    &brokers,
                ])
                .args([
                    "--kafka-topic-prefix",
                    &prefix,
                    "--kafka-replication-factor",
                    replication,
                ])
                .env("RUST_BACKTRACE", "0")
                .output()
                .await
                .unwrap()
        }
    };
    let created = ensure("1").await;
    let report = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(created.status.success(), "{report}");
    for topic in ["commercex.orders", "commercex.dlq.payments"] {
        assert!(
            report.contains(&format!("{prefix}{topic}: created")),
            "{report}"
        );
    }
    let again = ensure("1").await;
    assert!(again.status.success());
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("created"),
        "existing topics are left alone"
    );
    let stricter = ensure("3").await;
    assert!(
        !stricter.status.success(),
        "fewer replicas than configured is an error"
    );
    assert!(
        String::from_utf8_lossy(&stricter.stdout)
            .contains(&format!("{prefix}commercex.orders: UNDER-REPLICATED"))
    );
}

/// With `COMMERCEX_KAFKA_CREATE_TOPICS=false` (topics managed by Strimzi, Kafka users without
/// the right to create topics) a process creates none, neither at start-up nor the dead-letter
/// topics when its consumer groups join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_topic_creation_off_the_platform_creates_no_topic() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let brokers = storage.distributed.as_ref().unwrap().kafka_brokers.clone();
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let data = tempfile::tempdir().unwrap();
    let kafka = [
        "--bus",
        "kafka",
        "--kafka-brokers",
        &brokers,
        "--kafka-topic-prefix",
        &prefix,
    ];
    let data_dir = data.path().display().to_string();
    let mut platform = crate::deployment::launch(
        "embedded",
        &["serve", "--data-dir", &data_dir],
        &kafka,
        &[("COMMERCEX_KAFKA_CREATE_TOPICS".into(), "false".into())],
        data.path(),
    )
    .await;
    testkit::wait_for("the four consumer groups to join", || async {
        platform.log_text().matches("consumer started").count() >= 4
    })
    .await;
    let ensured = commercex_command()
        .args(["topics", "ensure", "--kafka-replication-factor", "1"])
        .args(kafka)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&ensured.stdout).into_owned();
    assert!(ensured.status.success(), "{report}");
    for topic in [
        "commercex.orders",
        "commercex.users",
        "commercex.dlq.inventory",
    ] {
        assert!(
            report.contains(&format!("{prefix}{topic}: created")),
            "{topic} existed before `topics ensure`: {report}"
        );
    }
    let status = crate::cli::signal_and_wait(&mut platform.child, "-TERM").await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_events_consumes_every_event_it_published_for_each_partition_count() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let brokers = storage.distributed.as_ref().unwrap().kafka_brokers.clone();
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let data = tempfile::tempdir().unwrap();
    let mut command = commercex_command();
    command
        .args(["bench-events", "--events", "300", "--partitions", "1,3"])
        .args(["--bus", "kafka", "--kafka-brokers", &brokers])
        .args([
            "--kafka-topic-prefix",
            &prefix,
            "--kafka-replication-factor",
            "1",
        ])
        .args(["--data-dir", &data.path().display().to_string()]);
    command.envs(crate::deployment::tansu_workaround());
    let output = command.output().await.unwrap();
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It fails by itself unless every event came back; here, one row per partition count.
    for partitions in ["| 1 | 1 | 300 |", "| 3 | 3 | 300 |"] {
        assert!(table.contains(partitions), "{table}");
    }
}

/// `commercex bench` right after the processes start, as `scripts/bench` runs it: the order
/// service learns of the bench's new products through events, and until it has, orders for
/// them are refused. The bench's warm-up waits for that, so every measured order is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_on_a_fresh_deployment_measures_confirmed_orders_not_refusals() {
    let Some((app, _storage)) = deploy(&[], Layout::default()).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = write_file(dir.path(), "admin-password", PASSWORD);
    let output = commercex_command()
        .args(["bench", "--url", &app.url(""), "--customers", "2"])
        .args(["--orders-per-customer", "3", "--products", "2"])
        .args(["--admin-email", ADMIN_EMAIL, "--admin-password-file"])
        .arg(&password)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let (table, causes) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{table}{causes}");
    for row in ["| orders confirmed | 6 |", "| errors | 0 |"] {
        assert!(table.contains(row), "{table}{causes}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_reads_are_cached_in_redis_and_catalog_events_drop_stale_entries() {
    let Some((app, storage)) = deploy(&[], Layout::default()).await else {
        return;
    };
    let admin = app.admin_token().await;
    let id = app.stocked_product(&admin, "CACHE-1", 0).await;
    let path = format!("/api/v1/products/{id}");
    let redis =
        redis::Client::open(storage.distributed.as_ref().unwrap().redis_url.as_str()).unwrap();
    let mut redis = redis.get_multiplexed_async_connection().await.unwrap();
    let key = format!(
        "{}catalog:product:{id}",
        app.deployment.as_ref().unwrap().kafka_prefix
    );
    let cached = async |redis: &mut redis::aio::MultiplexedConnection| -> Option<Value> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(redis)
            .await
            .unwrap();
        raw.map(|raw| serde_json::from_str(&raw).unwrap())
    };

    let first: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(
        cached(&mut redis).await.unwrap()["name"],
        first["name"],
        "a read fills the cache"
    );

    // A change drops the entry as it commits: the next read sees the change.
    let patched = app
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&admin),
            Some(&json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let second: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(second["name"], "Renamed");
    // Once the catalog has consumed the change's own event (which drops the entry again), a
    // read fills the cache for good.
    let catalog = app.deployment.as_ref().unwrap().named("catalog")[0].url();
    wait_for("the catalog past product.updated", || async {
        let text = app.metrics_of(&catalog).await;
        sample(
            &text,
            "commercex_events_consumed_total",
            &[
                "consumer_group=\"catalog\"",
                "event_type=\"commercex.product.updated.v1\"",
            ],
        )
        .is_some()
    })
    .await;
    app.get(&path, None).await;

    // A reader that raced a change can put a stale copy back; the change's event (here, a
    // stock adjustment from inventory) drops it.
    let stale = cached(&mut redis).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(stale.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    let adjusted = app
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/inventory/{id}/adjustments"),
            Some(&admin),
            Some(&json!({"delta": 7, "reason": "delivery"})),
        )
        .await;
    assert_eq!(adjusted.status(), 200);
    wait_for("the stock change to reach readers", || async {
        app.get(&path, None).await.json::<Value>().await.unwrap()["available"] == 7
    })
    .await;
    app.stop().await;
}

/// Waits, at most `bound`, for order `id` to be confirmed.
async fn confirmed_within(app: &TestApp, customer: &str, id: &str, bound: Duration) {
    let path = format!("/api/v1/orders/{id}");
    testkit::wait_for_within("the order to be confirmed", bound, || async {
        app.get(&path, Some(customer))
            .await
            .json::<Value>()
            .await
            .unwrap()["status"]
            == "confirmed"
    })
    .await;
}

/// A rolling update: each saga service stopped with SIGTERM (it drains and leaves its consumer
/// groups) and started again; an order placed right after is confirmed within 20 s, the
/// bound docs/ARCHITECTURE.md states for a graceful restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_saga_service_restarted_gracefully_is_back_within_20_seconds() {
    let Some((mut app, _storage)) = deploy(&[], Layout::default()).await else {
        return;
    };
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "TERM-1", 30).await;
    let (customer, _) = app.signed_up("rolling@example.com").await;
    for service in ["payments", "inventory", "orders"] {
        let deployment = app.deployment.as_mut().unwrap();
        let name = deployment.named(service)[0].name.clone();
        deployment.restart(&name, "-TERM").await;
        let restarted = std::time::Instant::now();
        let response = app
            .place(
                &customer,
                &format!("after-{service}"),
                &order_body(&product),
            )
            .await;
        assert_eq!(response.status(), 202, "{service}");
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        confirmed_within(&app, &customer, &id, Duration::from_secs(20)).await;
        eprintln!(
            "{service}: confirmed {:?} after the restart",
            restarted.elapsed()
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_survive_services_killed_mid_flight() {
    let Some((mut app, _storage)) = deploy(&[], Layout::default()).await else {
        return;
    };
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "KILL-1", 30).await;
    let (customer, _) = app.signed_up("survivor@example.com").await;
    let mut ids = Vec::new();
    for n in 0..10 {
        let response = app
            .place(&customer, &format!("kill-{n}"), &order_body(&product))
            .await;
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // While those orders are in flight, the services that move them die without warning.
    let deployment = app.deployment.as_mut().unwrap();
    for service in ["payments", "inventory", "orders"] {
        let name = deployment.named(service)[0].name.clone();
        deployment.kill_and_restart(&name).await;
    }
    // Each restarted consumer takes over once the killed one's session (10 s) expires.
    let recovery = Duration::from_secs(90);
    for id in &ids {
        confirmed_within(&app, &customer, id, recovery).await;
        let payment = app.payment(&customer, id).await;
        assert_eq!(payment["status"], "captured");
        assert_eq!(
            payment["attempts"].as_array().unwrap().len(),
            1,
            "one charge for {id}"
        );
    }
    testkit::wait_for_within("the stock committed", recovery, || async {
        app.levels(&product).await == (20, 0)
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_platform_degrades_and_says_so_in_its_metrics() {
    // Configured for Redis, but nothing answers there.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let layout = Layout {
        env: vec![("COMMERCEX_REDIS_URL".into(), "redis://127.0.0.1:9".into())],
        gateway_env: vec![
            ("COMMERCEX_RATE_LIMIT_PER_CLIENT".into(), "3".into()),
            ("COMMERCEX_METRICS_LISTEN".into(), metrics.to_string()),
        ],
        ..Layout::default()
    };
    let Some((app, _storage)) = deploy(&[], layout).await else {
        return;
    };
    // Logins (throttling), product reads (the cache) and quotas all work without it.
    let admin = app.admin_token().await;
    let created = app
        .create_product(&admin, &product("NOREDIS-1", "Resilient", 900, "misc"))
        .await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
    for _ in 0..6 {
        assert_eq!(app.get(&path, None).await.status(), 200, "quotas fail open");
    }
    let exposed = app
        .client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        exposed
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{exposed}"))
    };
    assert!(value("commercex_rate_limit_fail_open_total") >= 6.0);
    assert!(value("commercex_redis_failures_total") >= 1.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_has_a_quota_of_their_own() {
    let layout = Layout {
        gateway_env: vec![("COMMERCEX_RATE_LIMIT_PER_USER".into(), "3".into())],
        ..Layout::default()
    };
    let Some((app, _storage)) = deploy(&[], layout).await else {
        return;
    };
    let (token, _) = app.signed_up("busy@example.com").await;
    first_in_window(|| app.get("/api/v1/users/me", Some(&token))).await;
    for _ in 0..2 {
        assert_eq!(
            app.get("/api/v1/users/me", Some(&token)).await.status(),
            200
        );
    }
    problem(app.get("/api/v1/users/me", Some(&token)).await, 429).await;
    // Anonymous requests from the same address are not the user's.
    assert_eq!(app.get("/api/v1/products", None).await.status(), 200);
    app.stop().await;
}

/// A topic of its own on a Kafka broker, one partition, with a client of that broker.
struct TestTopic {
    bus: events::bus::kafka::KafkaBus,
    topic: String,
}

impl TestTopic {
    async fn new(brokers: &str) -> Self {
        use events::bus::kafka::{KafkaBus, KafkaConfig, TopicSettings, ensure_topics};
        let config = KafkaConfig {
            brokers: brokers.to_owned(),
            topic_prefix: format!("t{}.", uuid::Uuid::new_v4().simple()),
            client_options: Vec::new(),
            producer_options: crate::deployment::tansu_workaround()
                .map(|_| vec![("batch.num.messages".to_owned(), "1".to_owned())])
                .unwrap_or_default(),
            create_topics: true,
            topics: TopicSettings {
                partitions: 1,
                replication_factor: 1,
                min_insync_replicas: 1,
            },
        };
        let topic = "commercex.orders".to_owned();
        ensure_topics(&config, std::slice::from_ref(&topic))
            .await
            .unwrap();
        Self {
            bus: KafkaBus::connect(config).unwrap(),
            topic,
        }
    }

    /// A new member of consumer group `group` on the topic.
    async fn member(&self, group: &str) -> Box<dyn events::bus::Subscription> {
        use events::bus::EventBus;
        self.bus
            .subscribe(
                group,
                std::slice::from_ref(&self.topic),
                &Default::default(),
            )
            .await
            .unwrap()
    }

    /// Writes `value` to the topic as a record with no event headers.
    async fn publish_raw(&self, value: &[u8]) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.bus.config().brokers)
            .create()
            .unwrap();
        let topic = self.bus.config().topic(&self.topic);
        producer
            .send(
                FutureRecord::<str, [u8]>::to(&topic).payload(value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    /// The offset `group` resumes from in the topic's partition, if it committed one.
    fn committed(&self, group: &str) -> Option<i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let config = self.bus.config();
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", config.topic(group))
            .create()
            .unwrap();
        let mut partitions = rdkafka::TopicPartitionList::new();
        partitions.add_partition(&config.topic(&self.topic), 0);
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .unwrap();
        match committed.elements()[0].offset() {
            rdkafka::Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    }

    /// Publishes `n` events, numbered from 0 in `data.n`.
    async fn publish(&self, n: usize) {
        self.try_publish(n).await.unwrap();
    }

    /// Publishes `n` events (as `publish`), or says why the bus refused them.
    async fn try_publish(&self, n: usize) -> Result<(), events::bus::BusError> {
        use events::bus::{EventBus, Outgoing};
        let events: Vec<Outgoing> = (0..n)
            .map(|i| Outgoing {
                topic: self.topic.clone(),
                envelope: events::Envelope::new(
                    "commercex/test",
                    "commercex.test.v1",
                    "k",
                    &json!({"n": i}),
                ),
            })
            .collect();
        self.bus.publish(&events).await
    }
}

/// Reads until `count` have come and the topic then stays quiet for a second. A poll that
/// finds the broker away (`BusError::Interrupted`) is polled again, as the consumer does.
async fn read(
    member: &mut Box<dyn events::bus::Subscription>,
    count: usize,
) -> Vec<events::bus::Delivery> {
    let mut got = Vec::new();
    let nothing_after = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if got.len() >= count {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let batch = match member.poll(100, wait).await {
            Ok(batch) => batch,
            Err(events::bus::BusError::Interrupted(_)) => Vec::new(),
            Err(error) => panic!("the member failed: {error}"),
        };
        if batch.is_empty() && got.len() >= count {
            return got;
        }
        assert!(
            std::time::Instant::now() < nothing_after,
            "only {} of {count} came",
            got.len()
        );
        got.extend(batch);
    }
}

/// A group member sends its positions to the broker gathered, at most every 200 ms, rather
/// than a commit request per batch; one that stops sends what it has done on its way out
/// (as the consumer does when it stops), so the next member of its group starts after it
/// and gets nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_commits_what_it_has_done() {
    the_next_member_starts_after(Ending::Leaves).await;
}

/// A member with nothing more to read still sends the positions it has taken, from a poll
/// that finds nothing. Otherwise a quiet group's last events would be read again by the
/// member after it, whenever this one ends without leaving (a crash, a replacement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_member_sends_its_positions() {
    the_next_member_starts_after(Ending::IdlesAndGoes).await;
}

/// How a member that has done all it read ends.
enum Ending {
    /// Stops at once, well within 200 ms of its last batch, as the consumer does.
    Leaves,
    /// Polls once more, finds nothing, and is gone without `leave`: only what that poll sent
    /// counts.
    IdlesAndGoes,
}

/// A member reads what is there and takes the last position, as the consumer does after a
/// batch, then ends as `ending` says; the next member of its group must get only the event
/// published after that.
async fn the_next_member_starts_after(ending: Ending) {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let kafka = TestTopic::new(&storage.distributed.as_ref().unwrap().kafka_brokers).await;
    kafka.publish(3).await;
    let mut first = kafka.member("handover").await;
    let done = read(&mut first, 3).await;
    assert_eq!(done.len(), 3);
    first.commit(done.last().unwrap()).await.unwrap();
    match ending {
        Ending::Leaves => first.leave().await.unwrap(),
        Ending::IdlesAndGoes => {
            let nothing = first.poll(100, Duration::from_secs(5)).await.unwrap();
            assert!(nothing.is_empty());
        }
    }
    drop(first);

    kafka.publish(1).await;
    let mut next = kafka.member("handover").await;
    let got = read(&mut next, 1).await;
    let numbers: Vec<&Value> = got.iter().map(|d| &d.envelope.data["n"]).collect();
    assert_eq!(
        numbers,
        [&json!(0)],
        "only the event published after the first member went"
    );
    assert_eq!(got[0].offset, done.last().unwrap().offset + 1);
}

/// A record that is not an event is copied to the group's dead-letter topic by the member
/// itself, but the group is past it only once the events before it are done: had its
/// position gone to the broker with them still being handled, a crash would lose them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_an_event_does_not_commit_the_events_before_it() {
    let Some(storage) = TestStorage::distributed().await else {
        return;
    };
    let kafka = TestTopic::new(&storage.distributed.as_ref().unwrap().kafka_brokers).await;
    kafka.publish(1).await;
    kafka.publish_raw(b"not an event").await;
    let mut first = kafka.member("held").await;
    // Polls until the topic has been quiet for a second: positions due are sent meanwhile.
    let handed = read(&mut first, 1).await;
    assert_eq!(handed.iter().map(|d| d.offset).collect::<Vec<_>>(), [0]);
    // A crash while the event is handled.
    drop(first);
    assert_eq!(
        kafka.committed("held"),
        None,
        "nothing is past an event not done"
    );

    let mut next = kafka.member("held").await;
    let again = read(&mut next, 1).await;
    assert_eq!(again.iter().map(|d| d.offset).collect::<Vec<_>>(), [0]);
    next.commit(&again[0]).await.unwrap();
    next.leave().await.unwrap();
    drop(next);
    assert_eq!(
        kafka.committed("held"),
        Some(2),
        "past the record once the event before it is done"
    );
}

/// A member whose broker goes away stays a member: librdkafka reconnects and rejoins by
/// itself, so the poll says the bus did not answer (`Interrupted`) and the consumer polls the
/// same member again. Replacing the member at every outage made its group rebalance each
/// time, and against tansu, closing members with requests in flight stopped the broker's
/// storage again and again (the fault run of 2026-12-07).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stays_through_a_broker_crash() {
    use events::bus::BusError;
    let Some(_storage) = TestStorage::distributed().await else {
        return;
    };
    let Some(mut broker) = OwnBroker::start_durable().await else {
        return;
    };
    let kafka = TestTopic::new(&broker.addr).await;
    let mut member = kafka.member("stays").await;
    kafka.publish(1).await;
    let before = read(&mut member, 1).await;
    member.commit(&before[0]).await.unwrap();

    let crash = broker.crash_and_restart(Duration::from_secs(3));
    let outage = async {
        loop {
            match member.poll(100, Duration::from_secs(1)).await {
                Err(BusError::Interrupted(_)) => return,
                Err(error) => panic!("an outage is not the member's end: {error}"),
                Ok(batch) => assert!(batch.is_empty(), "nothing new was published"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(crash, outage);
    })
    .await
    .expect("the poll saw the broker go away");

    kafka.publish(1).await;
    // The errors librdkafka queued during the outage are read through within a poll's wait,
    // not one per poll: a queue of them kept a member from its records for 78 s in a fault
    // run, at the runner's one poll a second.
    let mut polls = 0;
    let after = loop {
        polls += 1;
        assert!(polls <= 4, "still no record after {} polls", polls - 1);
        match member.poll(100, Duration::from_secs(5)).await {
            Ok(batch) if !batch.is_empty() => break batch,
            Ok(_) | Err(BusError::Interrupted(_)) => {}
            Err(error) => panic!("an outage is not the member's end: {error}"),
        }
    };
    assert_eq!(after.len(), 1, "the event published after the crash, once");
    assert_eq!(after[0].offset, before[0].offset + 1);
}

/// The broker stops (as the fault run stops it) and comes back under a producer that had
/// published: tansu 0.6 then answers every produce request of that producer with `Unknown`,
/// and librdkafka sends the next records as the same producer, so without a new producer the
/// relay retried for ever (the fault run of 2026-12-07: payments and inventory stopped
/// publishing after the broker came back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_goes_on_after_the_broker_restarts_under_the_producer() {
    let Some(_storage) = TestStorage::distributed().await else {
        return;
    };
    let Some(mut broker) = OwnBroker::start_durable().await else {
        return;
    };
    let kafka = std::sync::Arc::new(TestTopic::new(&broker.addr).await);
    // Relays publishing as the broker stops: a batch at a time, and a second's pause after a
    // refusal.
    let publishing: Vec<_> = (0..8)
        .map(|_| {
            let kafka = kafka.clone();
            tokio::spawn(async move {
                loop {
                    let pause = match kafka.try_publish(3).await {
                        Ok(()) => Duration::from_millis(20),
                        Err(_) => Duration::from_secs(1),
                    };
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.signal("-TERM");
    tokio::time::sleep(Duration::from_secs(15)).await;
    broker.crash_and_restart(Duration::from_secs(1)).await;
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while let Err(error) = kafka.try_publish(1).await {
        assert!(
            std::time::Instant::now() < give_up,
            "still refused a minute after the broker came back: {error}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    publishing.iter().for_each(tokio::task::JoinHandle::abort);
    let mut member = kafka.member("after-restart").await;
    assert!(read(&mut member, 3).await.len() >= 3);
}
