//! Connecting to Postgres and applying the migrations under `migrations/`.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?.application_name("voxreach");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

/// Connections the log pool opens at most, besides the pool it is made from.
const LOG_POOL_CONNECTIONS: u32 = 24;

/// A pool beside `pool`, to the same database, for the event log and the
/// projections: its sessions plan each prepared statement once
/// (`plan_cache_mode = force_generic_plan`). Their statements are a few fixed
/// shapes run thousands of times a second with arrays of any length, which
/// PostgreSQL's default kept planning anew (up to 4 ms a batch); the API's
/// queries stay on `pool`, planned for their parameters (a year of analytics,
/// a campaign of a million contacts). Connects when first used.
pub fn log_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")]);
    PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections().min(LOG_POOL_CONNECTIONS))
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// True when every migration this binary knows is applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await?;
    Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
}
