//! A consumer group's positions, kept in its own database when the bus keeps none (the
//! in-database bus): written in the transaction that handled the events before them, so a
//! crash can never leave the effects of an event without its position, or the reverse.

use platform::db::{Db, Tx};
use sqlx::Row;

use crate::bus::{Delivery, Positions};

/// The group's stored positions in `topics`.
pub(crate) async fn load(
    db: &Db,
    group: &str,
    topics: &[String],
) -> Result<Positions, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT topic, partition_no, position FROM consumer_positions WHERE consumer_group = $1",
    )
    .bind(group)
    .fetch_all(db.pool())
    .await?;
    let mut positions = Positions::new();
    for row in rows {
        let topic: String = row.try_get("topic")?;
        if !topics.contains(&topic) {
            continue;
        }
        let partition: i64 = row.try_get("partition_no")?;
        let partition = i32::try_from(partition).unwrap_or(i32::MAX);
        positions.insert((topic, partition), row.try_get("position")?);
    }
    Ok(positions)
}

/// Moves the group's positions to `positions` inside `tx`, in one statement. Never backwards:
/// two instances of a group may both write, and the furthest one counts (everything before it
/// is handled or in the inbox).
pub(crate) async fn save(
    tx: &mut Tx,
    group: &str,
    positions: &Positions,
) -> Result<(), sqlx::Error> {
    if positions.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..positions.len())
        .map(|i| format!("($1, ${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
        .collect();
    let sql = format!(
        "INSERT INTO consumer_positions (consumer_group, topic, partition_no, position) \
         VALUES {} ON CONFLICT (consumer_group, topic, partition_no) DO UPDATE \
         SET position = CASE WHEN excluded.position > consumer_positions.position \
         THEN excluded.position ELSE consumer_positions.position END",
        rows.join(", ")
    );
    let mut upsert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(group);
    for ((topic, partition), position) in positions {
        upsert = upsert
            .bind(topic)
            .bind(i64::from(*partition))
            .bind(*position);
    }
    upsert.execute(&mut ***tx).await?;
    Ok(())
}

/// Where `deliveries` leave each partition: the last offset of each.
pub(crate) fn after(deliveries: &[Delivery]) -> Positions {
    let mut positions = Positions::new();
    for delivery in deliveries {
        positions.insert(
            (delivery.topic.clone(), delivery.partition),
            delivery.offset,
        );
    }
    positions
}
