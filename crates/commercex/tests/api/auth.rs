use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

app_tests! {
    async fn a_registered_user_logs_in_and_reads_itself(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let user = app.register("Ada@Example.com").await;
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["name"], "Test User");
        assert_eq!(user["roles"], json!(["customer"]));
        assert!(user.get("password").is_none() && user.get("password_hash").is_none());

        let response = app.login("ada@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        let me = app.get("/api/v1/users/me", tokens["access_token"].as_str()).await;
        assert_eq!(me.status(), 200);
        assert_eq!(me.json::<Value>().await.unwrap(), user);
        app.stop().await;
    }

    async fn registration_publishes_user_registered_through_the_outbox(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let user = app.register("eve@example.com").await;
        let id = user["id"].as_str().unwrap().to_owned();
        wait_for("the event on the bus", || async { !app.published(&id).await.is_empty() }).await;
        let envelope = &app.published(&id).await[0];
        assert_eq!(envelope["type"], "commercex.user.registered.v1");
        assert_eq!(envelope["source"], "commercex/users");
        assert_eq!(envelope["specversion"], "1.0");
        assert_eq!(envelope["data"]["email"], "eve@example.com");
        assert!(!envelope.to_string().contains(PASSWORD));
        app.stop().await;
    }

    async fn a_duplicate_email_is_a_conflict_whatever_its_case(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        app.register("bob@example.com").await;
        let again = app
            .post_json("/api/v1/auth/register", &json!({"email": "BOB@example.com", "password": PASSWORD, "name": "Bob"}))
            .await;
        problem(again, 409).await;
        app.stop().await;
    }

    async fn registration_reports_every_invalid_field_and_stores_nothing(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let response = app
            .post_json("/api/v1/auth/register", &json!({"email": "not-an-email", "password": "short", "name": "  "}))
            .await;
        let body = problem(response, 422).await;
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["/email", "/password", "/name"]);

        let too_long = "p".repeat(129);
        let response = app
            .post_json("/api/v1/auth/register", &json!({"email": "carol@example.com", "password": too_long, "name": "Carol"}))
            .await;
        let body = problem(response, 422).await;
        assert_eq!(body["errors"][0]["field"], "/password");
        // Rejected registrations left nothing behind: the address is still free.
        app.register("carol@example.com").await;

        let missing = app.post_json("/api/v1/auth/register", &json!({"email": "dave@example.com"})).await;
        problem(missing, 422).await;
        let wrong_type = app
            .post_json("/api/v1/auth/register", &json!({"email": "dave@example.com", "password": PASSWORD, "name": 7}))
            .await;
        let body = problem(wrong_type, 422).await;
        assert_eq!(body["errors"][0]["field"], "/name");
        app.stop().await;
    }

    async fn wrong_credentials_get_the_same_answer_whether_or_not_the_account_exists(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        app.register("frank@example.com").await;
        let wrong_password = problem(app.login("frank@example.com", "not the password at all").await, 401).await;
        let unknown = problem(app.login("nobody@example.com", "not the password at all").await, 401).await;
        assert_eq!(wrong_password, unknown);
        app.stop().await;
    }

    async fn repeated_failures_slow_the_guesser_down_and_never_lock_the_owner_out(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--trusted-proxies", "127.0.0.0/8,::1/128"]).await;
        app.register("grace@example.com").await;
        let login_from = |client: &str, password: &str| {
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", client.to_owned())
                .json(&json!({"email": "grace@example.com", "password": password}))
                .send()
        };
        for _ in 0..5 {
            problem(login_from("203.0.113.66", "wrong password, again").await.unwrap(), 401).await;
        }
        // The guesser's next attempt must wait, whatever it tries.
        let response = login_from("203.0.113.66", PASSWORD).await.unwrap();
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        problem(response, 429).await;
        // The owner, from their own address, is not held up by someone else's guesses...
        assert_eq!(login_from("198.51.100.7", PASSWORD).await.unwrap().status(), 200);
        // From the guesser's address too the right password works once the wait is over: the
        // throttle's unit tests show that on tokio's paused clock.
        app.stop().await;
    }

    async fn concurrent_guesses_cannot_all_slip_past_the_limit(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        app.register("judy@example.com").await;
        let guesses = (0..30).map(|_| app.login("judy@example.com", "thirty guesses at once"));
        let statuses: Vec<u16> = futures::future::join_all(guesses)
            .await
            .iter()
            .map(|response| response.status().as_u16())
            .collect();
        let verified = statuses.iter().filter(|&&status| status == 401).count();
        let held_back = statuses.iter().filter(|&&status| status == 429).count();
        // Five free attempts per account and address; the rest wait, unchecked.
        assert_eq!((verified, held_back), (5, 25), "{statuses:?}");
        app.stop().await;
    }

    async fn sign_ups_are_throttled_per_client_address(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--signups-per-client", "2"]).await;
        app.register("first@example.com").await;
        // A refused duplicate counts too: probing which addresses exist is what it slows.
        problem(
            app.post_json("/api/v1/auth/register", &json!({"email": "first@example.com", "password": PASSWORD, "name": "Again"}))
                .await,
            409,
        )
        .await;
        let response = app
            .post_json("/api/v1/auth/register", &json!({"email": "third@example.com", "password": PASSWORD, "name": "Third"}))
            .await;
        assert!(response.headers().contains_key("retry-after"));
        problem(response, 429).await;
        // Nothing was created for the refused sign-up.
        problem(app.login("third@example.com", PASSWORD).await, 401).await;
        app.stop().await;
    }

    async fn a_client_address_is_throttled_across_accounts(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--login-max-failures-per-client", "3"]).await;
        for n in 0..3 {
            problem(app.login(&format!("probe{n}@example.com"), "guessing passwords").await, 401).await;
        }
        problem(app.login("another@example.com", "guessing passwords").await, 429).await;
        app.stop().await;
    }

    async fn clients_behind_a_trusted_proxy_are_told_apart_and_the_header_is_believed_from_it_only(storage: TestStorage) {
        let failures = ["--login-max-failures-per-client", "3"];
        let login_from = |app: &TestApp, forwarded: &str| {
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", forwarded.to_owned())
                .json(&json!({"email": "probe@example.com", "password": "guessing passwords"}))
                .send()
        };
        // The test talks from loopback: as a proxy, when loopback is trusted.
        let behind_proxy = spawn_app_with(&storage, &[failures[0], failures[1], "--trusted-proxies", "127.0.0.0/8,::1/128"]).await;
        for _ in 0..3 {
            problem(login_from(&behind_proxy, "203.0.113.1").await.unwrap(), 401).await;
        }
        problem(login_from(&behind_proxy, "203.0.113.1").await.unwrap(), 429).await;
        // Another client behind the same proxy is not blocked by the first one's failures...
        problem(login_from(&behind_proxy, "203.0.113.2").await.unwrap(), 401).await;
        // ...and the first cannot pass for it: what a client writes itself is left of the hop
        // the proxy added, and not believed.
        problem(login_from(&behind_proxy, "203.0.113.2, 203.0.113.1").await.unwrap(), 429).await;
        behind_proxy.stop().await;

        // Nobody trusted: the header is the client's own say, and changes nothing.
        let direct = spawn_app_with(&storage, &failures).await;
        for n in 0..3 {
            problem(login_from(&direct, &format!("198.51.100.{n}")).await.unwrap(), 401).await;
        }
        problem(login_from(&direct, "198.51.100.99").await.unwrap(), 429).await;
        direct.stop().await;
    }

    async fn refresh_rotates_and_reuse_revokes_the_whole_family(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (_, first) = app.signed_up("ivan@example.com").await;
        let response = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": first})).await;
        assert_eq!(response.status(), 200);
        let rotated: Value = response.json().await.unwrap();
        let second = rotated["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        assert_eq!(app.get("/api/v1/users/me", rotated["access_token"].as_str()).await.status(), 200);

        // The old token replayed: refused, and the newest token of the family dies with it.
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": first})).await, 401).await;
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": second})).await, 401).await;

        // A separate login is a separate family and still works.
        let response = app.login("ivan@example.com", PASSWORD).await;
        let fresh: Value = response.json().await.unwrap();
        let response = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": fresh["refresh_token"]})).await;
        assert_eq!(response.status(), 200);
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": "made-up"})).await, 401).await;
        app.stop().await;
    }

    async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--session-max-age", "1h"]).await;
        let (_, mut refresh) = app.signed_up("mallory@example.com").await;
        let minutes = |n: u64| std::time::Duration::from_secs(60 * n);
        // Refreshing keeps it going only until the session's lifetime from its login is over:
        // at 20 and 59 minutes it is renewed, at 61 the last token it was given is refused.
        for age in [20, 39] {
            app.age_sessions(minutes(age)).await;
            let rotated = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh})).await;
            assert_eq!(rotated.status(), 200);
            refresh = rotated.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
        }
        app.age_sessions(minutes(2)).await;
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh})).await, 401).await;
        assert_eq!(app.login("mallory@example.com", PASSWORD).await.status(), 200, "signing in again works");
        app.stop().await;
    }

    async fn ended_sessions_are_pruned_with_their_tokens(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--session-max-age", "1h"]).await;
        let (_, first) = app.signed_up("olga@example.com").await;
        let rotated = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": first})).await;
        let ended = rotated.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
        app.age_sessions(std::time::Duration::from_secs(61 * 60)).await;
        let live: Value = app.login("olga@example.com", PASSWORD).await.json().await.unwrap();

        let db = app.database("users").await;
        let retention = users::retention::SessionRetention::new(db.clone(), std::time::Duration::from_secs(60 * 60));
        assert_eq!(retention.prune(chrono::Utc::now()).await.unwrap(), 1, "the session that ended");
        let count = |table: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("refresh_token_families").await, 1, "the live session stays");
        assert_eq!(count("refresh_tokens").await, 1, "both tokens of the ended one went with it");
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": ended})).await, 401).await;
        let response = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": live["refresh_token"]})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(retention.prune(chrono::Utc::now()).await.unwrap(), 0);
        app.stop().await;
    }

    async fn logout_revokes_the_session(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (_, refresh) = app.signed_up("judy@example.com").await;
        let response = app.post_json("/api/v1/auth/logout", &json!({"refresh_token": refresh})).await;
        assert_eq!(response.status(), 204);
        problem(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh})).await, 401).await;
        app.stop().await;
    }

    async fn the_configured_admin_exists_at_start(storage: TestStorage) {
        // spawn_app configures ADMIN_EMAIL with a password file ending in a newline.
        let app = spawn_app(&storage).await;
        let token = app.admin_token().await;
        let me: Value = app.get("/api/v1/users/me", Some(&token)).await.json().await.unwrap();
        assert!(me["roles"].as_array().unwrap().contains(&json!("admin")));
        app.stop().await;
    }
}
