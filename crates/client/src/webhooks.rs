//! Webhook endpoints as an administrator manages them: registered, paused and enabled again,
//! their signing secret rotated, their deliveries read and replayed, a test event sent.

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{ApiClient, ApiError};

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// `healthy`, `failing`, `disabled` (by the breaker) or `paused` (by an operator).
    pub state: String,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
struct EndpointList {
    items: Vec<WebhookEndpoint>,
}

/// A registered endpoint and its signing secret, which is shown this once.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// A new signing secret, shown this once, and until when the previous ones sign too.
#[derive(Debug, Clone, Deserialize)]
pub struct RotatedSecret {
    pub secret: String,
    pub previous_valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookDelivery {
    pub id: Uuid,
    /// The event's id: the `webhook-id` every try carries.
    pub webhook_id: Uuid,
    pub event_type: String,
    pub event_time: DateTime<Utc>,
    /// `pending` or `delivered`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<Uuid>,
}

const ENDPOINTS: &str = "/api/v1/admin/webhooks/endpoints";

impl ApiClient {
    pub async fn webhook_endpoints(&self, admin: &str) -> Result<Vec<WebhookEndpoint>, ApiError> {
        let list: EndpointList = self
            .call(Method::GET, ENDPOINTS, Some(admin), None, StatusCode::OK)
            .await?;
        Ok(list.items)
    }

    pub async fn webhook_endpoint(
        &self,
        admin: &str,
        id: Uuid,
    ) -> Result<WebhookEndpoint, ApiError> {
        let path = format!("{ENDPOINTS}/{id}");
        self.call(Method::GET, &path, Some(admin), None, StatusCode::OK)
            .await
    }

    /// Registers an endpoint for `event_types` (patterns such as `commercex.order.*`).
    pub async fn register_webhook_endpoint(
        &self,
        admin: &str,
        url: &str,
        event_types: &[String],
        description: &str,
    ) -> Result<CreatedEndpoint, ApiError> {
        let body = json!({"url": url, "event_types": event_types, "description": description});
        self.call(
            Method::POST,
            ENDPOINTS,
            Some(admin),
            Some(&body),
            StatusCode::CREATED,
        )
        .await
    }

    /// Pauses an endpoint (its events are kept for it) or enables it again.
    pub async fn set_webhook_endpoint_enabled(
        &self,
        admin: &str,
        id: Uuid,
        enabled: bool,
    ) -> Result<WebhookEndpoint, ApiError> {
        let path = format!("{ENDPOINTS}/{id}");
        let body = json!({"enabled": enabled});
        self.call(
            Method::PATCH,
            &path,
            Some(admin),
            Some(&body),
            StatusCode::OK,
        )
        .await
    }

    /// Removes an endpoint with its secrets and deliveries.
    pub async fn delete_webhook_endpoint(&self, admin: &str, id: Uuid) -> Result<(), ApiError> {
        let path = format!("{ENDPOINTS}/{id}");
        self.call::<()>(
            Method::DELETE,
            &path,
            Some(admin),
            None,
            StatusCode::NO_CONTENT,
        )
        .await
    }

    /// A new signing secret; the ones in use keep signing beside it for `overlap_seconds`.
    pub async fn rotate_webhook_secret(
        &self,
        admin: &str,
        id: Uuid,
        overlap_seconds: u64,
    ) -> Result<RotatedSecret, ApiError> {
        let path = format!("{ENDPOINTS}/{id}/secret/rotate");
        let body = json!({"overlap_seconds": overlap_seconds});
        self.call(
            Method::POST,
            &path,
            Some(admin),
            Some(&body),
            StatusCode::OK,
        )
        .await
    }

    /// The endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        admin: &str,
        id: Uuid,
        limit: u32,
    ) -> Result<WebhookDeliveryPage, ApiError> {
        let path = format!("{ENDPOINTS}/{id}/deliveries?limit={limit}");
        self.call(Method::GET, &path, Some(admin), None, StatusCode::OK)
            .await
    }

    /// Sends a delivery again (a delivered one goes out once more).
    pub async fn replay_webhook_delivery(
        &self,
        admin: &str,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<(), ApiError> {
        let path = format!("{ENDPOINTS}/{id}/deliveries/{delivery}/replay");
        self.call::<()>(Method::POST, &path, Some(admin), None, StatusCode::ACCEPTED)
            .await
    }

    /// Queues a `commercex.webhook.test.v1` event for the endpoint.
    pub async fn send_webhook_test(&self, admin: &str, id: Uuid) -> Result<(), ApiError> {
        let path = format!("{ENDPOINTS}/{id}/test");
        self.call::<serde_json::Value>(Method::POST, &path, Some(admin), None, StatusCode::ACCEPTED)
            .await
            .map(drop)
    }
}
