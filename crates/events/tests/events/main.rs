//! The event machinery against real databases: outbox -> log (the in-database bus) ->
//! consumer, and outbox -> relay -> an outside bus.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use events::Envelope;
use events::bus::{EventBus, Positions};
use events::consumer::RetryPolicy;
use events::dlq::{DeadLetters, Status};
use events::outbox::{Handoff, Outbox};
use events::relay::{Relay, RelaySettings};
use events::retention::{InboxRetention, LogRetention, RetentionSettings};
use support::*;
use testkit::backend_tests;

backend_tests! {
    async fn a_rolled_back_event_is_never_published(storage: TestStorage) {
        let world = World::new(&storage).await;
        let mut tx = world.service.begin_as("test").await.expect("begin");
        let lost = event(1);
        world.outbox.enqueue(&mut tx, TOPIC, &lost).await.expect("enqueue");
        tx.rollback().await.expect("rollback");

        let mut tx = world.service.begin_as("test").await.expect("begin");
        let kept = event(2);
        world.outbox.enqueue(&mut tx, TOPIC, &kept).await.expect("enqueue");
        tx.commit().await.expect("commit");

        wait_for("the committed event in the log", || async { !world.logged_event_ids().await.is_empty() }).await;
        assert_eq!(world.logged_event_ids().await, vec![kept.id.to_string()]);
        wait_for("nothing left to sequence", || async {
            events::relay::backlog(&world.service).await.expect("backlog") == 0
        }).await;
    }

    async fn a_batch_is_one_transaction_and_each_event_sees_the_ones_before(storage: TestStorage) {
        let world = World::new(&storage).await;
        let published: Vec<Envelope> = (0..30).map(event).collect();
        world.publish(&published).await;
        wait_for("all in the log", || async { world.logged_event_ids().await.len() == 30 }).await;
        let before = world.service.write_transactions();
        let running = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("all handled", || async { world.effects().await.len() == 30 }).await;
        running.stop().await;
        // Each handler numbered its effect by counting the effects it could see: the
        // unique numbers 0..30 in order mean each saw those of the batch before it.
        let expected: Vec<String> = published.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(world.effects().await, expected);
        let transactions = world.service.write_transactions() - before;
        assert!(transactions <= 2, "30 events took {transactions} write transactions");
        assert!(world.stored_position().await.is_some(), "the position is stored with the effects");
    }

    async fn events_the_group_does_not_handle_cost_no_transaction(storage: TestStorage) {
        let world = World::new(&storage).await;
        let ignored: Vec<Envelope> = (0..40).map(ignored_event).collect();
        world.publish(&ignored).await;
        wait_for("all in the log", || async { world.logged_event_ids().await.len() == 40 }).await;
        let before = world.service.write_transactions();
        let handler = Recorder::new();
        let running = world.start(handler.clone(), RetryPolicy::default());
        // One handled event behind them: once it is done, the consumer is past them all.
        let last = event(99);
        world.publish(std::slice::from_ref(&last)).await;
        wait_for("the handled one", || async { world.effects().await.len() == 1 }).await;
        let transactions = world.service.write_transactions() - before;
        running.stop().await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1, "the handler saw only the event it handles");
        // The append of `last` (on PostgreSQL, also its numbering) and the handling of it;
        // none for the forty.
        assert!(transactions <= 3, "{transactions} write transactions");
    }

    async fn a_redelivered_event_has_one_effect(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        world.publish(&[event(7), event(8)]).await;
        let running = world.start(handler.clone(), RetryPolicy::default());
        wait_for("both events handled", || async { world.effects().await.len() == 2 }).await;
        running.stop().await;

        // The group starts over (a restored backup, an operator's reset): both come again.
        let mut tx = world.service.begin_as("rewind").await.unwrap();
        sqlx::query("UPDATE consumer_positions SET position = 0").execute(&mut **tx).await.unwrap();
        tx.commit().await.unwrap();
        let third = event(9);
        world.publish(std::slice::from_ref(&third)).await;
        let again = Recorder::new();
        let running = world.start(again.clone(), RetryPolicy::default());
        wait_for("the new event handled", || async { world.effects().await.len() == 3 }).await;
        running.stop().await;
        assert_eq!(again.calls.load(Ordering::SeqCst), 1, "the two redelivered events never reached the handler");
    }

    async fn two_instances_of_a_group_handle_each_event_once(storage: TestStorage) {
        let world = World::new(&storage).await;
        let published: Vec<Envelope> = (0..60).map(event).collect();
        world.publish(&published).await;
        let first = world.start(Recorder::new(), RetryPolicy::default());
        let second = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("every event handled", || async { world.effects().await.len() >= 60 }).await;
        first.stop().await;
        second.stop().await;
        let mut effects = world.effects().await;
        assert_eq!(effects.len(), 60);
        effects.sort();
        effects.dedup();
        assert_eq!(effects.len(), 60, "no event had two effects");
    }

    async fn a_transient_failure_is_retried_with_backoff(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::failing_transiently(2);
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        world.publish(&[event(1)]).await;
        let running = world.start(handler.clone(), policy);
        wait_for("the event handled", || async { world.effects().await.len() == 1 }).await;
        running.stop().await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 3);
        let gaps = handler.gaps();
        // Full jitter keeps each pause within [ceiling/2, ceiling]; the ceiling doubles.
        assert!(gaps[0] >= policy.ceiling(1) / 2, "first pause {:?}", gaps[0]);
        assert!(gaps[1] >= policy.ceiling(2) / 2, "second pause {:?}", gaps[1]);
        assert!(DeadLetters::new(world.service.clone()).list_open().await.expect("dlq").is_empty());
    }

    async fn an_unavailable_database_pauses_the_consumer_without_using_up_attempts(storage: TestStorage) {
        let world = World::new(&storage).await;
        // More failures than attempts: were they counted, the event would be dead-lettered.
        let handler = Recorder::failing_with_outage(6);
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        world.publish(&[event(1)]).await;
        let running = world.start(handler.clone(), policy);
        wait_for("the event handled", || async { world.effects().await.len() == 1 }).await;
        running.stop().await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 7);
        assert!(DeadLetters::new(world.service.clone()).list_open().await.expect("dlq").is_empty());
    }

    async fn a_failing_event_rolls_back_alone_and_the_events_before_it_commit(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let events: Vec<Envelope> = (0..10).map(event).collect();
        handler.fail_transiently_on(events[6].id);
        world.publish(&events).await;
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let running = world.start(handler.clone(), policy);
        wait_for("the other nine handled", || async { world.effects().await.len() == 9 }).await;
        running.stop().await;
        let effects = world.effects().await;
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(effects[..6], ids[..6], "the six before it committed in order");
        assert!(!effects.contains(&ids[6]));
        let dlq = DeadLetters::new(world.service.clone()).list_open().await.unwrap();
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].event_id, ids[6]);
        assert_eq!(dlq[0].attempts, 3);
    }

    async fn an_event_waiting_for_another_is_parked_and_does_not_hold_up_the_rest(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        // A reservation before its order: needs an event about the same subject.
        let early = Envelope::new("commercex/test", "commercex.test.happened.v1", "order-1", &serde_json::json!({"n": 1}));
        let order = Envelope::new("commercex/test", "commercex.test.happened.v1", "order-1", &serde_json::json!({"n": 2}));
        handler.wait_on_earlier(early.id, order.id);
        let behind: Vec<Envelope> = (10..15).map(event).collect();
        world.publish_on(OTHER_TOPIC, std::slice::from_ref(&early)).await;
        world.publish_on(OTHER_TOPIC, &behind).await;
        let running = world.start_on(&[TOPIC, OTHER_TOPIC], handler.clone(), RetryPolicy::default());
        wait_for("the events behind it handled", || async { world.effects().await.len() == 5 }).await;
        assert!(!world.effects().await.contains(&early.id.to_string()));

        // The order arrives on the other topic; the parked event follows it at once.
        world.publish(std::slice::from_ref(&order)).await;
        wait_for("the parked event handled", || async { world.effects().await.len() == 7 }).await;
        running.stop().await;
        let effects = world.effects().await;
        assert_eq!(effects[5..], [order.id.to_string(), early.id.to_string()], "right after the event it waited for");
        assert!(DeadLetters::new(world.service.clone()).list_open().await.unwrap().is_empty());
    }

    async fn an_event_whose_prerequisite_never_comes_is_dead_lettered(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let orphan = event(61);
        handler.wait_on_earlier(orphan.id, uuid::Uuid::now_v7());
        world.publish(&[orphan.clone(), event(62)]).await;
        let policy = RetryPolicy {
            prerequisite_wait: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        let running = world.start(handler.clone(), policy);
        let dlq = DeadLetters::new(world.service.clone());
        wait_for("the next event handled", || async { world.effects().await.len() == 1 }).await;
        wait_for("the orphan dead-lettered", || async { dlq.list_open().await.expect("dlq").len() == 1 }).await;
        running.stop().await;
        let letter = &dlq.list_open().await.expect("dlq")[0];
        assert_eq!(letter.event_id, orphan.id.to_string());
        assert!(letter.error.contains("for an earlier event"), "{}", letter.error);
    }

    async fn an_event_handled_late_stays_in_the_trace_it_came_with(storage: TestStorage) {
        with_trace_ids();
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        // Parked until the event it waits for arrives, then handled in that event's
        // transaction.
        let (awaited_trace, awaited) = traced_event(1);
        let (early_trace, early) = traced_event(2);
        handler.wait_on_earlier(early.id, awaited.id);
        // Parked until what it waits for is done elsewhere, then handled by the sweep.
        let (swept_trace, swept) = traced_event(3);
        let done_elsewhere = uuid::Uuid::now_v7();
        handler.wait_on_earlier(swept.id, done_elsewhere);
        // Dead-lettered, then replayed.
        let mut poison = poison_event();
        let (replayed_trace, _) = traced_event(4);
        poison.traceparent = Some(format!("00-{replayed_trace}-00000000000000aa-01"));
        world.publish(&[early.clone(), swept.clone(), poison.clone()]).await;
        let running = world.start(handler.clone(), RetryPolicy::default());
        let dlq = DeadLetters::new(world.service.clone());
        wait_for("the poison dead-lettered", || async { dlq.list_open().await.expect("dlq").len() == 1 }).await;

        world.publish(std::slice::from_ref(&awaited)).await;
        sqlx::query("INSERT INTO effects (seq, event_id) VALUES (1000, $1)")
            .bind(done_elsewhere.to_string())
            .execute(world.service.pool())
            .await
            .unwrap();
        handler.heal();
        dlq.request_replay(&dlq.list_open().await.unwrap()[0].id).await.unwrap();
        wait_for("all four handled", || async { world.effects().await.len() == 5 }).await;
        running.stop().await;
        assert_eq!(handler.trace_of(awaited.id), Some(awaited_trace));
        assert_eq!(handler.trace_of(early.id), Some(early_trace), "unparked by the event it waited for");
        assert_eq!(handler.trace_of(swept.id), Some(swept_trace), "unparked by the sweep");
        assert_eq!(handler.trace_of(poison.id), Some(replayed_trace), "replayed");
    }

    async fn a_poison_event_is_dead_lettered_and_can_be_replayed(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let poison = poison_event();
        let exhausting = event(50);
        handler.fail_transiently_on(exhausting.id);
        world.publish(&[poison.clone(), exhausting.clone(), event(2)]).await;
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        };
        let running = world.start(handler.clone(), policy);
        // The consumer moves on past both bad events and handles the good one.
        wait_for("the good event handled", || async { world.effects().await.len() == 1 }).await;
        let dlq = DeadLetters::new(world.service.clone());
        wait_for("two dead letters", || async { dlq.list_open().await.expect("dlq").len() == 2 }).await;
        let letters = dlq.list_open().await.expect("dlq");
        let by_event = |id: uuid::Uuid| letters.iter().find(|l| l.event_id == id.to_string()).expect("letter");
        let dead_poison = by_event(poison.id);
        assert_eq!(dead_poison.attempts, 1, "a permanent error is not retried");
        assert!(dead_poison.error.contains("poison"), "error kept: {}", dead_poison.error);
        assert_eq!(dead_poison.group, GROUP);
        assert_eq!(dead_poison.topic, TOPIC);
        let dead_exhausted = by_event(exhausting.id);
        assert_eq!(dead_exhausted.attempts, 3);
        assert!(dead_exhausted.error.contains("gave up after 3 attempts"));

        // The operator fixes the cause and replays.
        handler.heal();
        dlq.request_replay(&dead_poison.id).await.expect("replay");
        wait_for("the replayed event handled", || async { world.effects().await.len() == 2 }).await;
        wait_for("the letter marked replayed", || async {
            dlq.get(&dead_poison.id).await.expect("get").status == Status::Replayed
        }).await;
        // A replayed entry cannot be replayed twice; the other can be discarded.
        assert!(dlq.request_replay(&dead_poison.id).await.is_err());
        dlq.discard(&dead_exhausted.id).await.expect("discard");
        assert!(dlq.list_open().await.expect("dlq").is_empty());
        running.stop().await;
        assert!(world.effects().await.contains(&poison.id.to_string()));
    }

    async fn an_unreadable_row_is_dead_lettered_not_a_stall(storage: TestStorage) {
        let world = World::new(&storage).await;
        let mut tx = world.service.begin_as("corrupt").await.unwrap();
        world.outbox.enqueue(&mut tx, TOPIC, &event(1)).await.unwrap();
        sqlx::query("UPDATE outbox SET envelope = 'not json at all'").execute(&mut **tx).await.unwrap();
        tx.commit().await.unwrap();
        let good = event(2);
        world.publish(std::slice::from_ref(&good)).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("the good event handled", || async { world.effects().await == vec![good.id.to_string()] }).await;
        running.stop().await;
        let letters = DeadLetters::new(world.service.clone()).list_open().await.unwrap();
        assert_eq!(letters.len(), 1);
        assert!(letters[0].error.contains("not an event"), "{}", letters[0].error);
    }

    async fn consumption_resumes_after_a_restart_with_nothing_lost(storage: TestStorage) {
        let world = World::new(&storage).await;
        let first: Vec<Envelope> = (0..5).map(event).collect();
        world.publish(&first).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("the first five handled", || async { world.effects().await.len() == 5 }).await;
        running.stop().await;

        // Published while no consumer runs.
        let second: Vec<Envelope> = (5..12).map(event).collect();
        world.publish(&second).await;

        // A new process: new bus and consumer objects over the same database.
        let restarted = World::reopen(&storage).await;
        let handler = Recorder::new();
        let running = restarted.start(handler.clone(), RetryPolicy::default());
        wait_for("all twelve handled", || async { restarted.effects().await.len() == 12 }).await;
        running.stop().await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 7, "it resumed after the stored position");
        let mut effects = restarted.effects().await;
        effects.sort();
        effects.dedup();
        assert_eq!(effects.len(), 12, "each event had exactly one effect");
    }

    async fn the_log_is_in_commit_order_and_readers_wake_on_commit(storage: TestStorage) {
        let world = World::new(&storage).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        let mut expected = Vec::new();
        for n in 0..20 {
            let mut tx = world.service.begin_as("test").await.expect("begin");
            let e = event(n);
            expected.push(e.id.to_string());
            world.outbox.enqueue(&mut tx, TOPIC, &e).await.expect("enqueue");
            tx.commit().await.expect("commit");
        }
        wait_for("all handled", || async { world.effects().await.len() == 20 }).await;
        running.stop().await;
        assert_eq!(world.logged_event_ids().await, expected);
        assert_eq!(world.effects().await, expected, "handled in commit order");
    }

    async fn a_batch_cut_short_resumes_where_it_stopped(storage: TestStorage) {
        let world = World::new(&storage).await;
        let published: Vec<Envelope> = (0..150).map(event).collect();
        world.publish(&published).await;
        wait_for("all in the log", || async { world.logged_event_ids().await.len() == 150 }).await;
        let mut reader = world.bus.subscribe("g", &[TOPIC.into()], &Positions::new()).await.unwrap();
        let first = reader.poll(100, Duration::from_millis(10)).await.unwrap();
        let rest = reader.poll(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!((first.len(), rest.len()), (100, 50));
        // A group that stored the position of the 100th resumes after it.
        let mut resume = Positions::new();
        resume.insert((TOPIC.into(), 0), first[99].offset);
        let mut resumed = world.bus.subscribe("g", &[TOPIC.into()], &resume).await.unwrap();
        let again = resumed.poll(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(again.len(), 50);
        assert_eq!(again[0].envelope.id, published[100].id);
    }

    async fn the_relay_publishes_in_commit_order_and_removes_only_what_the_bus_took(storage: TestStorage) {
        let service = open_service(&storage).await;
        let outbox = Outbox::new(Handoff::Relayed);
        let bus = Arc::new(RecordingBus::default());
        let relay = Relay::new(service.clone(), outbox.clone(), bus.clone(), RelaySettings::default());
        let mut expected = Vec::new();
        for n in 0..5 {
            let mut tx = service.begin_as("test").await.unwrap();
            let e = event(n);
            expected.push(e.id);
            outbox.enqueue(&mut tx, TOPIC, &e).await.unwrap();
            tx.commit().await.unwrap();
        }
        bus.down.store(true, Ordering::SeqCst);
        assert!(relay.publish_batch().await.is_err(), "the bus refused");
        assert_eq!(outbox_rows(&service).await, 5, "nothing removed");
        assert_eq!(events::relay::backlog(&service).await.unwrap(), 5);
        bus.down.store(false, Ordering::SeqCst);
        assert_eq!(relay.publish_batch().await.unwrap(), 5);
        assert_eq!(outbox_rows(&service).await, 0, "the bus's log is the record now");
        let published: Vec<uuid::Uuid> = bus.published.lock().unwrap().iter().map(|o| o.envelope.id).collect();
        assert_eq!(published, expected);
        assert_eq!(relay.publish_batch().await.unwrap(), 0, "each event is published once");
    }

    async fn a_starting_relay_removes_rows_published_before_and_keeps_the_rest(storage: TestStorage) {
        let service = open_service(&storage).await;
        // Rows as a relay that marked instead of deleting left them, among waiting ones.
        let marked = Outbox::new(Handoff::InPlace);
        let outbox = Outbox::new(Handoff::Relayed);
        let mut waiting = Vec::new();
        for n in 0..450 {
            let mut tx = service.begin_as("test").await.unwrap();
            if n % 100 == 0 {
                let e = event(n);
                waiting.push(e.id);
                outbox.enqueue(&mut tx, TOPIC, &e).await.unwrap();
            } else {
                marked.enqueue(&mut tx, TOPIC, &event(n)).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let bus = Arc::new(RecordingBus::default());
        bus.down.store(true, Ordering::SeqCst);
        let relay = Relay::new(service.clone(), outbox.clone(), bus.clone(), RelaySettings::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(relay.run(cancel.clone()));
        wait_for("the marked rows removed", || async { outbox_rows(&service).await == 5 }).await;
        assert_eq!(events::relay::backlog(&service).await.unwrap(), 5, "the waiting rows stay");
        bus.down.store(false, Ordering::SeqCst);
        wait_for("the waiting rows published", || async { outbox_rows(&service).await == 0 }).await;
        cancel.cancel();
        running.await.unwrap();
        let published: Vec<uuid::Uuid> = bus.published.lock().unwrap().iter().map(|o| o.envelope.id).collect();
        assert_eq!(published, waiting, "only the waiting rows went to the bus");
    }

    async fn the_inbox_forgets_only_what_outlived_its_retention(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        world.publish(&[event(1), event(2)]).await;
        let running = world.start(handler.clone(), RetryPolicy::default());
        wait_for("both events handled", || async { world.effects().await.len() == 2 }).await;
        running.stop().await;
        // 2,500 rows handled 15 days ago (more than two batches), by this group and another.
        let now = platform::time::now();
        let old = platform::time::to_millis(now - chrono::Duration::days(15));
        for _ in 0..25 {
            let rows: Vec<String> = (0..100)
                .map(|i| format!("('{}', '{}', {old})", if i % 2 == 0 { GROUP } else { "another" }, uuid::Uuid::new_v4()))
                .collect();
            let sql = format!("INSERT INTO inbox (consumer_group, event_id, handled_at) VALUES {}", rows.join(", "));
            let mut tx = world.service.begin_as("old rows").await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        let inbox_rows = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM inbox").fetch_one(world.service.pool()).await.unwrap()
        };
        assert_eq!(inbox_rows().await, 2_502);

        let retention = InboxRetention::new(world.service.clone(), RetentionSettings::default());
        assert_eq!(retention.prune(now).await.unwrap(), 2_500, "every row past 14 days goes");
        assert_eq!(inbox_rows().await, 2, "the rows within the retention stay");
        assert_eq!(retention.prune(now).await.unwrap(), 0);

        // What the inbox still holds it still recognises: the group starts over, and the two
        // events it handled come again without reaching the handler.
        let mut tx = world.service.begin_as("rewind").await.unwrap();
        sqlx::query("UPDATE consumer_positions SET position = 0").execute(&mut **tx).await.unwrap();
        tx.commit().await.unwrap();
        world.publish(&[event(3)]).await;
        let again = Recorder::new();
        let running = world.start(again.clone(), RetryPolicy::default());
        wait_for("the new event handled", || async { world.effects().await.len() == 3 }).await;
        running.stop().await;
        assert_eq!(again.calls.load(Ordering::SeqCst), 1, "the redelivered events were duplicates");

        // Past their retention, they are forgotten too.
        let later = now + chrono::Duration::days(15);
        assert_eq!(retention.prune(later).await.unwrap(), 3);
        assert_eq!(inbox_rows().await, 0);
    }

    async fn the_log_keeps_what_a_group_has_not_read_and_lets_the_rest_go_after_its_retention(storage: TestStorage) {
        let world = World::new(&storage).await;
        let published: Vec<Envelope> = (1..=5).map(event).collect();
        world.publish(&published).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("all handled", || async { world.effects().await.len() == 5 }).await;
        running.stop().await;
        let column = match world.service.backend() {
            platform::db::Backend::Sqlite => "seq",
            platform::db::Backend::Postgres => "position",
        };
        let log = || async {
            let sql = format!("SELECT {column}, event_id FROM outbox WHERE topic = $1 AND {column} IS NOT NULL ORDER BY {column}");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(TOPIC).fetch_all(world.service.pool()).await.unwrap();
            rows.iter()
                .map(|row| (sqlx::Row::get::<i64, _>(row, 0), sqlx::Row::get::<String, _>(row, 1)))
                .collect::<Vec<_>>()
        };
        let logged = log().await;
        assert_eq!(logged.len(), 5);
        let retention = LogRetention::new(
            (*world.bus).clone(),
            RetentionSettings { keep: Duration::from_secs(7 * 24 * 60 * 60), every: Duration::from_secs(600) },
        );
        let now = chrono::Utc::now();
        assert_eq!(retention.prune(now).await.unwrap(), 0, "nothing is a week old");
        let mark: i64 = sqlx::query_scalar("SELECT position FROM log_readers WHERE consumer_group = $1 AND topic = $2")
            .bind(GROUP).bind(TOPIC).fetch_one(world.service.pool()).await.unwrap();
        assert_eq!(mark, logged[4].0, "the group marked how far it has read");

        // A group in another process has read only the first two, and says so.
        let later = now + chrono::Duration::days(8);
        sqlx::query("INSERT INTO log_readers (consumer_group, topic, position, updated_at) VALUES ('laggard', $1, $2, $3)")
            .bind(TOPIC)
            .bind(logged[1].0)
            .bind(platform::time::to_millis(later))
            .execute(world.service.pool())
            .await
            .unwrap();
        assert_eq!(retention.prune(later).await.unwrap(), 2, "what every group has read, a week on");
        assert_eq!(log().await, logged[2..].to_vec(), "what the laggard has not read stays");

        // The laggard marks nothing for a whole retention: it is taken to be gone. The newest
        // row stays: PostgreSQL's sequencer numbers on from it.
        let much_later = later + chrono::Duration::days(8);
        assert_eq!(retention.prune(much_later).await.unwrap(), 2);
        assert_eq!(log().await, logged[4..].to_vec());

        // The log goes on from where it was, and so does the group: an event numbered behind
        // its position would never reach it.
        world.publish(&[event(6)]).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        wait_for("the next event handled", || async { world.effects().await.len() == 6 }).await;
        running.stop().await;
    }
}
