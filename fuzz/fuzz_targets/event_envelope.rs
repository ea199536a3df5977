//! Events as a consumer receives them: any bytes may arrive on a topic. Decoding must fail
//! cleanly (the record goes to the dead-letter queue), never panic, and an envelope that
//! decodes must encode and decode to the same JSON.
#![no_main]

use events::Envelope;
use events::contract::catalog::*;
use events::contract::inventory::*;
use events::contract::orders::*;
use events::contract::payments::*;
use events::contract::users::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(envelope) = Envelope::from_json(text) else {
        return;
    };
    let again = Envelope::from_json(&envelope.to_json()).expect("an encoded envelope decodes");
    assert_eq!(again.to_json(), envelope.to_json());
    // Every handler decodes the data as the type its event_type names; any type may be
    // tried on any data.
    let _ = envelope.decode::<UserRegisteredV1>();
    let _ = envelope.decode::<ProductCreatedV1>();
    let _ = envelope.decode::<ProductUpdatedV1>();
    let _ = envelope.decode::<ProductArchivedV1>();
    let _ = envelope.decode::<StockAdjustedV1>();
    let _ = envelope.decode::<InventoryReservedV1>();
    let _ = envelope.decode::<InventoryRejectedV1>();
    let _ = envelope.decode::<ReservationExpiredV1>();
    let _ = envelope.decode::<OrderPlacedV1>();
    let _ = envelope.decode::<OrderConfirmedV1>();
    let _ = envelope.decode::<OrderCancelledV1>();
    let _ = envelope.decode::<PaymentCapturedV1>();
    let _ = envelope.decode::<PaymentFailedV1>();
    let _ = envelope.decode::<PaymentRefundedV1>();
});
