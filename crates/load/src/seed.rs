//! `commercex seed`: a realistic demo catalog with stock, created through the same use cases
//! the API calls, so every product and stock change also produces its events. Deterministic
//! (same `--rng-seed`, same catalog) and idempotent (SKUs `SEED-<n>` that exist are skipped).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use catalog::app::CatalogError;
use catalog::domain::{Attributes, Category, Description, NewProduct, ProductName, Sku};
use inventory::domain::Adjustment;
use platform::money::{Currency, Money};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use events::service_db::StoreSettings;
use platform::db::Storage;

/// (category, nouns, adjectives) the names are made of.
const RANGE: &[(&str, &[&str], &[&str])] = &[
    (
        "audio",
        &[
            "headphones",
            "earbuds",
            "speaker",
            "soundbar",
            "turntable",
            "microphone",
        ],
        &[
            "wireless",
            "studio",
            "portable",
            "noise-cancelling",
            "compact",
        ],
    ),
    (
        "computing",
        &[
            "laptop",
            "monitor",
            "keyboard",
            "mouse",
            "webcam",
            "docking station",
        ],
        &["ultralight", "ergonomic", "mechanical", "curved", "4K"],
    ),
    (
        "home",
        &[
            "desk lamp",
            "kettle",
            "blender",
            "toaster",
            "air purifier",
            "coffee grinder",
        ],
        &["stainless", "smart", "quiet", "retro", "cordless"],
    ),
    (
        "outdoor",
        &[
            "tent",
            "backpack",
            "rain jacket",
            "hiking boots",
            "lantern",
            "sleeping bag",
        ],
        &[
            "waterproof",
            "lightweight",
            "insulated",
            "rugged",
            "packable",
        ],
    ),
    (
        "kitchen",
        &[
            "chef knife",
            "frying pan",
            "dutch oven",
            "cutting board",
            "stand mixer",
        ],
        &[
            "cast-iron",
            "non-stick",
            "carbon-steel",
            "walnut",
            "professional",
        ],
    ),
    (
        "fitness",
        &[
            "yoga mat",
            "kettlebell",
            "jump rope",
            "foam roller",
            "resistance bands",
        ],
        &["adjustable", "grippy", "heavy-duty", "travel", "eco"],
    ),
];

const BRANDS: &[&str] = &[
    "Northwind",
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
];

pub async fn run(
    storage: &Storage,
    store: StoreSettings,
    products: u32,
    rng_seed: u64,
) -> anyhow::Result<()> {
    // Seeding only writes: no read cache to keep.
    let catalog =
        catalog::CatalogService::open(storage, store, Arc::new(catalog::cache::NoCache), None)
            .await?;
    let inventory = inventory::InventoryService::open(storage, store).await?;
    let eur = Currency::parse("EUR").map_err(anyhow::Error::msg)?;
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let started = Instant::now();
    let (mut created, mut skipped) = (0u32, 0u32);
    for n in 0..products {
        let (category, nouns, adjectives) = RANGE[rng.random_range(0..RANGE.len())];
        let noun = nouns[rng.random_range(0..nouns.len())];
        let adjective = adjectives[rng.random_range(0..adjectives.len())];
        let brand = BRANDS[rng.random_range(0..BRANDS.len())];
        let name = format!("{brand} {adjective} {noun}");
        let description = format!(
            "The {brand} {noun}: {adjective}, built to last and backed by a two-year warranty. \
             A favourite in our {category} range."
        );
        let price = rng.random_range(499..=149_999);
        let units = if rng.random_bool(0.1) {
            0
        } else {
            rng.random_range(1..=120)
        };
        let attributes = serde_json::json!({"brand": brand, "warranty_years": 2});
        let new = NewProduct {
            sku: Sku::parse(&format!("SEED-{n}")).map_err(anyhow::Error::msg)?,
            name: ProductName::parse(&name).map_err(anyhow::Error::msg)?,
            description: Description::parse(&description).map_err(anyhow::Error::msg)?,
            price: Money::price(price, eur).map_err(anyhow::Error::msg)?,
            category: Category::parse(category).map_err(anyhow::Error::msg)?,
            attributes: Attributes::parse(attributes.as_object().cloned().unwrap_or_default())
                .map_err(anyhow::Error::msg)?,
        };
        let product = match catalog.catalog().create(new).await {
            Ok(product) => product,
            Err(CatalogError::DuplicateSku) => {
                skipped += 1;
                continue;
            }
            Err(error) => return Err(error).context("creating a product"),
        };
        // Inventory would create the record when it consumes product.created; doing it here
        // lets the stock go in now. Both are idempotent.
        let stock = inventory.inventory();
        stock.track(product.id).await.context("creating stock")?;
        if units > 0 {
            let adjustment =
                Adjustment::parse(units, "demo stock").map_err(|(_, e)| anyhow::anyhow!(e))?;
            stock
                .adjust(product.id, &adjustment, "commercex seed")
                .await
                .context("stocking")?;
        }
        created += 1;
    }
    println!(
        "seeded {created} products ({skipped} already there) in {:.1}s; \
         availability reaches listings as the platform processes their events",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
