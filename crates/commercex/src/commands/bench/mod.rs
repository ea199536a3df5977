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
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(options.customers)
        // Below the server's header read timeout, which closes idle connections.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let base = options.url.trim_end_matches('/').to_owned();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let admin = login(
        &client,
        &base,
        &options.admin_email,
        &options.admin_password,
    )
    .await
    .context("admin login")?;
    let stock = i64::try_from(options.customers * options.orders_per_customer * 3 + 10)?;
    let mut products = Vec::new();
    for n in 0..options.products {
        let body = json!({"sku": format!("BENCH-{run_id}-{n}"), "name": format!("Bench headphones {n}"),
            "description": "Wireless studio headphones for the benchmark", "price": {"amount": 1000 + n as i64, "currency": "EUR"},
            "category": "audio"});
        let product: Value = expect(
            client
                .post(format!("{base}/api/v1/products"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await?,
            StatusCode::CREATED,
        )
        .await?;
        let id = product["id"].as_str().context("product id")?.to_owned();
        wait_until_stockable(&client, &base, &admin, &id, stock).await?;
        products.push(id);
    }
    println!(
        "{} products stocked with {stock} units each; signing up {} customers",
        products.len(),
        options.customers
    );
    let mut tokens = Vec::new();
    for n in 0..options.customers {
        tokens.push(sign_up(&client, &base, &format!("bench-{run_id}-{n}")).await?);
    }
    let warm_up_token = sign_up(&client, &base, &format!("bench-{run_id}-warm-up")).await?;
    let (waited, refused) = warm_up(&client, &base, &warm_up_token, &products).await?;
    println!(
        "warm-up: an order for each product placed and settled in {:.1}s ({refused} refused \
         while the order service did not know the product yet)",
        waited.as_secs_f64()
    );
    let products = Arc::new(products);
    println!("{} customers signed in; measuring", options.customers);
    let spent_before = options.cost.read(&client).await?;
    let started = Instant::now();
    let runs = tokens.into_iter().enumerate().map(|(n, token)| {
        let (client, base, products) = (client.clone(), base.clone(), products.clone());
        let orders = options.orders_per_customer;
        tokio::spawn(async move { customer(&client, &base, &token, &products, n, orders).await })
    });
    let mut tally = Tally::default();
    for outcome in futures::future::join_all(runs).await {
        tally.absorb(outcome?);
    }
    let elapsed = started.elapsed();
    let cost = options
        .cost
        .read(&client)
        .await?
        .per_order(&spent_before, tally.confirmed.len());
    report(&options, &tally, elapsed, cost);
    Ok(())
}

async fn customer(
    client: &Client,
    base: &str,
    token: &str,
    products: &[String],
    n: usize,
    orders: usize,
) -> Tally {
    let mut tally = Tally::default();
    for k in 0..orders {
        let t = Instant::now();
        let browsed = client
            .get(format!("{base}/api/v1/products?limit=20&sort=price"))
            .send()
            .await;
        match check(browsed, StatusCode::OK).await {
            Ok(_) => tally.browse.push(t.elapsed()),
            Err(cause) => tally.error("browse", &cause),
        }
        let t = Instant::now();
        let searched = client
            .get(format!("{base}/api/v1/products?q=headphones&limit=20"))
            .send()
            .await;
        match check(searched, StatusCode::OK).await {
            Ok(_) => tally.search.push(t.elapsed()),
            Err(cause) => tally.error("search", &cause),
        }
        let product = &products[(n + k) % products.len()];
        let placed_at = Instant::now();
        let placed = place_order(client, base, token, product, &format!("bench-{n}-{k}")).await;
        let order = match check(placed, StatusCode::ACCEPTED).await {
            Ok(order) => order,
            Err(cause) => {
                tally.error("place order", &cause);
                continue;
            }
        };
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        match settle(client, base, token, &id).await {
            Ok(status) if status == "confirmed" => tally.confirmed.push(placed_at.elapsed()),
            Ok(_) => tally.cancelled += 1,
            Err(cause) => tally.error("order status", &cause),
        }
    }
    tally
}

async fn place_order(
    client: &Client,
    base: &str,
    token: &str,
    product: &str,
    idempotency_key: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = json!({"items": [{"product_id": product, "quantity": 1}], "payment_token": "tok_visa",
        "shipping_address": {"name": "Bench", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"}});
    client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", idempotency_key)
        .json(&body)
        .send()
        .await
}

/// One order per product, placed and settled before measuring; how long it took and how many
/// tries were refused. The order service prices orders from its own copy of the catalog, fed
/// by events, so a product just created is refused (422) until that copy has it: a freshly
/// started distributed runtime can take seconds to get there. Without this wait, a run could
/// measure nothing but refusals, and its first orders would wait for consumer groups to form.
async fn warm_up(
    client: &Client,
    base: &str,
    token: &str,
    products: &[String],
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut refused = 0;
    let deadline = started + Duration::from_secs(60);
    for (n, product) in products.iter().enumerate() {
        let order = loop {
            let placed = place_order(client, base, token, product, &format!("warm-up-{n}")).await;
            match check(placed, StatusCode::ACCEPTED).await {
                Ok(order) => break order,
                Err(cause) if cause.starts_with("422") && Instant::now() < deadline => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(cause) => bail!("warm-up order for product {product}: {cause}"),
            }
        };
        let id = order["id"].as_str().context("order id")?;
        settle(client, base, token, id)
            .await
            .map_err(|cause| anyhow::anyhow!("warm-up order {id}: {cause}"))?;
    }
    Ok((started.elapsed(), refused))
}

/// Waits for the order to leave `pending` (60 s at most) with the API's long poll
/// (`?wait=5s`: the answer comes when the order settles); its final status, or why it could
/// not be read. A platform without the long poll answers at once, and is asked again every
/// 10 ms.
async fn settle(client: &Client, base: &str, token: &str, id: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let asked = Instant::now();
        let read = client
            .get(format!("{base}/api/v1/orders/{id}?wait=5s"))
            .bearer_auth(token)
            .send()
            .await;
        let order = check(read, StatusCode::OK).await?;
        match order["status"].as_str() {
            Some("pending") if asked.elapsed() < Duration::from_secs(1) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some("pending") => {}
            Some(status) => return Ok(status.to_owned()),
            None => return Err(format!("no status in {order}")),
        }
    }
    Err("still pending after 60 s".to_owned())
}

async fn wait_until_stockable(
    client: &Client,
    base: &str,
    admin: &str,
    id: &str,
    units: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .post(format!("{base}/api/v1/inventory/{id}/adjustments"))
            .bearer_auth(admin)
            .json(&json!({"delta": units, "reason": "benchmark stock"}))
            .send()
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "inventory never learned of product {id}: {}",
                response.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers a customer named after `handle`; their access token.
async fn sign_up(client: &Client, base: &str, handle: &str) -> anyhow::Result<String> {
    let email = format!("{handle}@example.com");
    let body = json!({"email": email, "password": "benchmark password", "name": handle});
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&body)
        .send()
        .await?;
    expect(registered, StatusCode::CREATED).await?;
    login(client, base, &email, "benchmark password").await
}

async fn login(client: &Client, base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    let tokens = expect(response, StatusCode::OK).await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("access token")?
        .to_owned())
}

async fn expect(response: reqwest::Response, status: StatusCode) -> anyhow::Result<Value> {
    check(Ok(response), status)
        .await
        .map_err(|cause| anyhow::anyhow!("expected {status}, got {cause}"))
}

/// The JSON body of a response with the expected status; otherwise what came back instead
/// (the status and the problem's detail) or why nothing did.
async fn check(
    sent: reqwest::Result<reqwest::Response>,
    status: StatusCode,
) -> Result<Value, String> {
    let response = sent.map_err(|error| format!("no response ({error})"))?;
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if got != status {
        let detail = body["detail"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        return Err(format!("{got} {detail}"));
    }
    Ok(body)
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
