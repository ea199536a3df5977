use anyhow::Context;
use commercex::app::Application;
use commercex::cli::{AdminCommand, Command, ServiceName, TopicsCommand};
use commercex::secrets::StoredSecrets;
use commercex::settings::{self, Databases, NeededKeys, Settings};
use commercex::telemetry::{LIFECYCLE, LogStream};
use commercex::{commands, config_file, telemetry};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use users::app::Promotion;

/// Allocation was a fifth of the gateway's instructions per proxied request under glibc's
/// malloc (callgrind); see docs/BENCHMARKS.md for the before and after.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = config_file::parse_cli()?;
    let command = cli.command.unwrap_or(Command::Serve { service: None });
    let (service, stream) = match &command {
        Command::Serve {
            service: Some(service),
        } => (service.name(), LogStream::Stdout),
        Command::Serve { service: None } => ("commercex", LogStream::Stdout),
        _ => ("commercex", LogStream::Stderr),
    };
    let telemetry = telemetry::init(settings::log_format(&cli.options), service, stream)?;
    let outcome = run(&cli.options, command).await;
    telemetry.shutdown();
    outcome
}

async fn run(options: &commercex::cli::Options, command: Command) -> anyhow::Result<()> {
    let stored = match &command {
        // The health probe needs no secrets, and must not log in to Vault every 10 s.
        Command::Probe { .. } => StoredSecrets::default(),
        _ => StoredSecrets::fetch(options).await?,
    };
    match command {
        Command::Serve { service } => serve(options, &stored, service).await,
        Command::Topics(TopicsCommand::Ensure) => {
            commands::topics::ensure(settings::bus(options, &stored)?).await
        }
        Command::Migrate => commands::migrate::run(&Databases::resolve(options, &stored)?).await,
        Command::Dlq(command) => {
            commands::dlq::run(&Databases::resolve(options, &stored)?, command).await
        }
        Command::Bench {
            url,
            customers,
            orders_per_customer,
            products,
            server_pids,
            mut metrics_url,
        } => {
            let admin = settings::admin(options, &stored)?.context(
                "bench needs an admin: set COMMERCEX_ADMIN_EMAIL and COMMERCEX_ADMIN_PASSWORD_FILE",
            )?;
            if metrics_url.is_empty() {
                metrics_url.push(format!("{}/metrics", url.trim_end_matches('/')));
            }
            load::bench::run(load::bench::BenchOptions {
                cost: load::bench::CostProbe {
                    pids: server_pids,
                    metrics: metrics_url,
                },
                url,
                admin_email: admin.email,
                admin_password: secrecy::ExposeSecret::expose_secret(&admin.password).to_owned(),
                customers,
                orders_per_customer,
                products,
            })
            .await
        }
        #[cfg(feature = "kafka")]
        Command::BenchEvents { events, partitions } => match settings::bus(options, &stored)? {
            settings::BusSettings::Kafka(config) => {
                load::bench_events::run(config, events, &partitions).await
            }
            settings::BusSettings::Db => {
                anyhow::bail!("bench-events measures Kafka: run with --bus kafka")
            }
        },
        Command::Seed { products, rng_seed } => {
            let databases = Databases::resolve(options, &stored)?;
            load::seed::run(&databases.storage, databases.store, products, rng_seed).await
        }
        Command::Admin(AdminCommand::Create {
            email,
            name,
            password_file,
            force,
        }) => {
            let promotion = if force {
                Promotion::Allowed
            } else {
                Promotion::AdminsOnly
            };
            // Only the identity service opens, and it signs nothing here but needs its key.
            let needed = NeededKeys {
                signing: true,
                payment_tokens: false,
                web_session: false,
                webhook_secrets: false,
            };
            let settings = Settings::load(options, &stored, needed)?;
            commands::admin::create(settings, &email, &name, password_file, promotion).await
        }
        Command::Probe { url } => commands::probe::run(&url).await,
    }
}

async fn serve(
    options: &commercex::cli::Options,
    stored: &StoredSecrets,
    service: Option<ServiceName>,
) -> anyhow::Result<()> {
    let settings = Settings::load(options, stored, NeededKeys::for_service(service))?;
    let app = match service {
        None => Application::build(settings).await?,
        Some(service) => Application::build_service(settings, service).await?,
    };
    let addr = app.local_addr()?;
    // Handlers go in before we announce ourselves: a signal sent as soon as the address is
    // printed must drain, not kill.
    let shutdown = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown requested; draining");
        on_signal.cancel();
    });
    let scheme = app.scheme();
    tracing::info!(
        target: LIFECYCLE,
        docs = format!("{scheme}://{addr}/docs"),
        "CommerceX listening on {scheme}://{addr}"
    );
    app.run(shutdown).await.context("running CommerceX")?;
    tracing::info!(target: LIFECYCLE, "CommerceX stopped");
    Ok(())
}
