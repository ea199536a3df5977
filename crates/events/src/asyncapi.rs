//! The published event contract: an AsyncAPI 3.0 document of the topics and every event type,
//! and a JSON Schema (draft 2020-12) per payload type, both generated from the Rust types the
//! services produce and consume (`contract`), the way the OpenAPI document is generated from
//! the HTTP handlers. Served at `/asyncapi.json` and `/asyncapi/schemas/{type}.json`.

use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::contract::{self, Published};

/// Versions of the Kafka bindings the document uses.
const KAFKA_BINDING: &str = "0.5.0";

fn settings(definitions_path: &'static str) -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = definitions_path.into();
        // What producers write is the contract.
        s.contract = Contract::Serialize;
    })
}

/// `GET /asyncapi.json` and `GET /asyncapi/schemas/{event_type}.json`, public like
/// `/openapi.json`.
pub fn routes() -> axum::Router {
    use axum::extract::Path;
    use axum::routing::get;
    use platform::ApiError;
    use platform::http::Json;

    // Made and written once: the document is the same for the life of the process, and
    // each answer shares the bytes.
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&document()).expect("the AsyncAPI document serializes"),
    );
    axum::Router::new()
        .route(
            "/asyncapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document,
                    )
                }
            }),
        )
        .route(
            "/asyncapi/schemas/{file}",
            get(|Path(file): Path<String>| async move {
                file.strip_suffix(".json")
                    .and_then(schema)
                    .map(Json)
                    .ok_or_else(|| ApiError::NotFound(format!("no published event schema {file}")))
            }),
        )
}

/// One event type's payload schema, whole: `$id` is its `dataschema`, the types it uses are
/// in `$defs`. None for a type that is not published.
pub fn schema(event_type: &str) -> Option<Value> {
    let published = contract::published()
        .into_iter()
        .find(|p| p.event_type == event_type)?;
    let mut generator = settings("/$defs").into_generator();
    (published.schema)(&mut generator);
    let mut definitions = generator.take_definitions(true);
    let Some(Value::Object(mut root)) = definitions.remove(published.name) else {
        return None;
    };
    let mut head = Map::new();
    head.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    head.insert("$id".into(), json!(published.schema_uri()));
    head.append(&mut root);
    if !definitions.is_empty() {
        head.insert("$defs".into(), Value::Object(definitions));
    }
    Some(Value::Object(head))
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let published = contract::published();
    let mut generator = settings("/components/schemas").into_generator();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for topic in contract::TOPICS {
        let on_topic: Vec<&Published> = published.iter().filter(|p| p.topic == topic).collect();
        let channel = channel_name(topic);
        let refs: Map<String, Value> = on_topic
            .iter()
            .map(|p| {
                (
                    p.name.to_owned(),
                    json!({"$ref": format!("#/components/messages/{}", p.name)}),
                )
            })
            .collect();
        channels.insert(
            channel.clone(),
            json!({
                "address": topic,
                "title": topic,
                "description": format!(
                    "The {channel} aggregate's events, keyed by its id (Kafka orders them per key)."
                ),
                "messages": refs,
                "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
            }),
        );
        operations.insert(
            format!("publish{}", capitalised(&channel)),
            json!({
                "action": "send",
                "title": format!("CommerceX publishes on {topic}"),
                "channel": {"$ref": format!("#/channels/{channel}")},
                "messages": on_topic
                    .iter()
                    .map(|p| json!({"$ref": format!("#/channels/{channel}/messages/{}", p.name)}))
                    .collect::<Vec<_>>(),
            }),
        );
        for p in on_topic {
            let payload = (p.schema)(&mut generator);
            messages.insert(
                p.name.to_owned(),
                json!({
                    "name": p.event_type,
                    "title": p.event_type,
                    "summary": format!("`{}` events: `data` is {}.", p.event_type, p.name),
                    "contentType": "application/json",
                    "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                    "payload": payload,
                    "correlationId": {"$ref": "#/components/correlationIds/Saga"},
                    "bindings": {"kafka": {
                        "key": {"type": "string", "description": "The aggregate's id (the CloudEvent's subject)."},
                        "bindingVersion": KAFKA_BINDING,
                    }},
                    "externalDocs": {"url": p.schema_uri(), "description": "This payload's JSON Schema `$id` (the events' `dataschema`)"},
                }),
            );
        }
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("CloudEventHeaders".into(), cloud_event_headers());
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "CommerceX events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event CommerceX publishes, on Kafka in the CloudEvents Kafka \
                protocol binding (binary content mode: attributes as `ce_*` headers, `data` as \
                the value, the subject as the key), and to webhook endpoints as CloudEvents \
                JSON. A type's shape never changes within its version (`.vN`); a breaking \
                change is a new type. See docs/INTEGRATING.md.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "correlationIds": {"Saga": {
                "description": "The id that ties a saga together: the order id in checkout.",
                "location": "$message.header#/ce_correlationid",
            }},
        },
    })
}

/// `commercex.orders` -> `orders`.
fn channel_name(topic: &str) -> String {
    topic.rsplit('.').next().unwrap_or(topic).to_owned()
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The CloudEvents attributes as Kafka headers (binary content mode).
fn cloud_event_headers() -> Value {
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"],
        "properties": {
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_id": {"type": "string", "format": "uuid", "description": "The event's id (UUIDv7): deduplicate on it."},
            "ce_source": text("The producing service, e.g. `commercex/orders`."),
            "ce_type": text("The event type, e.g. `commercex.order.placed.v1`."),
            "ce_subject": text("The aggregate's id; also the record's key."),
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschema": {"type": "string", "format": "uri", "description": "The `$id` of the payload's JSON Schema."},
            "ce_correlationid": text("The saga's id (the order id in checkout)."),
            "ce_causationid": text("The id of the event that caused this one."),
            "ce_traceparent": text("W3C trace context."),
            "content-type": {"type": "string", "const": "application/json"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload schema is the contract with every consumer: if one of these snapshots
    /// changes, a consumer reading that type may break. Add a `.vN+1` type instead (and keep
    /// publishing the old one for a release); only additions of optional fields may change
    /// a snapshot.
    #[test]
    fn every_published_schema_is_unchanged() {
        for published in contract::published() {
            let schema = schema(published.event_type).expect("a schema");
            insta::assert_json_snapshot!(published.event_type, schema);
        }
    }

    #[test]
    fn the_document_is_unchanged() {
        insta::assert_json_snapshot!("asyncapi", document());
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let document = document();
        let mut refs = Vec::new();
        collect_refs(&document, &mut refs);
        assert!(refs.len() > 40, "{}", refs.len());
        for reference in refs {
            let pointer = reference.trim_start_matches('#');
            let pointer = pointer.replace("~1", "/");
            assert!(
                document.pointer(&pointer).is_some(),
                "{reference} resolves to nothing"
            );
        }
    }

    fn collect_refs(value: &Value, refs: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }

    #[test]
    fn every_type_has_a_schema_named_by_its_dataschema() {
        for published in contract::published() {
            let schema = schema(published.event_type).expect("a schema");
            assert_eq!(schema["$id"], published.schema_uri());
            assert_eq!(schema["type"], "object", "{}", published.event_type);
        }
        assert_eq!(schema("commercex.order.shipped.v1"), None);
    }
}
