//! The event contract: every topic, event type and payload services exchange. A payload
//! type's shape is versioned by its `.vN` suffix; a breaking change is a new type.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event type and the topic (one per aggregate) it is published on.
pub trait EventKind: Serialize {
    const TYPE: &'static str;
    const TOPIC: &'static str;
}

pub mod users {
    use super::*;

    pub const TOPIC: &str = "commercex.users";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct UserRegisteredV1 {
        pub user_id: Uuid,
        pub email: String,
        pub name: String,
        pub roles: Vec<String>,
    }

    impl EventKind for UserRegisteredV1 {
        const TYPE: &'static str = "commercex.user.registered.v1";
        const TOPIC: &'static str = TOPIC;
    }
}
