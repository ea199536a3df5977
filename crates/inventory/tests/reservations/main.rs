//! Reservations against real databases: all-or-nothing, idempotent, and never overselling
//! under concurrency.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

use std::sync::Arc;

use chrono::{Duration, Utc};
use inventory::InventoryService;
use inventory::app::{Inventory, InventoryError, ReserveOutcome};
use inventory::domain::{Adjustment, Quantity, ReservationLine, ReservationRequest};
use testkit::{TestStorage, backend_tests};
use uuid::Uuid;

async fn inventory(storage: &TestStorage) -> Arc<Inventory> {
    let service = InventoryService::open(&storage.storage, Default::default())
        .await
        .unwrap();
    service.inventory().clone()
}

async fn stocked(inventory: &Inventory, units: i64) -> Uuid {
    let product = Uuid::now_v7();
    inventory.track(product).await.unwrap();
    inventory
        .adjust(
            product,
            &Adjustment::parse(units, "initial count").unwrap(),
            "test",
        )
        .await
        .unwrap();
    product
}

fn order(lines: &[(Uuid, i64)], expires_in: Duration) -> ReservationRequest {
    let lines: Vec<ReservationLine> = lines
        .iter()
        .map(|(product_id, quantity)| ReservationLine {
            product_id: *product_id,
            quantity: Quantity::parse(*quantity).unwrap(),
        })
        .collect();
    ReservationRequest::new(Uuid::now_v7(), &lines, Utc::now() + expires_in).unwrap()
}

backend_tests! {
    async fn a_reservation_holds_every_line_or_none(storage: TestStorage) {
        let inventory = inventory(&storage).await;
        let plenty = stocked(&inventory, 10).await;
        let scarce = stocked(&inventory, 1).await;
        let greedy = order(&[(plenty, 3), (scarce, 2)], Duration::minutes(15));
        assert_eq!(inventory.reserve(&greedy).await.unwrap(), ReserveOutcome::Rejected { short: vec![scarce] });
        assert_eq!(inventory.levels(plenty).await.unwrap().reserved, 0, "nothing held for a rejected order");

        let fitting = order(&[(plenty, 3), (scarce, 1)], Duration::minutes(15));
        assert_eq!(inventory.reserve(&fitting).await.unwrap(), ReserveOutcome::Reserved);
        assert_eq!(inventory.reserve(&fitting).await.unwrap(), ReserveOutcome::Reserved, "asking twice is harmless");
        let levels = inventory.levels(plenty).await.unwrap();
        assert_eq!((levels.on_hand, levels.reserved, levels.available()), (10, 3, 7));

        let unknown = order(&[(Uuid::now_v7(), 1)], Duration::minutes(15));
        assert!(matches!(inventory.reserve(&unknown).await.unwrap(), ReserveOutcome::Rejected { .. }));
    }

    async fn commit_takes_units_off_the_shelf_and_release_frees_them(storage: TestStorage) {
        let inventory = inventory(&storage).await;
        let product = stocked(&inventory, 10).await;
        let kept = order(&[(product, 4)], Duration::minutes(15));
        let dropped = order(&[(product, 3)], Duration::minutes(15));
        inventory.reserve(&kept).await.unwrap();
        inventory.reserve(&dropped).await.unwrap();
        assert!(inventory.commit(kept.order_id).await.unwrap());
        assert!(!inventory.commit(kept.order_id).await.unwrap(), "committing twice does nothing");
        assert!(inventory.release(dropped.order_id).await.unwrap());
        assert!(!inventory.release(dropped.order_id).await.unwrap());
        let levels = inventory.levels(product).await.unwrap();
        assert_eq!((levels.on_hand, levels.reserved), (6, 0));
        // A released order does not get its units back by asking again.
        assert!(matches!(inventory.reserve(&dropped).await.unwrap(), ReserveOutcome::Rejected { .. }));
        let kinds: Vec<String> = inventory.ledger(product, 10, None).await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["released", "committed", "reservation", "reservation", "adjustment"]);
    }

    async fn expired_reservations_are_released(storage: TestStorage) {
        let inventory = inventory(&storage).await;
        let product = stocked(&inventory, 5).await;
        let late = order(&[(product, 2)], Duration::milliseconds(-1));
        let current = order(&[(product, 1)], Duration::minutes(15));
        inventory.reserve(&late).await.unwrap();
        inventory.reserve(&current).await.unwrap();
        assert_eq!(inventory.expire_due(Utc::now()).await.unwrap(), vec![late.order_id]);
        assert_eq!(inventory.levels(product).await.unwrap().reserved, 1);
        assert!(!inventory.commit(late.order_id).await.unwrap(), "an expired reservation cannot be committed");
    }

    async fn on_hand_never_drops_below_what_is_reserved(storage: TestStorage) {
        let inventory = inventory(&storage).await;
        let product = stocked(&inventory, 5).await;
        inventory.reserve(&order(&[(product, 4)], Duration::minutes(15))).await.unwrap();
        let error = inventory.adjust(product, &Adjustment::parse(-2, "breakage").unwrap(), "test").await.unwrap_err();
        assert!(matches!(error, InventoryError::BelowReserved { reserved: 4 }));
        inventory.adjust(product, &Adjustment::parse(-1, "breakage").unwrap(), "test").await.unwrap();
        let levels = inventory.levels(product).await.unwrap();
        assert_eq!((levels.on_hand, levels.reserved), (4, 4));
    }

    async fn concurrent_reservations_never_oversell(storage: TestStorage) {
        let inventory = inventory(&storage).await;
        let hot = stocked(&inventory, 5).await;
        let other = stocked(&inventory, 3).await;
        // Forty orders race for five units; some also want a second, scarcer product.
        let attempts = (0..40).map(|n| {
            let inventory = inventory.clone();
            let lines = if n % 3 == 0 { vec![(hot, 1), (other, 1)] } else { vec![(hot, 1)] };
            tokio::spawn(async move { inventory.reserve(&order(&lines, Duration::minutes(15))).await.unwrap() })
        });
        let outcomes = futures::future::join_all(attempts).await;
        let reserved = outcomes.iter().filter(|o| matches!(o.as_ref().unwrap(), ReserveOutcome::Reserved)).count();
        let hot_levels = inventory.levels(hot).await.unwrap();
        let other_levels = inventory.levels(other).await.unwrap();
        assert!(hot_levels.reserved <= hot_levels.on_hand && other_levels.reserved <= other_levels.on_hand);
        assert_eq!(hot_levels.reserved, 5, "every unit was sold, none twice");
        assert_eq!(reserved, 5);
        assert_eq!(hot_levels.on_hand, 5);
    }
}
