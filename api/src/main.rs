//! `voxreach`: serve, migrate, replay.

use anyhow::{bail, Context, Result};
use api::roles::{spawn_background, Role, SchedulerConfig};
use api::server::{build_state, http_server, projection_runner, Wiring};
use application::event_store::EventStore;
use clap::{Parser, Subcommand};
use infrastructure::config::Settings;
use infrastructure::database;
use infrastructure::embedded_postgres::EmbeddedPostgres;
use infrastructure::event_store::PgEventStore;
use infrastructure::work_queue::WorkerConfig;
use projections::{ProjectionError, ReplayLimit};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "voxreach", about = "VoxReach: the system of record around AI voice agents")]
struct Cli {
    /// Directory of the embedded database and generated keys (used when DATABASE_URL is unset).
    #[arg(long, global = true, default_value = ".voxreach")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, projectors, reactors and schedulers (or only the given roles).
    Serve {
        /// Address to listen on (also VOXREACH_BIND).
        #[arg(long)]
        bind: Option<String>,
        /// What this process does; repeatable. Default: every role. Processes
        /// coordinate only through PostgreSQL, so each role can run many times.
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (as served at /api/openapi.json) and exit; needs no configuration.
    Openapi,
    /// Rebuild one read model from position 0 while the live one keeps serving, then swap.
    /// Subscriptions (reactor feeds) are never replayed.
    Replay {
        #[arg(long)]
        projection: String,
        /// Keep the rebuilt tables in this new schema instead of swapping them in (for analysis).
        #[arg(long)]
        schema: Option<String>,
        /// Replay only events up to this global position (with --schema).
        #[arg(long, requires = "schema")]
        until_position: Option<i64>,
        /// Replay only events recorded up to this RFC 3339 time (with --schema): the read model as of then.
        #[arg(long, requires = "schema")]
        until_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Re-attach the Vapi messages kept for an unmatched call to one of our calls.
    AttachUnmatched {
        /// Vapi's id of the call the messages were about.
        #[arg(long)]
        vapi_call_id: String,
        /// Our call (its organization) they belong to.
        #[arg(long)]
        call_id: uuid::Uuid,
    },
}

/// The database to use: `DATABASE_URL`, or the private cluster under the data directory.
struct Database {
    url: String,
    embedded: Option<EmbeddedPostgres>,
}

async fn open_database(settings: &Settings, data_dir: &std::path::Path) -> Result<Database> {
    if let Some(url) = &settings.database_url {
        return Ok(Database {
            url: url.clone(),
            embedded: None,
        });
    }
    tracing::info!(data_dir = %data_dir.display(), "DATABASE_URL is not set: using the embedded PostgreSQL");
    let embedded = EmbeddedPostgres::start(data_dir).await?;
    embedded.ensure_database().await?;
    Ok(Database {
        url: embedded.database_url(),
        embedded: Some(embedded),
    })
}

impl Database {
    async fn close(self) {
        if let Some(embedded) = self.embedded {
            match embedded.stop().await {
                Ok(()) => tracing::info!("embedded PostgreSQL stopped"),
                Err(error) => tracing::error!(%error, "could not stop the embedded PostgreSQL"),
            }
        }
    }
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn serve(settings: Settings, data_dir: PathBuf, bind: Option<String>, roles: Vec<Role>) -> Result<()> {
    let bind = match bind {
        Some(raw) => raw
            .parse()
            .with_context(|| format!("--bind {raw:?} is not an address like 127.0.0.1:8080"))?,
        None => settings.bind,
    };
    let keys = settings.resolve_keys(Some(&data_dir))?;
    let database = open_database(&settings, &data_dir).await?;
    let mut wiring = Wiring::new(keys, settings.public_base());
    wiring.vapi_base_url = settings.vapi.base_url.clone();
    wiring.slack_origins = settings.slack_origins.clone();
    wiring.vapi_webhook_auth = settings.vapi.webhook_auth;
    wiring.quotas = settings.quotas;
    wiring.upload_limit_bytes = settings.upload_limit_bytes;
    wiring.smtp = settings.smtp.clone();
    wiring.calendar_providers = infrastructure::config::calendar_providers(
        settings.google.as_ref(),
        settings.microsoft.as_ref(),
        &settings.calendly_api_base,
        &settings.public_base(),
    )
    .map_err(|reason| anyhow::anyhow!("calendar provider settings: {reason}"))?;
    wiring.crm_providers =
        infrastructure::config::crm_providers(&settings.crm_apps(), &settings.public_base(), wiring.clock.clone())
            .map_err(|reason| anyhow::anyhow!("CRM provider settings: {reason}"))?;
    if wiring.smtp.is_none() {
        tracing::warn!("SMTP_URL is not set: mail waits in the outbox");
    }
    match &settings.vapi.api_key {
        Some(key) => wiring.vapi_api_key = key.clone(),
        None => tracing::warn!("VAPI_API_KEY is not set: agents are kept but cannot be pushed to Vapi"),
    }
    let roles = if roles.is_empty() { Role::ALL.to_vec() } else { roles };
    let result = run_service(&database.url, wiring, bind, &roles).await;
    database.close().await;
    result
}

async fn run_service(url: &str, wiring: Wiring, bind: std::net::SocketAddr, roles: &[Role]) -> Result<()> {
    let pool = database::connect(url, 20).await.context("connecting to the database")?;
    database::migrate(&pool).await.context("applying migrations")?;
    let state = Arc::new(build_state(pool.clone(), wiring));
    state.runner.prepare().await.context("preparing projections")?;
    tracing::info!(?roles, "starting");

    let (stop_background, background_stopped) = watch::channel(false);
    let background = spawn_background(
        &state,
        roles,
        WorkerConfig::default(),
        SchedulerConfig::default(),
        &background_stopped,
    );
    let server = if roles.contains(&Role::Api) {
        let listener = std::net::TcpListener::bind(bind).with_context(|| format!("listening on {bind}"))?;
        let server = http_server(listener, state)?;
        tracing::info!(%bind, "VoxReach is serving");
        Some((server.handle(), tokio::spawn(server)))
    } else {
        None
    };

    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some((handle, task)) = server {
        handle.stop(true).await;
        let _ = task.await;
    }
    let _ = stop_background.send(true);
    for task in background {
        let _ = task.await;
    }
    pool.close().await;
    Ok(())
}

async fn migrate(settings: Settings, data_dir: PathBuf) -> Result<()> {
    let database = open_database(&settings, &data_dir).await?;
    let result = async {
        let pool = database::connect(&database.url, 2).await?;
        database::migrate(&pool).await?;
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn replay(
    settings: Settings,
    data_dir: PathBuf,
    projection: String,
    schema: Option<String>,
    limit: ReplayLimit,
) -> Result<()> {
    let database = open_database(&settings, &data_dir).await?;
    let result = async {
        let pool = database::connect(&database.url, 4).await?;
        database::migrate(&pool).await?;
        let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone()));
        let runner = projection_runner(&pool, store);
        runner.prepare().await?;
        match runner.read_model(&projection) {
            Err(ProjectionError::Unknown(_)) => bail!(
                "unknown read model {projection:?}; known: {}",
                runner.read_model_names().join(", ")
            ),
            Err(other) => bail!(other),
            Ok(_) => {}
        }
        let show = |p: projections::RebuildProgress| {
            eprint!(
                "\r{projection}: {} / {} events, {:.0} events/s   ",
                p.done, p.total, p.events_per_second
            )
        };
        let (last, place) = match &schema {
            Some(schema) => (
                runner.replay_into(&projection, schema, limit, show).await?,
                format!("kept in schema {schema}"),
            ),
            None => (runner.rebuild(&projection, show).await?, "swapped in".to_owned()),
        };
        eprintln!();
        println!(
            "{projection}: replayed {} events at {:.0} events/s (reading the log {:.1} s, applying {:.1} s), {place}",
            last.done,
            last.events_per_second,
            last.reading.as_secs_f64(),
            last.applying.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

/// Runs the command; a failure is one clear line on stderr and exit code 1,
/// never a backtrace (configuration errors are for people, not debuggers).
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voxreach: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voxreach: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn attach_unmatched(
    settings: Settings,
    data_dir: PathBuf,
    vapi_call_id: String,
    call_id: uuid::Uuid,
) -> Result<()> {
    let keys = settings.resolve_keys(Some(&data_dir))?;
    let database = open_database(&settings, &data_dir).await?;
    let result = async {
        let pool = database::connect(&database.url, 4).await?;
        database::migrate(&pool).await?;
        let state = build_state(pool, Wiring::new(keys, settings.public_base()));
        let parse =
            |raw: &[u8]| infrastructure::vapi_messages::parse(raw, chrono::Utc::now()).map_err(|e| e.to_string());
        let attached = state
            .calls
            .attach_unmatched(&vapi_call_id, call_id, &parse)
            .await
            .map_err(|e| anyhow::anyhow!(e.report()))?;
        println!("{attached} message(s) of Vapi call {vapi_call_id} attached to call {call_id}");
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,voxreach::http=info".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{:#}", api::openapi::document());
        return Ok(());
    }
    let settings = Settings::from_env()?;
    match cli.command {
        Command::Serve { bind, roles } => serve(settings, cli.data_dir, bind, roles).await,
        Command::Migrate => migrate(settings, cli.data_dir).await,
        Command::Openapi => Ok(()),
        Command::Replay {
            projection,
            schema,
            until_position,
            until_time,
        } => {
            let limit = ReplayLimit {
                until_position,
                until_time: until_time.map(|t| t.with_timezone(&chrono::Utc)),
            };
            replay(settings, cli.data_dir, projection, schema, limit).await
        }
        Command::AttachUnmatched { vapi_call_id, call_id } => {
            attach_unmatched(settings, cli.data_dir, vapi_call_id, call_id).await
        }
    }
}
