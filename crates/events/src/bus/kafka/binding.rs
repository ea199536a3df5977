//! The CloudEvents Kafka protocol binding, binary content mode: attributes travel as `ce_*`
//! headers, `datacontenttype` as `content-type`, the data as the record value, and the
//! subject (the aggregate id) as the key. W3C `traceparent` rides along as its own header too,
//! so tracing-aware Kafka tooling picks it up without knowing CloudEvents.

use chrono::DateTime;
use uuid::Uuid;

use crate::Envelope;
use crate::bus::BusError;

/// A record as it goes to or comes from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub value: Vec<u8>,
}

pub fn encode(envelope: &Envelope) -> Result<Record, BusError> {
    let mut headers = vec![
        ("ce_specversion".to_owned(), envelope.specversion.clone()),
        ("ce_id".to_owned(), envelope.id.to_string()),
        ("ce_source".to_owned(), envelope.source.clone()),
        ("ce_type".to_owned(), envelope.event_type.clone()),
        ("ce_subject".to_owned(), envelope.subject.clone()),
        ("ce_time".to_owned(), envelope.time.to_rfc3339()),
        ("content-type".to_owned(), envelope.datacontenttype.clone()),
    ];
    let extensions = [
        ("ce_traceparent", &envelope.traceparent),
        ("ce_correlationid", &envelope.correlationid),
        ("ce_causationid", &envelope.causationid),
        ("ce_dataschema", &envelope.dataschema),
        ("traceparent", &envelope.traceparent),
    ];
    for (name, value) in extensions {
        if let Some(value) = value {
            headers.push((name.to_owned(), value.clone()));
        }
    }
    let value = serde_json::to_vec(&envelope.data)
        .map_err(|e| BusError::Corrupt(format!("event {}: {e}", envelope.id)))?;
    Ok(Record {
        key: envelope.subject.clone(),
        headers,
        value,
    })
}

pub fn decode(record: &Record) -> Result<Envelope, BusError> {
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let required = |name: &str| {
        header(name).ok_or_else(|| BusError::Corrupt(format!("the record has no {name} header")))
    };
    let id = required("ce_id")?;
    let time = required("ce_time")?;
    Ok(Envelope {
        specversion: required("ce_specversion")?,
        id: Uuid::parse_str(&id).map_err(|e| BusError::Corrupt(format!("ce_id {id:?}: {e}")))?,
        source: required("ce_source")?,
        event_type: required("ce_type")?,
        subject: header("ce_subject").unwrap_or_else(|| record.key.clone()),
        time: DateTime::parse_from_rfc3339(&time)
            .map_err(|e| BusError::Corrupt(format!("ce_time {time:?}: {e}")))?
            .to_utc(),
        datacontenttype: header("content-type").unwrap_or_else(|| "application/json".into()),
        dataschema: header("ce_dataschema"),
        data: serde_json::from_slice(&record.value)
            .map_err(|e| BusError::Corrupt(format!("event {id} data: {e}")))?,
        traceparent: header("ce_traceparent").or_else(|| header("traceparent")),
        correlationid: header("ce_correlationid"),
        causationid: header("ce_causationid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut envelope = Envelope::new(
            "commercex/orders",
            "commercex.order.placed.v1",
            "order-1",
            &serde_json::json!({"order_id": "order-1", "total": 1250}),
        );
        envelope.traceparent =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        envelope.correlationid = Some("order-1".into());
        envelope
    }

    #[test]
    fn binary_mode_round_trips_every_attribute() {
        let envelope = sample();
        let record = encode(&envelope).expect("encode");
        assert_eq!(record.key, "order-1");
        let names: Vec<&str> = record.headers.iter().map(|(k, _)| k.as_str()).collect();
        for expected in [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "content-type",
            "traceparent",
        ] {
            assert!(names.contains(&expected), "missing {expected}: {names:?}");
        }
        assert!(
            !names.contains(&"ce_causationid"),
            "absent attributes are not sent"
        );
        let value: serde_json::Value = serde_json::from_slice(&record.value).expect("json value");
        assert_eq!(
            value["total"], 1250,
            "the value is the data alone, not an envelope"
        );
        let back = decode(&record).expect("decode");
        assert_eq!(back.id, envelope.id);
        assert_eq!(
            back.time.timestamp_micros(),
            envelope.time.timestamp_micros()
        );
        assert_eq!(back.data, envelope.data);
        assert_eq!(back.traceparent, envelope.traceparent);
        assert_eq!(back.correlationid, envelope.correlationid);
        assert_eq!(back.causationid, None);
    }

    #[test]
    fn records_without_required_attributes_are_corrupt() {
        let mut record = encode(&sample()).expect("encode");
        record.headers.retain(|(name, _)| name != "ce_type");
        let error = decode(&record).expect_err("no type");
        assert!(error.to_string().contains("ce_type"), "{error}");
    }
}
