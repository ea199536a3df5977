//! Pruning the delivery history: deliveries delivered before a cut-off with their tries, and
//! messages no delivery needs any more. Waiting deliveries are never pruned, however old:
//! they go out once their endpoint takes them.

use platform::db::literal_limit;

use super::{StoreError, WebhookStore};

impl WebhookStore {
    /// Deletes up to `batch` deliveries delivered before `cutoff` (milliseconds), their
    /// tries with them, in one transaction; returns how many. The rows are locked as they are
    /// taken, so an operator's replay at that moment finds the delivery pending (and it
    /// stays) or gone, never half deleted.
    pub async fn prune_delivered(&self, cutoff: i64, batch: i64) -> Result<u64, StoreError> {
        let db = self.db();
        let select = format!(
            "SELECT id FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < $1 \
             ORDER BY delivered_at {} {}",
            literal_limit(batch),
            db.skip_locked()
        );
        let deletes = [
            "DELETE FROM webhook_attempts WHERE delivery_id IN ({ids})",
            "DELETE FROM webhook_deliveries WHERE id IN ({ids})",
        ];
        Ok(db
            .delete_batch("webhooks.prune_delivered", &select, cutoff, &deletes)
            .await?)
    }

    /// Deletes up to `batch` messages of events older than `cutoff` (milliseconds) that no
    /// delivery refers to (all delivered and pruned, or their endpoints deleted); returns how
    /// many.
    pub async fn prune_messages(&self, cutoff: i64, batch: i64) -> Result<u64, StoreError> {
        let db = self.db();
        let sql = format!(
            "DELETE FROM webhook_messages WHERE event_id IN \
             (SELECT m.event_id FROM webhook_messages m WHERE m.event_time < $1 \
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = m.event_id) \
              {} {})",
            literal_limit(batch),
            db.skip_locked()
        );
        let delete = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(cutoff);
        Ok(db
            .write_one("webhooks.prune_messages", delete)
            .await?
            .rows_affected())
    }
}
