//! The event machinery against real databases: outbox -> relay -> in-database bus -> consumer.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use events::Envelope;
use events::consumer::RetryPolicy;
use events::dlq::{DeadLetters, Status};
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
        world.outbox.commit(tx).await.expect("commit");

        assert_eq!(world.relay().publish_batch().await.expect("relay"), 1);
        assert_eq!(world.logged_event_ids().await, vec![kept.id.to_string()]);
        assert_eq!(events::relay::backlog(&world.service).await.expect("backlog"), 0);
    }

    async fn a_duplicate_delivery_has_one_effect(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let event = event(7);
        // The same event reaches the bus twice (a relay that crashed after publishing,
        // before marking the row), then a different one.
        world.publish(&[event.clone(), event.clone(), self::event(8)]).await;
        let running = world.start(handler.clone(), RetryPolicy::default());
        wait_for("both events handled", || async { world.effects().await.len() == 2 }).await;
        running.stop().await;
        let effects = world.effects().await;
        assert_eq!(effects.iter().filter(|id| **id == event.id.to_string()).count(), 1);
        assert_eq!(handler.calls.load(Ordering::SeqCst), 2, "the duplicate never reached the handler");
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

    async fn an_event_waiting_for_an_earlier_one_outlasts_the_attempt_limit(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let early = event(60);
        handler.wait_on_earlier(early.id);
        world.publish(std::slice::from_ref(&early)).await;
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            prerequisite_wait: Duration::from_secs(30),
        };
        let running = world.start(handler.clone(), policy);
        wait_for("more tries than max_attempts", || async { handler.calls.load(Ordering::SeqCst) > 4 }).await;
        handler.heal();
        wait_for("the event handled", || async { world.effects().await.len() == 1 }).await;
        running.stop().await;
        assert!(DeadLetters::new(world.service.clone()).list_open().await.expect("dlq").is_empty());
    }

    async fn an_event_whose_prerequisite_never_comes_is_dead_lettered(storage: TestStorage) {
        let world = World::new(&storage).await;
        let handler = Recorder::new();
        let orphan = event(61);
        handler.wait_on_earlier(orphan.id);
        world.publish(&[orphan.clone(), event(62)]).await;
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            prerequisite_wait: Duration::from_millis(300),
        };
        let running = world.start(handler.clone(), policy);
        let dlq = DeadLetters::new(world.service.clone());
        wait_for("the orphan dead-lettered", || async { dlq.list_open().await.expect("dlq").len() == 1 }).await;
        wait_for("the next event handled", || async { world.effects().await.len() == 1 }).await;
        running.stop().await;
        let letter = &dlq.list_open().await.expect("dlq")[0];
        assert_eq!(letter.event_id, orphan.id.to_string());
        assert!(letter.error.contains("for an earlier event"), "{}", letter.error);
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

        // A new process: new bus and consumer objects over the same databases.
        let restarted = World::reopen(&storage).await;
        let running = restarted.start(Recorder::new(), RetryPolicy::default());
        wait_for("all twelve handled", || async { restarted.effects().await.len() == 12 }).await;
        running.stop().await;
        let mut effects = restarted.effects().await;
        effects.sort();
        effects.dedup();
        assert_eq!(effects.len(), 12, "each event had exactly one effect");
    }

    async fn the_relay_publishes_in_commit_order_and_wakes_on_commit(storage: TestStorage) {
        let world = World::new(&storage).await;
        let running = world.start(Recorder::new(), RetryPolicy::default());
        let relay = world.spawn_relay();
        let mut expected = Vec::new();
        for n in 0..20 {
            let mut tx = world.service.begin_as("test").await.expect("begin");
            let e = event(n);
            expected.push(e.id.to_string());
            world.outbox.enqueue(&mut tx, TOPIC, &e).await.expect("enqueue");
            world.outbox.commit(tx).await.expect("commit");
        }
        wait_for("all relayed and handled", || async { world.effects().await.len() == 20 }).await;
        relay.stop().await;
        running.stop().await;
        assert_eq!(world.logged_event_ids().await, expected);
        assert_eq!(world.effects().await, expected, "handled in publish order");
    }

    async fn the_bus_keeps_log_order_across_topics_and_never_stalls(storage: TestStorage) {
        use events::bus::{EventBus, Outgoing};
        let world = World::new(&storage).await;
        let on = |topic: &str, n: i64| Outgoing { topic: topic.into(), envelope: event(n) };
        let mut first: Vec<Outgoing> = (0..150).map(|n| on("a", n)).collect();
        first.push(on("b", 1000));
        world.bus.publish(&first).await.unwrap();

        // A batch cut short by its size never lets b's later event overtake a's earlier ones.
        let mut both = world.bus.subscribe("g", &["a".into(), "b".into()]).await.unwrap();
        let batch = both.poll(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(batch.len(), 100);
        assert!(batch.iter().all(|d| d.topic == "a"));
        let rest = both.poll(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(rest.len(), 51);
        assert_eq!(rest.last().unwrap().topic, "b");
        both.commit(&rest[rest.len() - 2]).await.unwrap();

        // A group whose offsets differ widely per topic still reaches new events.
        let mut only_a = world.bus.subscribe("h", &["a".into()]).await.unwrap();
        let seen = only_a.poll(200, Duration::from_millis(10)).await.unwrap();
        only_a.commit(seen.last().unwrap()).await.unwrap();
        let mut widened = world.bus.subscribe("h", &["a".into(), "c".into()]).await.unwrap();
        world.bus.publish(&[on("a", 2000)]).await.unwrap();
        let fresh = widened.poll(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(fresh.len(), 1, "only the new event, found past 150 already-seen rows");
        assert_eq!(fresh[0].envelope.data["n"], 2000);
    }
}
