//! What the platform spent while the bench measured: the CPU time of its processes (with
//! their children: PostgreSQL's backends, say), read from /proc, and the write transactions
//! its services began, read from their `/metrics`. Unlike throughput, both are stable on a
//! noisy machine, so builds compare by them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use reqwest::Client;

/// Where to read the cost from.
pub struct CostProbe {
    /// Processes whose CPU time counts, each with every descendant.
    pub pids: Vec<i32>,
    /// `/metrics` URLs whose `commercex_db_transactions_total` counts.
    pub metrics: Vec<String>,
}

/// The cost so far; two readings make the cost of what happened between them.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    cpu: Option<Duration>,
    transactions: Option<f64>,
}

/// The cost per confirmed order, where it could be read.
#[derive(Debug, Clone, Copy)]
pub struct PerOrder {
    pub cpu_ms: Option<f64>,
    pub transactions: Option<f64>,
}

impl CostProbe {
    pub async fn read(&self, client: &Client) -> anyhow::Result<Reading> {
        let cpu = if self.pids.is_empty() {
            None
        } else {
            Some(cpu_of_trees(&self.pids)?)
        };
        // A platform that does not count its transactions (an older build) has none to sum.
        let mut transactions = None;
        for url in &self.metrics {
            if let Some(count) = transactions_at(client, url).await? {
                *transactions.get_or_insert(0.0) += count;
            }
        }
        Ok(Reading { cpu, transactions })
    }
}

impl Reading {
    pub fn per_order(&self, before: &Reading, orders: usize) -> PerOrder {
        let orders = orders.max(1) as f64;
        PerOrder {
            cpu_ms: self.cpu.zip(before.cpu).map(|(after, before)| {
                after.saturating_sub(before).as_secs_f64() * 1000.0 / orders
            }),
            transactions: self
                .transactions
                .zip(before.transactions)
                .map(|(after, before)| (after - before) / orders),
        }
    }
}

/// User and system CPU time of `roots` and all their descendants, living ones only (a child
/// that exited is in its parent's figures once reaped).
fn cpu_of_trees(roots: &[i32]) -> anyhow::Result<Duration> {
    let ticks = procfs::ticks_per_second() as f64;
    let mut parent = HashMap::new();
    let mut ticks_of = HashMap::new();
    for process in procfs::process::all_processes().context("reading /proc")? {
        // Processes come and go while /proc is read.
        let Ok(stat) = process.and_then(|p| p.stat()) else {
            continue;
        };
        parent.insert(stat.pid, stat.ppid);
        ticks_of.insert(stat.pid, stat.utime + stat.stime);
    }
    let roots: HashSet<i32> = roots.iter().copied().collect();
    let in_tree = |mut pid: i32| loop {
        if roots.contains(&pid) {
            return true;
        }
        match parent.get(&pid) {
            Some(&ppid) if ppid > 0 && ppid != pid => pid = ppid,
            _ => return false,
        }
    };
    let total: u64 = ticks_of
        .iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, ticks)| *ticks)
        .sum();
    Ok(Duration::from_secs_f64(total as f64 / ticks))
}

/// The sum of `commercex_db_transactions_total` over its series at `url`, if it has any.
async fn transactions_at(client: &Client, url: &str) -> anyhow::Result<Option<f64>> {
    let text = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("reading {url}"))?
        .text()
        .await?;
    Ok(sum_of(&text, "commercex_db_transactions_total"))
}

/// The sum of every series of `metric` in a Prometheus text exposition; `None` without any.
fn sum_of(exposition: &str, metric: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|sum, value| sum + value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_series_of_one_metric_and_no_other() {
        let text = "# TYPE commercex_db_transactions_total counter\n\
            commercex_db_transactions_total{service=\"x\",db_namespace=\"orders\"} 12\n\
            commercex_db_transactions_total{service=\"x\",db_namespace=\"payments\"} 30\n\
            commercex_db_transactions_total_other 1000\n";
        assert_eq!(sum_of(text, "commercex_db_transactions_total"), Some(42.0));
        assert_eq!(sum_of(text, "commercex_other_total"), None);
    }

    #[test]
    fn cpu_spent_by_this_process_shows_in_its_tree() {
        let me = [std::process::id() as i32];
        let before = cpu_of_trees(&me).unwrap();
        // Spin until the reading moves by 100 ms; a reading that never moves times out.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut spin = 0u64;
        while cpu_of_trees(&me).unwrap() - before < Duration::from_millis(100) {
            assert!(
                std::time::Instant::now() < deadline,
                "CPU time never showed"
            );
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
        }
    }
}
