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
#[derive(Debug, Clone)]
pub struct Reading {
    /// Per process given, in their order: its tree's CPU time, and what it is.
    cpu: Option<Vec<(String, Duration)>>,
    transactions: Option<f64>,
}

/// The cost per confirmed order, where it could be read.
#[derive(Debug, Clone)]
pub struct PerOrder {
    pub cpu_ms: Option<f64>,
    /// The same, per process given (with its descendants), when there are several: which
    /// of a distributed runtime's processes, PostgreSQL and the broker included, spends it.
    pub cpu_ms_by_process: Vec<(String, f64)>,
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
        let by_process: Vec<(String, f64)> = match (&self.cpu, &before.cpu) {
            (Some(after), Some(before)) => after
                .iter()
                .zip(before)
                .map(|((name, after), (_, before))| {
                    let spent = after.saturating_sub(*before).as_secs_f64();
                    (name.clone(), spent * 1000.0 / orders)
                })
                .collect(),
            _ => Vec::new(),
        };
        PerOrder {
            cpu_ms: (!by_process.is_empty()).then(|| by_process.iter().map(|(_, ms)| ms).sum()),
            cpu_ms_by_process: if by_process.len() > 1 {
                by_process
            } else {
                Vec::new()
            },
            transactions: self
                .transactions
                .zip(before.transactions)
                .map(|(after, before)| (after - before) / orders),
        }
    }
}

/// User and system CPU time of each of `roots` with all its descendants (living ones only: a
/// child that exited is in its parent's figures once reaped), with what the root is.
fn cpu_of_trees(roots: &[i32]) -> anyhow::Result<Vec<(String, Duration)>> {
    let ticks = procfs::ticks_per_second() as f64;
    let mut parent = HashMap::new();
    let mut ticks_of = HashMap::new();
    let mut names = HashMap::new();
    for process in procfs::process::all_processes().context("reading /proc")? {
        // Processes come and go while /proc is read.
        let Ok(process) = process else { continue };
        let Ok(stat) = process.stat() else { continue };
        parent.insert(stat.pid, stat.ppid);
        ticks_of.insert(stat.pid, stat.utime + stat.stime);
        if roots.contains(&stat.pid) {
            let cmdline = process.cmdline().unwrap_or_default();
            names.insert(stat.pid, name_of(&cmdline, &stat.comm));
        }
    }
    let roots_set: HashSet<i32> = roots.iter().copied().collect();
    // The root a process descends from (itself, for a root).
    let root_of = |mut pid: i32| loop {
        if roots_set.contains(&pid) {
            return Some(pid);
        }
        match parent.get(&pid) {
            Some(&ppid) if ppid > 0 && ppid != pid => pid = ppid,
            _ => return None,
        }
    };
    let mut spent: HashMap<i32, u64> = HashMap::new();
    for (&pid, &used) in &ticks_of {
        if let Some(root) = root_of(pid) {
            *spent.entry(root).or_default() += used;
        }
    }
    Ok(roots
        .iter()
        .map(|root| {
            let name = names.remove(root).unwrap_or_else(|| format!("pid {root}"));
            let used = spent.get(root).copied().unwrap_or(0);
            (name, Duration::from_secs_f64(used as f64 / ticks))
        })
        .collect())
}

/// What a process is, from its command line: the program's name and the words that follow it
/// up to the first option (`commercex serve orders`, `postgres`, `tansu broker`). A server
/// that rewrote its title into one word list (`redis-server 127.0.0.1:6379`) is its first word.
fn name_of(cmdline: &[String], comm: &str) -> String {
    let Some((program, args)) = cmdline.split_first() else {
        return comm.to_owned();
    };
    let program = program.split_whitespace().next().unwrap_or(program);
    let program = program.rsplit('/').next().unwrap_or(program);
    std::iter::once(program)
        .chain(
            args.iter()
                .map(String::as_str)
                // A rewritten title leaves the rest of the old one as empty words.
                .filter(|arg| !arg.is_empty())
                .take_while(|arg| !arg.starts_with('-')),
        )
        .collect::<Vec<_>>()
        .join(" ")
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
    fn a_process_is_named_by_its_program_and_the_words_before_its_options() {
        let line = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            name_of(
                &line(&["/usr/bin/commercex", "serve", "orders", "--listen", "x"]),
                "c"
            ),
            "commercex serve orders"
        );
        assert_eq!(
            name_of(
                &line(&["/usr/lib/postgresql/15/bin/postgres", "-D", "/d"]),
                "p"
            ),
            "postgres"
        );
        assert_eq!(
            name_of(&line(&["redis-server 127.0.0.1:6379", "", ""]), "r"),
            "redis-server"
        );
        assert_eq!(name_of(&[], "kthread"), "kthread");
    }

    #[test]
    fn cpu_spent_by_this_process_shows_in_its_tree() {
        let me = [std::process::id() as i32];
        let mine = || cpu_of_trees(&me).unwrap()[0].1;
        let before = mine();
        // Spin until the reading moves by 100 ms; a reading that never moves times out.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut spin = 0u64;
        while mine() - before < Duration::from_millis(100) {
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
