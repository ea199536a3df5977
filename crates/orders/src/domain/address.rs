use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A shipping address; `country` is an ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    #[schema(example = "DE")]
    pub country: String,
}

fn bounded(value: &str, max: usize) -> bool {
    let trimmed = value.trim();
    !trimmed.is_empty() && trimmed.chars().count() <= max && !trimmed.chars().any(char::is_control)
}

impl ShippingAddress {
    /// Field problems as (JSON pointer below the address, message).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if !bounded(&self.name, 100) {
            problems.push(("/name", "name must be 1 to 100 characters"));
        }
        if !bounded(&self.line1, 200) {
            problems.push(("/line1", "line1 must be 1 to 200 characters"));
        }
        if self
            .line2
            .as_deref()
            .is_some_and(|l| !l.trim().is_empty() && !bounded(l, 200))
        {
            problems.push(("/line2", "line2 must be at most 200 characters"));
        }
        if !bounded(&self.city, 100) {
            problems.push(("/city", "city must be 1 to 100 characters"));
        }
        if !bounded(&self.postal_code, 20) {
            problems.push(("/postal_code", "postal_code must be 1 to 20 characters"));
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push((
                "/country",
                "country must be an ISO 3166-1 alpha-2 code such as DE",
            ));
        }
        problems
    }
}
