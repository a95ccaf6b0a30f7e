//! Analytics over a busy year: `cargo bench -p voxreach-tests --bench analytics`.
//! Writes one organization's year (`voxreach_tests::analytics_load`: 20 agents,
//! 10 campaigns, `BENCH_CALLS` calls over 365 days, default 1,000,000) through
//! the real append path, rebuilds the `analytics` read model by name (events/s,
//! next to a raw Postgres read of the same log), then times every analytics use
//! case over the full year (the application service and its SQL, as the API
//! calls them; HTTP and JSON excluded) and the Excel and PDF exports.
//! `BENCH_RUNS` sets the requests per endpoint (default 200).

use application::analytics::{AnalyticsQueryInput, AnalyticsService, ExportFormat};
use application::auth::Session;
use application::organization::OrganizationService;
use infrastructure::event_store::PgEventStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use voxreach_tests::{analytics_load, TestDatabase};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `request` `runs` times after a warm-up; prints p50 and p99 in ms.
async fn time<F, Fut, T, E>(name: &str, runs: usize, request: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    for _ in 0..3 {
        request().await.expect("warm-up request");
    }
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        request().await.expect("request");
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    println!(
        "{name:<40} p50 {:>7.2} ms   p99 {:>7.2} ms   ({runs} runs)",
        percentile(&took, 0.5),
        percentile(&took, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let calls = env("BENCH_CALLS", 1_000_000);
    let runs = env("BENCH_RUNS", 200);
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let started = Instant::now();
    let year = analytics_load::write_year(&store, calls).await;
    println!(
        "history: {} events ({calls} calls over {} days) written in {:.1} s",
        year.events,
        analytics_load::DAYS,
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(&db.pool).await.unwrap();
    println!(
        "raw Postgres read of the log (SELECT * in log order): {:>10.0} events/s",
        voxreach_tests::raw_log_read_rate(&db.pool).await
    );

    let store: Arc<PgEventStore> = Arc::new(store);
    let runner = api::server::projection_runner(&db.pool, store.clone());
    runner.prepare().await.unwrap();
    for name in ["agents", "analytics"] {
        let result = runner.rebuild(name, |_| {}).await.unwrap();
        println!(
            "rebuild of read model `{name}`: {}",
            voxreach_tests::rebuild_figures(&result)
        );
    }
    // What autovacuum does after a rebuild's inserts: statistics, and the visibility map index-only scans need.
    sqlx::query("VACUUM ANALYZE").execute(&db.pool).await.unwrap();

    let clock: Arc<dyn application::clock::Clock> = Arc::new(application::clock::SystemClock);
    let service = AnalyticsService {
        read_model: Arc::new(projections::analytics::PgAnalytics::new(db.pool.clone())),
        organizations: Arc::new(OrganizationService {
            store: store.clone(),
            clock: clock.clone(),
        }),
        agents: Arc::new(projections::agents::PgAgentDirectory::new(db.pool.clone())),
        renderer: Arc::new(infrastructure::analytics::ReportFiles),
        clock,
    };
    let owner = Session {
        user_id: year.owner_id,
        organization_id: year.organization_id,
        role: domain::auth::Role::Owner,
    };
    let full_year = || AnalyticsQueryInput {
        start_date: Some("2025-11-26".into()),
        end_date: Some("2026-11-25".into()),
        ..AnalyticsQueryInput::default()
    };
    let filtered = || AnalyticsQueryInput {
        agent_ids: year.agents[..5].iter().map(Uuid::to_string).collect(),
        campaign_ids: year.campaigns[..3].iter().map(Uuid::to_string).collect(),
        ..full_year()
    };
    let (service, owner) = (&service, &owner);
    time("overview (funnel, outcomes)", runs, || {
        service.overview(owner, full_year())
    })
    .await;
    time("talk-time", runs, || service.talk_time(owner, full_year())).await;
    time("best-times (heatmap)", runs, || service.best_times(owner, full_year())).await;
    time("best-times, 5 agents x 3 campaigns", runs, || {
        service.best_times(owner, filtered())
    })
    .await;
    time("agents", runs, || service.agents(owner, full_year())).await;
    time("sentiment", runs, || service.sentiment(owner, full_year())).await;
    time("adherence", runs, || service.adherence(owner, full_year())).await;
    time("overview, 5 agents x 3 campaigns", runs, || {
        service.overview(owner, filtered())
    })
    .await;
    time("export excel (a year)", 5, || {
        service.export(owner, full_year(), ExportFormat::Excel)
    })
    .await;
    time("export pdf (a year)", 5, || {
        service.export(owner, full_year(), ExportFormat::Pdf)
    })
    .await;
}
