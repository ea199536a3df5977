//! Accounts: signing up, logging in, the administrator.

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
}
