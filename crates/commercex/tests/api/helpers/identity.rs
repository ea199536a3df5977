//! Accounts: signing up, logging in, the administrator.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};

use super::{ADMIN_EMAIL, PASSWORD, TestApp};

impl TestApp {
    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": "Test User"}),
            )
            .await;
        assert_eq!(response.status(), 201, "register {email}");
        response.json().await.expect("user json")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` and logs in: (access token, refresh token).
    pub async fn signed_up(&self, email: &str) -> (String, String) {
        let tokens = self
            .api
            .sign_up(email, PASSWORD, "Test User")
            .await
            .expect("sign up");
        (tokens.access_token, tokens.refresh_token)
    }

    /// An access token of the configured administrator.
    pub async fn admin_token(&self) -> String {
        let tokens = self
            .api
            .login(ADMIN_EMAIL, PASSWORD)
            .await
            .expect("admin login");
        tokens.access_token
    }

    /// Moves every session `by` into the past, as if that much time had gone by since each
    /// login and each refresh: the test's clock for session lifetimes, instead of sleeping.
    pub async fn age_sessions(&self, by: Duration) {
        let db = self.database("users").await;
        let millis = i64::try_from(by.as_millis()).expect("a test-sized duration");
        for statement in [
            "UPDATE refresh_token_families SET created_at = created_at - $1",
            "UPDATE refresh_tokens SET issued_at = issued_at - $1, expires_at = expires_at - $1",
        ] {
            sqlx::query(statement)
                .bind(millis)
                .execute(db.pool())
                .await
                .expect("age the sessions");
        }
    }
}
