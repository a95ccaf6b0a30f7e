//! Replay speed of every read model: `cargo bench -p voxreach-tests --bench read_models`.
//! Writes a realistic history (`voxreach_tests::load`: agents, A/B tests and
//! calls with their whole life), rebuilds each read model from the log by
//! name, and prints its events/s next to a raw Postgres read of the same log
//! in the same run. `BENCH_CALLS` sets the number of calls (default 30,000);
//! `BENCH_ONLY=calls,agents` rebuilds only the read models named.

use infrastructure::event_store::PgEventStore;
use std::sync::Arc;
use std::time::Instant;
use voxreach_tests::{load, TestDatabase};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let calls = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30_000);
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let started = Instant::now();
    let total = load::write_history(&store, calls).await;
    println!(
        "history: {total} events ({calls} calls) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(&db.pool).await.unwrap();

    let raw = voxreach_tests::raw_log_read_rate(&db.pool).await;
    println!("raw Postgres read of the log (SELECT * in log order): {raw:>10.0} events/s");

    let runner = api::server::projection_runner(&db.pool, Arc::new(store.clone()));
    runner.prepare().await.unwrap();
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|names| names.split(',').map(|n| n.trim().to_owned()).collect());
    for name in runner.read_model_names() {
        if only.as_ref().is_some_and(|only| !only.iter().any(|n| n == name)) {
            continue;
        }
        let model = runner.read_model(name).unwrap();
        let consumed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events
                 WHERE ($1::text[] IS NULL OR stream_type = ANY($1)) AND ($2::text[] IS NULL OR event_type = ANY($2))",
        )
        .bind(model.stream_types().map(|types| types.to_vec()))
        .bind(model.event_types().map(|types| types.to_vec()))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let result = runner.rebuild(name, |_| {}).await.unwrap();
        println!(
            "rebuild of read model `{name:<18}` ({consumed} events of its own): {}",
            voxreach_tests::rebuild_figures(&result)
        );
    }
}
