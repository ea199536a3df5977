//! Request bodies as the API receives them: the first byte picks an endpoint, the rest is
//! its body. Parsing and validation must answer a client error (4xx) or a valid command,
//! never panic and never a server error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::ApiError;
use platform::http::parse_json_body;

fn refused_cleanly(error: &ApiError) {
    assert!(error.status().is_client_error(), "{error:?}");
}

fn check<T, U>(body: &[u8], validate: impl FnOnce(T) -> Result<U, ApiError>)
where
    T: serde::de::DeserializeOwned,
{
    match parse_json_body::<T>(body) {
        Ok(request) => {
            if let Err(error) = validate(request) {
                refused_cleanly(&error);
            }
        }
        Err(error) => refused_cleanly(&error),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => check(body, users::api::dto::RegisterRequest::parse),
        1 => check(body, catalog::api::dto::CreateProductRequest::parse),
        2 => check(body, catalog::api::dto::PatchProductRequest::parse),
        3 => check(body, |r: inventory::api::dto::AdjustmentRequest| r.parse()),
        _ => check(body, orders::api::dto::PlaceOrderRequest::parse),
    }
});
