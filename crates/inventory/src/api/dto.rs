use chrono::{DateTime, Utc};
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Adjustment, StockLevels};
use crate::store::LedgerEntry;

#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    pub product_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

impl From<StockLevels> for StockResponse {
    fn from(levels: StockLevels) -> Self {
        Self {
            product_id: levels.product_id,
            on_hand: levels.on_hand,
            reserved: levels.reserved,
            available: levels.available(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Units added (positive) or removed (negative).
    #[schema(example = 25)]
    pub delta: i64,
    #[schema(example = "delivery from supplier")]
    pub reason: String,
}

impl AdjustmentRequest {
    pub fn parse(&self) -> Result<Adjustment, ApiError> {
        Adjustment::parse(self.delta, &self.reason).map_err(|(field, detail)| {
            ApiError::Validation(vec![FieldError::new(field, "invalid", detail)])
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryResponse {
    pub id: Uuid,
    /// `adjustment`, `reservation`, `committed`, `released` or `expired`.
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reason: String,
    /// Who made the change: an admin's user id, or the service that did.
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl From<LedgerEntry> for LedgerEntryResponse {
    fn from(entry: LedgerEntry) -> Self {
        Self {
            id: entry.id,
            kind: entry.kind,
            on_hand_delta: entry.on_hand_delta,
            reserved_delta: entry.reserved_delta,
            on_hand_after: entry.on_hand_after,
            reserved_after: entry.reserved_after,
            reason: entry.reason,
            actor: entry.actor,
            at: entry.at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl LedgerParams {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(50) {
            limit @ 1..=200 => Ok(limit),
            _ => Err(ApiError::validation(
                "limit",
                "invalid",
                "limit must be between 1 and 200",
            )),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    /// Newest first.
    pub items: Vec<LedgerEntryResponse>,
    pub next_cursor: Option<Uuid>,
}
