//! The platform as production runs it: every service its own `commercex serve <service>`
//! process on loopback ports, on one PostgreSQL database, Kafka and Redis, behind the gateway
//! in proxy mode. Each deployment gets its own topic, consumer group and Redis key prefix, so
//! tests share a broker and a Redis without seeing each other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use testkit::TestStorage;
use tokio::process::Child;

use crate::helpers::{announced_address, commercex_command};

/// How many of what to run.
#[derive(Debug, Clone)]
pub struct Layout {
    pub inventory_instances: usize,
    pub gateways: usize,
    /// Environment for every process, over the defaults.
    pub env: Vec<(String, String)>,
    /// Environment for the gateways only.
    pub gateway_env: Vec<(String, String)>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            inventory_instances: 1,
            gateways: 1,
            env: Vec::new(),
            gateway_env: Vec::new(),
        }
    }
}

pub struct Process {
    pub name: String,
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    /// How it was started, to start it again.
    command: Vec<String>,
    env: Vec<(String, String)>,
}

pub struct Deployment {
    pub processes: Vec<Process>,
    pub kafka_prefix: String,
    pub kafka_brokers: String,
}

impl Deployment {
    pub async fn start(
        storage: &TestStorage,
        data_dir: &Path,
        admin: (&str, &Path),
        extra: &[&str],
        layout: &Layout,
    ) -> Self {
        let distributed = storage.distributed.clone().expect("a distributed storage");
        let platform::db::Storage::Postgres { url } = &storage.storage else {
            panic!("distributed deployments run on PostgreSQL");
        };
        let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut env: Vec<(String, String)> = vec![
            (
                "COMMERCEX_DATABASE_URL".into(),
                url.expose_secret().to_owned(),
            ),
            ("COMMERCEX_DATA_DIR".into(), data_dir.display().to_string()),
            ("COMMERCEX_BUS".into(), "kafka".into()),
            (
                "COMMERCEX_KAFKA_BROKERS".into(),
                distributed.kafka_brokers.clone(),
            ),
            ("COMMERCEX_KAFKA_TOPIC_PREFIX".into(), prefix.clone()),
            ("COMMERCEX_KAFKA_PARTITIONS".into(), "3".into()),
            ("COMMERCEX_REDIS_URL".into(), distributed.redis_url.clone()),
            ("COMMERCEX_REDIS_KEY_PREFIX".into(), prefix.clone()),
            ("RUST_LOG".into(), "info,events::consumer=debug".into()),
            ("COMMERCEX_LOG_FORMAT".into(), "json".into()),
            ("RUST_BACKTRACE".into(), "0".into()),
        ];
        env.extend(tansu_workaround());
        env.extend(layout.env.iter().cloned());
        let mut deployment = Self {
            processes: Vec::new(),
            kafka_prefix: prefix,
            kafka_brokers: distributed.kafka_brokers,
        };
        let mut users_env = env.clone();
        users_env.push(("COMMERCEX_ADMIN_EMAIL".into(), admin.0.into()));
        users_env.push((
            "COMMERCEX_ADMIN_PASSWORD_FILE".into(),
            admin.1.display().to_string(),
        ));
        let users = launch("users", &["serve", "users"], extra, &users_env, data_dir).await;
        env.push(("COMMERCEX_USERS_URL".into(), users.url()));
        deployment.processes.push(users);

        let mut names = vec!["catalog"];
        names.extend(std::iter::repeat_n("inventory", layout.inventory_instances));
        names.extend(["orders", "payments", "webhooks"]);
        let started = futures::future::join_all(names.iter().enumerate().map(|(i, service)| {
            let env = env.clone();
            async move {
                let name = format!("{service}-{i}");
                launch(&name, &["serve", service], extra, &env, data_dir).await
            }
        }))
        .await;
        for service in ["catalog", "inventory", "orders", "payments", "webhooks"] {
            let urls: Vec<String> = started
                .iter()
                .filter(|p| p.name.starts_with(service))
                .map(Process::url)
                .collect();
            env.push((
                format!("COMMERCEX_{}_URL", service.to_uppercase()),
                urls.join(","),
            ));
        }
        deployment.processes.extend(started);
        let mut web_env = env.clone();
        env.extend(layout.gateway_env.iter().cloned());
        for i in 0..layout.gateways {
            let gateway = launch(
                &format!("gateway-{i}"),
                &["serve", "gateway"],
                extra,
                &env,
                data_dir,
            )
            .await;
            deployment.processes.push(gateway);
        }
        web_env.push((
            "COMMERCEX_WEB_API_URL".into(),
            format!("http://{}", deployment.gateway()),
        ));
        let web = launch("web", &["serve", "web"], extra, &web_env, data_dir).await;
        deployment.processes.push(web);
        deployment
    }

    /// The first gateway's address.
    pub fn gateway(&self) -> std::net::SocketAddr {
        self.named("gateway")[0]
            .addr
            .parse()
            .expect("gateway address")
    }

    /// The processes of one service: `service` itself, or its numbered instances
    /// (`inventory-1`); `web` is not `webhooks-5`.
    pub fn named(&self, service: &str) -> Vec<&Process> {
        self.processes
            .iter()
            .filter(|p| {
                p.name == service
                    || p.name
                        .strip_prefix(service)
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .collect()
    }

    /// Kills `name` with SIGKILL (no draining, no goodbye) and starts it again on its address.
    pub async fn kill_and_restart(&mut self, name: &str) {
        self.restart(name, "-KILL").await;
    }

    /// Stops process `name` with `signal` (`-KILL`: it dies at once; `-TERM`: it drains and
    /// exits cleanly, as in a rolling update) and starts it again in its place.
    pub async fn restart(&mut self, name: &str, signal: &str) {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let status = crate::cli::signal_and_wait(&mut process.child, signal).await;
        assert_eq!(
            status.success(),
            signal != "-KILL",
            "{name} after {signal}: {status:?}"
        );
        let dir = process.log.parent().expect("log directory").to_owned();
        let command: Vec<&str> = process.command.iter().map(String::as_str).collect();
        let restarted = start_process(
            &format!("{name}-again"),
            &command,
            &process.addr,
            &process.env,
            &dir,
        )
        .await;
        *process = Process {
            name: name.to_owned(),
            ..restarted
        };
    }

    /// SIGTERM to every process, the gateways first; each must drain and exit cleanly.
    pub async fn stop(&mut self) {
        self.processes
            .sort_by_key(|p| !p.name.starts_with("gateway"));
        for process in &mut self.processes {
            let status = crate::cli::signal_and_wait(&mut process.child, "-TERM").await;
            assert!(
                status.success(),
                "{} exited with {status}; log: {}",
                process.name,
                tail(&process.log)
            );
        }
    }
}

/// tansu 0.6 loses the rest of a multi-record batch when a consumer resumes from a committed
/// offset inside it, so against tansu the producer sends one record per batch. Production
/// keeps librdkafka's batching. Set `KAFKA_BROKER_IS_TANSU=false` for a real Kafka.
pub fn tansu_workaround() -> Option<(String, String)> {
    (std::env::var("KAFKA_BROKER_IS_TANSU").as_deref() != Ok("false")).then(|| {
        (
            "COMMERCEX_KAFKA_PRODUCER_OPTIONS".to_owned(),
            "batch.num.messages=1".to_owned(),
        )
    })
}

impl Process {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for process in &self.processes {
                eprintln!(
                    "---- {} ({}) ----\n{}",
                    process.name,
                    process.addr,
                    tail(&process.log)
                );
            }
        }
    }
}

/// The end of a log, without per-request lines (the failing test's own requests drown the
/// rest).
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains("finished processing request"))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Starts one process with its log in `dir` and waits for the line that says where it listens.
pub async fn launch(
    name: &str,
    args: &[&str],
    extra: &[&str],
    env: &[(String, String)],
    dir: &Path,
) -> Process {
    let command: Vec<&str> = args.iter().chain(extra).copied().collect();
    start_process(name, &command, "127.0.0.1:0", env, dir).await
}

async fn start_process(
    name: &str,
    command: &[&str],
    listen: &str,
    env: &[(String, String)],
    dir: &Path,
) -> Process {
    let log = dir.join(format!("{name}.log"));
    // Logs go to stdout (and a failure to start to stderr): both into the log file, after
    // what the process it replaces wrote (a fault run reads them all).
    let stdout = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let stderr = stdout.try_clone().expect("log file");
    let mut child = commercex_command()
        .args(command)
        .args(["--listen", listen])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start commercex");
    let addr = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(announced_address) {
                return addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited with {status}: {}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} did not start: {}", tail(&log)));
    Process {
        name: name.to_owned(),
        child,
        addr,
        log,
        command: command.iter().map(|arg| (*arg).to_owned()).collect(),
        env: env.to_vec(),
    }
}
