//! `commercex bench`: a load generator. N concurrent customers register, log in, browse,
//! search and check out against a running CommerceX; it reports orders per second and the
//! place -> confirmed latency percentiles, with error counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

pub struct BenchOptions {
    pub url: String,
    pub admin_email: String,
    pub admin_password: String,
    pub customers: usize,
    pub orders_per_customer: usize,
    pub products: usize,
}

#[derive(Default)]
struct Tally {
    confirmed: Vec<Duration>,
    cancelled: usize,
    errors: usize,
    browse: Vec<Duration>,
    search: Vec<Duration>,
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(options.customers)
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
        let email = format!("bench-{run_id}-{n}@example.com");
        let body =
            json!({"email": email, "password": "benchmark password", "name": format!("Bench {n}")});
        expect(
            client
                .post(format!("{base}/api/v1/auth/register"))
                .json(&body)
                .send()
                .await?,
            StatusCode::CREATED,
        )
        .await?;
        tokens.push(login(&client, &base, &email, "benchmark password").await?);
    }
    let products = Arc::new(products);
    println!("{} customers signed in; measuring", options.customers);
    let started = Instant::now();
    let runs = tokens.into_iter().enumerate().map(|(n, token)| {
        let (client, base, products) = (client.clone(), base.clone(), products.clone());
        let orders = options.orders_per_customer;
        tokio::spawn(async move { customer(&client, &base, &token, &products, n, orders).await })
    });
    let mut tally = Tally::default();
    for outcome in futures::future::join_all(runs).await {
        let one = outcome?;
        tally.confirmed.extend(one.confirmed);
        tally.cancelled += one.cancelled;
        tally.errors += one.errors;
        tally.browse.extend(one.browse);
        tally.search.extend(one.search);
    }
    report(&options, &tally, started.elapsed());
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
        match client
            .get(format!("{base}/api/v1/products?limit=20&sort=price"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => tally.browse.push(t.elapsed()),
            _ => tally.errors += 1,
        }
        let t = Instant::now();
        match client
            .get(format!("{base}/api/v1/products?q=headphones&limit=20"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => tally.search.push(t.elapsed()),
            _ => tally.errors += 1,
        }
        let product = &products[(n + k) % products.len()];
        let body = json!({"items": [{"product_id": product, "quantity": 1}], "payment_token": "tok_visa",
            "shipping_address": {"name": "Bench", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"}});
        let placed_at = Instant::now();
        let placed = client
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(token)
            .header("idempotency-key", format!("bench-{n}-{k}"))
            .json(&body)
            .send()
            .await;
        let Ok(placed) = placed else {
            tally.errors += 1;
            continue;
        };
        let Ok(order) = expect(placed, StatusCode::ACCEPTED).await else {
            tally.errors += 1;
            continue;
        };
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        match settle(client, base, token, &id).await {
            Some(status) if status == "confirmed" => tally.confirmed.push(placed_at.elapsed()),
            Some(_) => tally.cancelled += 1,
            None => tally.errors += 1,
        }
    }
    tally
}

/// Polls the order until it leaves `pending` (60 s at most).
async fn settle(client: &Client, base: &str, token: &str, id: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let order: Value = client
            .get(format!("{base}/api/v1/orders/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        match order["status"].as_str() {
            Some("pending") => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other.map(str::to_owned),
        }
    }
    None
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
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if got != status {
        bail!("expected {status}, got {got}: {body}");
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

fn report(options: &BenchOptions, tally: &Tally, elapsed: Duration) {
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
    println!("| errors | {} |", tally.errors);
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
            "| {name} p50 / p95 / p99 (ms) | {:.1} / {:.1} / {:.1} |",
            percentile(values, 50.0),
            percentile(values, 95.0),
            percentile(values, 99.0)
        );
    }
}
