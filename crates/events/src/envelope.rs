use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as it travels: CloudEvents 1.0 attributes plus the trace and saga extensions.
/// In the database log it is stored as CloudEvents structured JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    pub id: Uuid,
    /// The producing service, e.g. `commercex/users`.
    pub source: String,
    /// e.g. `commercex.user.registered.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The aggregate id; also the partition key.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The JSON Schema of `data` (`contract::schema_uri`), for events of a published type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The id that ties a saga together (the order id in checkout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// The id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("event {event_id} ({event_type}) has unreadable data: {source}")]
pub struct DecodeError {
    pub event_id: Uuid,
    pub event_type: String,
    pub source: serde_json::Error,
}

impl Envelope {
    /// An event of a catalogued kind about aggregate `subject`.
    pub fn of<E: crate::contract::EventKind>(
        source: &str,
        subject: impl Into<String>,
        data: &E,
    ) -> Self {
        let mut event = Self::new(source, E::TYPE, subject, data);
        event.dataschema = Some(crate::contract::schema_uri(E::TYPE));
        event
    }

    pub fn new(
        source: &str,
        event_type: &str,
        subject: impl Into<String>,
        data: &impl Serialize,
    ) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: source.into(),
            event_type: event_type.into(),
            subject: subject.into(),
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            dataschema: None,
            // Serializing our own plain data types cannot fail; Null would be caught by
            // every consumer's decode as a permanent error rather than vanish.
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
            traceparent: None,
            correlationid: None,
            causationid: None,
        }
    }

    /// Marks this event as caused by `cause`, inheriting its saga correlation.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causationid = Some(cause.id.to_string());
        self.correlationid = cause.correlationid.clone();
        self
    }

    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlationid = Some(correlation_id.into());
        self
    }

    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        serde_json::from_value(self.data.clone()).map_err(|source| DecodeError {
            event_id: self.id,
            event_type: self.event_type.clone(),
            source,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_cloudevents_json() {
        let event = Envelope::new(
            "commercex/test",
            "commercex.test.done.v1",
            "agg-1",
            &serde_json::json!({"n": 1}),
        )
        .correlated("order-9");
        let json = event.to_json();
        assert!(json.contains(r#""type":"commercex.test.done.v1""#));
        assert!(json.contains(r#""specversion":"1.0""#));
        assert_eq!(Envelope::from_json(&json).expect("decode"), event);
    }

    #[test]
    fn causation_carries_the_correlation() {
        let cause = Envelope::new("a", "t", "s", &1).correlated("order-1");
        let effect = Envelope::new("b", "t2", "s", &2).caused_by(&cause);
        assert_eq!(effect.correlationid.as_deref(), Some("order-1"));
        assert_eq!(effect.causationid, Some(cause.id.to_string()));
    }
}
