//! `commercex bench`: a load generator. N concurrent customers register, log in, browse,
//! search and check out against a running CommerceX; it reports orders per second and the
//! place -> confirmed latency percentiles, with error counts and what caused them, and what
//! each confirmed order cost the platform (`cost`).

mod cost;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use client::ApiClient;
pub use cost::CostProbe;

pub struct BenchOptions {
    pub url: String,
    pub admin_email: String,
    pub admin_password: String,
    pub customers: usize,
    pub orders_per_customer: usize,
    pub products: usize,
    pub cost: CostProbe,
}

#[derive(Default)]
struct Tally {
    confirmed: Vec<Duration>,
    cancelled: usize,
    /// Failed requests by cause (the step, then the status and problem detail or the
    /// transport error), so a run with errors says what went wrong.
    errors: BTreeMap<String, usize>,
    browse: Vec<Duration>,
    search: Vec<Duration>,
}

impl Tally {
    fn error(&mut self, step: &str, cause: &str) {
        *self.errors.entry(format!("{step}: {cause}")).or_default() += 1;
    }

    /// Adds another customer's results to these.
    fn absorb(&mut self, other: Tally) {
        self.confirmed.extend(other.confirmed);
        self.cancelled += other.cancelled;
        for (cause, count) in other.errors {
            *self.errors.entry(cause).or_default() += count;
        }
        self.browse.extend(other.browse);
        self.search.extend(other.search);
    }

    fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    let http = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(options.customers)
        // Below the server's header read timeout, which closes idle connections.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let api = ApiClient::with(http.clone(), &options.url);
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let admin = api
        .login(&options.admin_email, &options.admin_password)
        .await
        .context("admin login")?
        .access_token;
    let stock = i64::try_from(options.customers * options.orders_per_customer * 3 + 10)?;
    let mut products = Vec::new();
    for n in 0..options.products {
        let body = json!({"sku": format!("BENCH-{run_id}-{n}"), "name": format!("Bench headphones {n}"),
            "description": "Wireless studio headphones for the benchmark", "price": {"amount": 1000 + n as i64, "currency": "EUR"},
            "category": "audio"});
        let id = api.create_product(&admin, &body).await?;
        wait_until_stockable(&api, &admin, id, stock).await?;
        products.push(id);
    }
    println!(
        "{} products stocked with {stock} units each; signing up {} customers",
        products.len(),
        options.customers
    );
    let mut tokens = Vec::new();
    for n in 0..options.customers {
        tokens.push(sign_up(&api, &format!("bench-{run_id}-{n}")).await?);
    }
    let warm_up_token = sign_up(&api, &format!("bench-{run_id}-warm-up")).await?;
    let (waited, refused) = warm_up(&api, &warm_up_token, &products).await?;
    println!(
        "warm-up: an order for each product placed and settled in {:.1}s ({refused} refused \
         while the order service did not know the product yet)",
        waited.as_secs_f64()
    );
    let products = Arc::new(products);
    println!("{} customers signed in; measuring", options.customers);
    let spent_before = options.cost.read(&http).await?;
    let started = Instant::now();
    let runs = tokens.into_iter().enumerate().map(|(n, token)| {
        let (api, products) = (api.clone(), products.clone());
        let orders = options.orders_per_customer;
        tokio::spawn(async move { customer(&api, &token, &products, n, orders).await })
    });
    let mut tally = Tally::default();
    for outcome in futures::future::join_all(runs).await {
        tally.absorb(outcome?);
    }
    let elapsed = started.elapsed();
    let cost = options
        .cost
        .read(&http)
        .await?
        .per_order(&spent_before, tally.confirmed.len());
    report(&options, &tally, elapsed, cost);
    Ok(())
}

/// The longest the benchmark waits for an order to settle.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

async fn customer(
    api: &ApiClient,
    token: &str,
    products: &[Uuid],
    n: usize,
    orders: usize,
) -> Tally {
    let mut tally = Tally::default();
    for k in 0..orders {
        let t = Instant::now();
        match api.products("limit=20&sort=price").await {
            Ok(_) => tally.browse.push(t.elapsed()),
            Err(cause) => tally.error("browse", &cause.to_string()),
        }
        let t = Instant::now();
        match api.products("q=headphones&limit=20").await {
            Ok(_) => tally.search.push(t.elapsed()),
            Err(cause) => tally.error("search", &cause.to_string()),
        }
        let product = products[(n + k) % products.len()];
        let placed_at = Instant::now();
        let order = match api
            .place_order(token, &format!("bench-{n}-{k}"), &order_body(product))
            .await
        {
            Ok(order) => order,
            Err(cause) => {
                tally.error("place order", &cause.to_string());
                continue;
            }
        };
        match api.settled(token, order.id, SETTLE_WITHIN).await {
            Ok(order) if order.status == "confirmed" => tally.confirmed.push(placed_at.elapsed()),
            Ok(order) if order.is_pending() => {
                tally.error("order status", "still pending after 60 s")
            }
            Ok(_) => tally.cancelled += 1,
            Err(cause) => tally.error("order status", &cause.to_string()),
        }
    }
    tally
}

fn order_body(product: Uuid) -> Value {
    json!({"items": [{"product_id": product, "quantity": 1}], "payment_token": "tok_visa",
        "shipping_address": {"name": "Bench", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"}})
}

/// One order per product, placed and settled before measuring; how long it took and how many
/// tries were refused. The order service prices orders from its own copy of the catalog, fed
/// by events, so a product just created is refused (422) until that copy has it: a freshly
/// started distributed runtime can take seconds to get there. Without this wait, a run could
/// measure nothing but refusals, and its first orders would wait for consumer groups to form.
async fn warm_up(
    api: &ApiClient,
    token: &str,
    products: &[Uuid],
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut refused = 0;
    let deadline = started + Duration::from_secs(60);
    for (n, product) in products.iter().enumerate() {
        let order = loop {
            match api
                .place_order(token, &format!("warm-up-{n}"), &order_body(*product))
                .await
            {
                Ok(order) => break order,
                Err(cause)
                    if cause.status() == Some(StatusCode::UNPROCESSABLE_ENTITY)
                        && Instant::now() < deadline =>
                {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(cause) => bail!("warm-up order for product {product}: {cause}"),
            }
        };
        let settled = api.settled(token, order.id, SETTLE_WITHIN).await;
        match settled {
            Ok(order) if !order.is_pending() => {}
            Ok(order) => bail!("warm-up order {}: still pending after 60 s", order.id),
            Err(cause) => bail!("warm-up order {}: {cause}", order.id),
        }
    }
    Ok((started.elapsed(), refused))
}

/// Stocks the product as soon as inventory knows it (it learns of new products by event).
async fn wait_until_stockable(
    api: &ApiClient,
    admin: &str,
    id: Uuid,
    units: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.adjust_stock(admin, id, units, "benchmark stock").await {
            Ok(()) => return Ok(()),
            Err(cause) if Instant::now() > deadline => {
                bail!("inventory never learned of product {id}: {cause}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Registers a customer named after `handle`; their access token.
async fn sign_up(api: &ApiClient, handle: &str) -> anyhow::Result<String> {
    let email = format!("{handle}@example.com");
    Ok(api
        .sign_up(&email, "benchmark password", handle)
        .await?
        .access_token)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank].as_secs_f64() * 1000.0
}

fn report(options: &BenchOptions, tally: &Tally, elapsed: Duration, cost: cost::PerOrder) {
    let mut confirmed = tally.confirmed.clone();
    confirmed.sort();
    let mut browse = tally.browse.clone();
    browse.sort();
    let mut search = tally.search.clone();
    search.sort();
    let seconds = elapsed.as_secs_f64();
    println!(
        "customers {}  orders/customer {}  wall {:.1}s",
        options.customers, options.orders_per_customer, seconds
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!("| orders confirmed | {} |", confirmed.len());
    println!("| orders cancelled | {} |", tally.cancelled);
    println!("| errors | {} |", tally.error_count());
    println!(
        "| confirmed orders/s | {:.1} |",
        confirmed.len() as f64 / seconds
    );
    for (name, values) in [
        ("place -> confirmed", &confirmed),
        ("browse", &browse),
        ("search", &search),
    ] {
        println!(
            "| {name} p50 / p95 / p99 / max (ms) | {:.1} / {:.1} / {:.1} / {:.1} |",
            percentile(values, 50.0),
            percentile(values, 95.0),
            percentile(values, 99.0),
            percentile(values, 100.0)
        );
    }
    let figure = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "not measured".to_owned(), |v| format!("{v:.digits$}"))
    };
    println!(
        "| server CPU per confirmed order (ms) | {} |",
        figure(cost.cpu_ms, 2)
    );
    println!(
        "| write transactions per confirmed order | {} |",
        figure(cost.transactions, 1)
    );
    if !cost.cpu_ms_by_process.is_empty() {
        let by_process: Vec<String> = cost
            .cpu_ms_by_process
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.2}"))
            .collect();
        println!(
            "| CPU ms per confirmed order, by process | {} |",
            by_process.join(", ")
        );
    }
    report_errors(&tally.errors);
}

/// The most frequent causes on stderr, so a run with errors explains itself without
/// disturbing the table on stdout.
fn report_errors(errors: &BTreeMap<String, usize>) {
    const SHOWN: usize = 5;
    let mut causes: Vec<_> = errors.iter().collect();
    causes.sort_by(|a, b| b.1.cmp(a.1));
    for (cause, count) in causes.iter().take(SHOWN) {
        eprintln!("error x{count}: {cause}");
    }
    if causes.len() > SHOWN {
        eprintln!("... and {} other causes", causes.len() - SHOWN);
    }
}
