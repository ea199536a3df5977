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
        self.register(email).await;
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.expect("tokens");
        (
            tokens["access_token"].as_str().expect("access").to_owned(),
            tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        )
    }

    /// An access token of the configured administrator.
    pub async fn admin_token(&self) -> String {
        let response = self.login(ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200, "admin login");
        let tokens: Value = response.json().await.expect("tokens");
        tokens["access_token"].as_str().expect("access").to_owned()
    }
}
