//! Sessions that ended are pruned: each refresh adds a token row, and a session is over, every
//! token of it expired, once `--session-max-age` has passed since its login. Kept, they would
//! grow by a row per refresh for as long as the platform runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::db::{Db, drain, literal_limit};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// Sessions deleted per transaction, with their tokens.
const BATCH: i64 = 500;

pub struct SessionRetention {
    db: Db,
    /// The longest a session lasts from its login.
    session: Duration,
}

impl SessionRetention {
    pub fn new(db: Db, session: Duration) -> Self {
        Self { db, session }
    }

    /// Prunes every ten minutes until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::prune_every(
            "ended sessions",
            platform::periodic::PRUNE_EVERY,
            &cancel,
            |now| self.prune(now),
        )
        .await;
    }

    /// Deletes the sessions that began more than the session's longest life before `now`,
    /// with their refresh tokens; returns how many sessions.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let began_before = platform::time::millis_before(now, self.session);
        let select = format!(
            "SELECT id FROM refresh_token_families WHERE created_at < $1 ORDER BY created_at {} {}",
            literal_limit(BATCH),
            self.db.skip_locked()
        );
        let deletes = [
            "DELETE FROM refresh_tokens WHERE family_id IN ({ids})",
            "DELETE FROM refresh_token_families WHERE id IN ({ids})",
        ];
        let batch = || {
            self.db
                .delete_batch("prune ended sessions", &select, began_before, &deletes)
        };
        Ok(drain(BATCH, batch).await?)
    }
}
