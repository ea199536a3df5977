use serde_json::{Value, json};
use testkit::{app_tests, backend_tests};

use crate::helpers::*;

app_tests! {
    async fn client_mistakes_are_problem_json_4xx(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--max-body-bytes", "2048"]).await;
        let url = app.url("/api/v1/auth/register");
        let malformed = app.client.post(&url).header("content-type", "application/json").body("{\"email\": ").send().await.unwrap();
        problem(malformed, 400).await;
        let not_json = app.client.post(&url).header("content-type", "text/plain").body("hello").send().await.unwrap();
        problem(not_json, 415).await;
        let no_type = app.client.post(&url).body("{}").send().await.unwrap();
        problem(no_type, 415).await;
        let huge = json!({"email": "x@example.com", "password": PASSWORD, "name": "n".repeat(4096)});
        let too_large = app.post_json("/api/v1/auth/register", &huge).await;
        problem(too_large, 413).await;
        let unknown_field = app
            .post_json("/api/v1/auth/register", &json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "roles": ["admin"]}))
            .await;
        problem(unknown_field, 422).await;
        problem(app.get("/api/v1/nothing-here", None).await, 404).await;
        let wrong_method = app.client.delete(app.url("/api/v1/auth/login")).send().await.unwrap();
        problem(wrong_method, 405).await;
        app.stop().await;
    }

    async fn paths_with_dot_segments_or_encoded_separators_are_refused(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        // Sent as written: an HTTP client library would resolve the dots itself.
        for path in [
            "/api/v1/auth/../../../metrics",
            "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/metrics",
            "/api/v1/products/..%2f..%2f..%2fmetrics",
            "/api/v1/products/./x",
        ] {
            let (status, body) = raw_get(app.addr, path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains("urn:commercex:problem:"), "{path}: {body}");
        }
        let (status, _) = raw_get(app.addr, "/api/v1/products?limit=1").await;
        assert_eq!(status, 200);
        app.stop().await;
    }

    async fn responses_carry_security_headers_and_tokens_are_not_cached(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        for answer in [app.get("/healthz", None).await, app.get("/nope", None).await] {
            assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
            assert!(!answer.headers().contains_key("strict-transport-security"), "plain HTTP");
        }
        app.register("cached@example.com").await;
        let login = app.login("cached@example.com", PASSWORD).await;
        assert_eq!(login.status(), 200);
        assert_eq!(login.headers()["cache-control"], "no-store");
        assert_eq!(login.headers()["pragma"], "no-cache");
        let refresh_token = login.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
        let refreshed = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh_token})).await;
        assert_eq!(refreshed.status(), 200);
        assert_eq!(refreshed.headers()["cache-control"], "no-store");
        app.stop().await;
    }

    async fn idle_and_trickling_connections_are_closed_and_connections_are_capped(storage: TestStorage) {
        use tokio::io::AsyncWriteExt;
        let app = spawn_app_with(&storage, &["--header-read-timeout", "1s", "--max-connections", "8"]).await;
        // A connection that never sends a request.
        let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        assert!(closed_within(&mut idle, 5).await, "an idle connection stayed open");
        // Slowloris: a request whose headers arrive a line every 300 ms, for ever.
        let (mut reader, mut writer) = tokio::net::TcpStream::connect(app.addr).await.unwrap().into_split();
        let trickle = tokio::spawn(async move {
            writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.ok();
            for n in 0..50 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                if writer.write_all(format!("X-Slow-{n}: 1\r\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        assert!(closed_within(&mut reader, 5).await, "a trickled request held its connection");
        trickle.abort();

        // Beyond the cap, connections are closed at once; the ones within it stay.
        let mut held = Vec::new();
        for _ in 0..12 {
            held.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
        }
        let mut refused = 0;
        for stream in &mut held {
            if closed_within(stream, 0).await {
                refused += 1;
            }
        }
        assert!((4..12).contains(&refused), "{refused} of 12 refused with a cap of 8");
        drop(held);
        assert_eq!(app.get("/healthz", None).await.status(), 200);
        app.stop().await;
    }

    async fn request_ids_are_echoed_or_generated(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let given = app.client.get(app.url("/healthz")).header("x-request-id", "req-abc-123").send().await.unwrap();
        assert_eq!(given.headers()["x-request-id"], "req-abc-123");
        let generated = app.get("/healthz", None).await;
        let id = generated.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "generated id {id}");
        let error = app.get("/nope", None).await;
        assert!(error.headers().contains_key("x-request-id"), "errors carry the id too");
        app.stop().await;
    }

    async fn health_and_readiness(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let live = app.get("/healthz", None).await;
        assert_eq!(live.status(), 200);
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["users"], "ok");
        match &app.deployment {
            None => assert_eq!(body["checks"]["event_bus"], "ok"),
            Some(deployment) => {
                // The gateway is ready when every service is; each service checks its own
                // database and the bus.
                for service in SERVICE_SCHEMAS {
                    assert_eq!(body["checks"][service], "ok", "{body}");
                    let process = deployment.named(service)[0];
                    let own: Value = app.client.get(format!("{}/readyz", process.url())).send().await.unwrap().json().await.unwrap();
                    assert_eq!(own["checks"][service], "ok", "{own}");
                    assert_eq!(own["checks"]["event_bus"], "ok", "{own}");
                }
            }
        }
        app.stop().await;
    }

    async fn openapi_and_docs_are_served_by_the_binary(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/users/me", "/.well-known/jwks.json"] {
            assert!(spec["paths"].get(path).is_some(), "{path} documented");
        }
        let docs = app.get("/docs/", None).await;
        assert_eq!(docs.status(), 200);
        let html = docs.text().await.unwrap();
        assert!(!html.contains("https://"), "the docs page loads nothing from a CDN");
        for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"] {
            let response = app.get(asset, None).await;
            assert_eq!(response.status(), 200, "{asset}");
        }
        let initializer = app.get("/docs/swagger-initializer.js", None).await.text().await.unwrap();
        assert!(initializer.contains("/openapi.json"));
        app.stop().await;
    }
}

/// The OpenAPI document is snapshot-tested: any API change shows up as a reviewed diff of
/// `snapshots/api__http_conventions__openapi_document.snap`.
#[tokio::test]
async fn openapi_document() {
    let storage = testkit::TestStorage::sqlite()
        .await
        .expect("SQLite needs nothing");
    let app = spawn_app(&storage).await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    insta::assert_json_snapshot!(spec);
    app.stop().await;
}

/// GET `path` exactly as given, over a connection of its own: the status and the body.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap();
    (status, answer)
}

/// Whether the server closes `stream` within `seconds` (0: is it closed already, give or take
/// a moment), reading whatever it sends first.
async fn closed_within(stream: &mut (impl tokio::io::AsyncRead + Unpin), seconds: u64) -> bool {
    use tokio::io::AsyncReadExt;
    let wait = std::time::Duration::from_millis(seconds * 1000 + 300);
    let mut answer = Vec::new();
    tokio::time::timeout(wait, stream.read_to_end(&mut answer))
        .await
        .is_ok()
}

/// A read from each service that touches its database: (service, path, token).
async fn reads_of_every_service(app: &TestApp) -> Vec<(&'static str, String, String)> {
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, "OUTAGE-1", 5).await;
    let (customer, _) = app.signed_up("outage@example.com").await;
    vec![
        ("users", "/api/v1/users/me".to_owned(), customer.clone()),
        // One product, not a listing: listings and searches are answered from memory once
        // the catalog's index is loaded, and need no connection.
        (
            "catalog",
            format!("/api/v1/products/{product}"),
            customer.clone(),
        ),
        (
            "inventory",
            format!("/api/v1/inventory/{product}"),
            admin.clone(),
        ),
        ("orders", "/api/v1/orders".to_owned(), customer),
        (
            "payments",
            format!("/api/v1/payments?order_id={}", uuid::Uuid::now_v7()),
            admin,
        ),
    ]
}

/// The answer to `path` is a 503 with `Retry-After: 1`, never a 500.
async fn assert_unavailable(app: &TestApp, service: &str, path: &str, token: &str) {
    let answer = app.get(path, Some(token)).await;
    let status = answer.status();
    let retry_after = answer.headers().get("retry-after").cloned();
    let body = answer.text().await.unwrap();
    assert_eq!(status, 503, "{service}: {path}: {body}");
    assert_eq!(retry_after.unwrap(), "1", "{service}");
}

backend_tests! {
    /// Every service with its pool exhausted (every connection taken, by the test here):
    /// each answers 503 with Retry-After once it gives up waiting for a connection, on both
    /// databases, and serves again once connections are free.
    async fn every_service_answers_503_while_its_pool_is_exhausted(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--db-max-connections", "2"]).await;
        let reads = reads_of_every_service(&app).await;
        for (service, path, token) in &reads {
            let db = app.databases.iter().find(|db| db.schema() == *service).unwrap();
            let mut taken = Vec::new();
            while let Ok(Ok(connection)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), db.pool().acquire()).await
            {
                taken.push(connection);
            }
            assert!(!taken.is_empty(), "{service}: the test holds its connections");
            assert_unavailable(&app, service, path, token).await;
            drop(taken);
            assert_ne!(app.get(path, Some(token)).await.status(), 503, "{service} serves again");
        }
        app.stop().await;
    }
}

/// Every service, its database refusing connections (PostgreSQL: connections cut, new ones
/// refused): each answers 503 with Retry-After, never 500, and serves again once the database
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_503_while_its_database_is_unreachable() {
    use secrecy::ExposeSecret;
    use sqlx::{Connection, Executor};
    let Some(storage) = testkit::TestStorage::postgres().await else {
        return;
    };
    let platform::db::Storage::Postgres { url } = &storage.storage else {
        unreachable!("a PostgreSQL storage");
    };
    let name = url.expose_secret().rsplit('/').next().unwrap().to_owned();
    let app = spawn_app(&storage).await;
    let reads = reads_of_every_service(&app).await;
    let mut admin_db = sqlx::AnyConnection::connect(&testkit::postgres_url().unwrap())
        .await
        .unwrap();
    let allow = |allowed: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}");
    admin_db
        .execute(sqlx::AssertSqlSafe(allow(false)))
        .await
        .unwrap();
    admin_db
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )))
        .await
        .unwrap();
    for (service, path, token) in &reads {
        assert_unavailable(&app, service, path, token).await;
    }
    admin_db
        .execute(sqlx::AssertSqlSafe(allow(true)))
        .await
        .unwrap();
    for (service, path, token) in &reads {
        let path = path.clone();
        wait_for(service, || async {
            app.get(&path, Some(token)).await.status() != 503
        })
        .await;
    }
    app.stop().await;
}
