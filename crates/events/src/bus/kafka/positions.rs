//! A member's positions not yet sent to the broker, and what may be sent.
//!
//! A position says that everything before it in its partition is done. A record the member
//! passes over itself (one that is not an event, copied to the dead-letter topic) is done
//! at once, but its position may only be sent once the events handed out before it in its
//! partition are done too: sent earlier, a crash would lose those events, since the group
//! would resume after them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A partition, by the topic's name as the broker knows it.
type Partition = (String, i32);

#[derive(Default)]
pub(super) struct Unsent {
    /// Per partition, the offset of the last record done.
    offsets: HashMap<Partition, i64>,
    /// When the oldest of them was taken.
    since: Option<Instant>,
    /// Per topic and partition, the offset of the last event handed out that is not done
    /// yet. Keyed by topic first so that handing out an event (every event) allocates
    /// nothing once its topic is known.
    handed_out: HashMap<String, HashMap<i32, i64>>,
    /// Per partition, the last record passed over behind an event still handed out: done
    /// once that event is.
    held: HashMap<Partition, i64>,
}

impl Unsent {
    /// The event at `offset` is handed out to be handled.
    pub(super) fn hand_out(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.handed_out.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, offset);
            }
            None => {
                self.handed_out
                    .insert(topic.to_owned(), HashMap::from([(partition, offset)]));
            }
        }
    }

    /// The record at `offset` was passed over by the member itself.
    pub(super) fn pass_over(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        if self
            .handed_out
            .get(topic)
            .is_some_and(|partitions| partitions.contains_key(&partition))
        {
            let held = self.held.entry(key).or_insert(offset);
            *held = (*held).max(offset);
        } else {
            self.take(key, offset);
        }
    }

    /// The event at `offset`, and everything before it in its partition, is done.
    pub(super) fn done(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        let caught_up = match self.handed_out.get_mut(topic) {
            Some(partitions)
                if partitions
                    .get(&partition)
                    .is_some_and(|last| *last <= offset) =>
            {
                partitions.remove(&partition);
                true
            }
            _ => false,
        };
        if caught_up && let Some(held) = self.held.remove(&key) {
            self.take(key.clone(), held);
        }
        self.take(key, offset);
    }

    fn take(&mut self, key: Partition, offset: i64) {
        let last = self.offsets.entry(key).or_insert(offset);
        *last = (*last).max(offset);
        self.since.get_or_insert_with(Instant::now);
    }

    /// How long until the positions are due to be sent, at most `every` after the oldest was
    /// taken; `None` when there are none.
    pub(super) fn due_in(&self, every: Duration) -> Option<Duration> {
        self.since
            .map(|since| every.saturating_sub(since.elapsed()))
    }

    /// The positions to send: per partition, the offset to resume from.
    pub(super) fn to_send(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.offsets
            .iter()
            .map(|((topic, partition), offset)| (topic.as_str(), *partition, offset + 1))
    }

    /// The broker has them.
    pub(super) fn sent(&mut self) {
        self.offsets.clear();
        self.since = None;
    }

    /// They could not be sent: due again after another wait.
    pub(super) fn not_sent(&mut self) {
        self.since = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sendable(unsent: &Unsent) -> Vec<(String, i32, i64)> {
        let mut positions: Vec<_> = unsent
            .to_send()
            .map(|(topic, partition, offset)| (topic.to_owned(), partition, offset))
            .collect();
        positions.sort();
        positions
    }

    #[test]
    fn a_record_passed_over_behind_an_event_being_handled_waits_for_it() {
        let mut unsent = Unsent::default();
        unsent.hand_out("orders", 0, 10);
        unsent.pass_over("orders", 0, 11);
        assert!(
            sendable(&unsent).is_empty(),
            "sent now, a crash would lose the event at 10"
        );
        assert_eq!(unsent.due_in(Duration::from_secs(1)), None);
        unsent.done("orders", 0, 10);
        assert_eq!(sendable(&unsent), [("orders".to_owned(), 0, 12)]);
    }

    #[test]
    fn a_record_passed_over_with_nothing_handed_out_is_done_at_once() {
        let mut unsent = Unsent::default();
        unsent.hand_out("orders", 1, 10);
        unsent.pass_over("orders", 0, 4);
        assert_eq!(sendable(&unsent), [("orders".to_owned(), 0, 5)]);
    }

    #[test]
    fn an_event_done_before_the_last_handed_out_keeps_the_record_held() {
        let mut unsent = Unsent::default();
        unsent.hand_out("orders", 0, 10);
        unsent.hand_out("orders", 0, 12);
        unsent.pass_over("orders", 0, 13);
        unsent.done("orders", 0, 10);
        assert_eq!(sendable(&unsent), [("orders".to_owned(), 0, 11)]);
        unsent.done("orders", 0, 12);
        assert_eq!(sendable(&unsent), [("orders".to_owned(), 0, 14)]);
    }

    #[test]
    fn a_record_held_before_a_later_event_goes_with_that_event() {
        let mut unsent = Unsent::default();
        unsent.hand_out("orders", 0, 10);
        unsent.pass_over("orders", 0, 11);
        unsent.hand_out("orders", 0, 12);
        unsent.done("orders", 0, 12);
        assert_eq!(sendable(&unsent), [("orders".to_owned(), 0, 13)]);
        unsent.sent();
        assert!(sendable(&unsent).is_empty());
        assert_eq!(unsent.due_in(Duration::from_secs(1)), None);
    }
}
