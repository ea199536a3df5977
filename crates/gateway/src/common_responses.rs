//! The error responses every operation can give, whatever its handler says: the edge and the
//! request conventions answer them before (or around) the handler. Adding them to each
//! operation of the public document keeps it true for clients and for schemathesis, which
//! fails a response whose status the document does not list.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Status, description, and which operations can give it.
const COMMON: [(&str, &str, Applies); 8] = [
    (
        "400",
        "Malformed request (unreadable JSON or query, or a path with dot segments)",
        Applies::All,
    ),
    (
        "401",
        "The bearer token sent is not valid",
        Applies::OutsideAuth,
    ),
    ("413", "Body larger than the limit", Applies::WithBody),
    ("415", "Body is not application/json", Applies::WithBody),
    ("422", "Invalid fields", Applies::All),
    ("429", "Quota exceeded (see Retry-After)", Applies::All),
    (
        "503",
        "A service it needs is unavailable (see Retry-After)",
        Applies::All,
    ),
    (
        "504",
        "A service it needs did not answer in time",
        Applies::All,
    ),
];

#[derive(Clone, Copy)]
enum Applies {
    All,
    /// Not under `/api/v1/auth/`, where a stale token is ignored rather than refused.
    OutsideAuth,
    WithBody,
}

pub fn add(openapi: &mut OpenApi) {
    for (path, item) in &mut openapi.paths.paths {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_to(path, operation);
        }
    }
}

fn add_to(path: &str, operation: &mut Operation) {
    for (status, description, applies) in COMMON {
        let relevant = match applies {
            Applies::All => true,
            Applies::OutsideAuth => !path.starts_with("/api/v1/auth/"),
            Applies::WithBody => operation.request_body.is_some(),
        };
        if relevant {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::T(problem(description)));
        }
    }
}

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
