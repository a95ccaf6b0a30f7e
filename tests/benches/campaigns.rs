//! Outbound campaigns: `cargo bench -p voxreach-tests --bench campaigns`.
//!
//! 1. Import: a contact file of `BENCH_IMPORT_ROWS` rows (100,000) uploaded, then
//!    imported over HTTP (mapped, deduplicated, DNC-scrubbed, recorded in the
//!    log), next to raw PostgreSQL inserting the same rows in one statement
//!    from the same run.
//! 2. Scheduler: `BENCH_CAMPAIGNS` (50) running campaigns holding
//!    `BENCH_CONTACTS` (1,000,000) contacts in all; the time to choose a tick's
//!    100 ready contacts (the runner's `choose`, on the real read models), p50 and p99.
//! 3. Runner: dial decisions per second for `BENCH_SECONDS` (10), each one
//!    recorded, turned into a call and placed with a fake Vapi.
//! 4. Replay: each campaign read model rebuilt from that log, next to a raw
//!    PostgreSQL read of the same log in the same run.

use serde_json::json;
use std::time::{Duration, Instant};
use voxreach_tests::{ManualClock, VapiWorld};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `n`th of many distinct, valid US numbers.
fn phone(n: usize) -> String {
    const AREAS: [u32; 8] = [212, 312, 415, 617, 713, 206, 305, 404];
    const EXCHANGES: [u32; 16] = [
        234, 345, 456, 567, 678, 789, 890, 923, 246, 357, 468, 579, 682, 793, 824, 935,
    ];
    let line = n % 10_000;
    let exchange = EXCHANGES[(n / 10_000) % EXCHANGES.len()];
    let area = AREAS[(n / 10_000 / EXCHANGES.len()) % AREAS.len()];
    format!("+1{area}{exchange}{line:04}")
}

fn contact_file(rows: usize) -> String {
    let mut file = String::from("First Name,Last Name,Phone,Company,Industry\n");
    for n in 0..rows {
        file.push_str(&format!("Ada{n},Lovelace,{},Analytical Engines,Computing\n", phone(n)));
    }
    file
}

async fn create_campaign(w: &VapiWorld, number: &str, name: &str) -> String {
    let body = json!({"agentId": w.agent_id, "name": name, "defaultPhoneNumberId": number,
        "maxConcurrentCalls": 100, "dialsPerMinute": 120});
    let (status, created) = w.post("/api/campaigns", body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Uploads and imports `rows` contacts; the seconds each took.
async fn import(w: &VapiWorld, campaign: &str, rows: usize) -> (f64, f64) {
    let file = contact_file(rows);
    let started = Instant::now();
    let response = w
        .app
        .client
        .post(w.app.url(&format!("/api/campaigns/{campaign}/upload")))
        .bearer_auth(&w.token)
        .header("content-type", "text/csv")
        .body(file)
        .send()
        .await
        .unwrap();
    let (status, upload) = voxreach_tests::into_parts(response).await;
    assert_eq!(status, 201, "{upload}");
    let uploaded = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let path = format!(
        "/api/campaigns/{campaign}/upload/{}/import",
        upload["uploadId"].as_str().unwrap()
    );
    let (status, result) = w.post(&path, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(
        (status, result["imported"].as_u64()),
        (200, Some(rows as u64)),
        "{result}"
    );
    (uploaded, started.elapsed().as_secs_f64())
}

/// The same rows written straight into a table of their own, in one statement.
async fn raw_insert(pool: &sqlx::PgPool, rows: usize) -> f64 {
    sqlx::query(
        "CREATE TABLE raw_contacts (id uuid PRIMARY KEY, phone text NOT NULL, first_name text, last_name text,
         company text, custom_data jsonb NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
    let ids: Vec<uuid::Uuid> = (0..rows).map(|_| uuid::Uuid::now_v7()).collect();
    let phones: Vec<String> = (0..rows).map(phone).collect();
    let first: Vec<String> = (0..rows).map(|n| format!("Ada{n}")).collect();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO raw_contacts SELECT id, phone, first, 'Lovelace', 'Analytical Engines', '{\"Industry\": \"Computing\"}'
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS t(id, phone, first)",
    )
    .bind(&ids)
    .bind(&phones)
    .bind(&first)
    .execute(pool)
    .await
    .unwrap();
    started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let import_rows = env_or("BENCH_IMPORT_ROWS", 100_000);
    let campaigns = env_or("BENCH_CAMPAIGNS", 50);
    let contacts = env_or("BENCH_CONTACTS", 1_000_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    // A Tuesday at 17:00 UTC: every continental US zone is inside its calling window.
    let clock = ManualClock::at("2026-11-10T17:00:00Z");
    let shared = clock.clone();
    let w = VapiWorld::start_with(move |wiring| {
        wiring.clock = shared;
        wiring.upload_limit_bytes = 1 << 30;
    })
    .await;
    let number = w.add_number("pn_bench", "+14155550170", false).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/call"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"id": "vapi_bench_call", "status": "queued"})),
        )
        .mount(&w.vapi)
        .await;

    println!("import: {import_rows} rows");
    let first = create_campaign(&w, &number, "import").await;
    let (uploaded, imported) = import(&w, &first, import_rows).await;
    let raw = raw_insert(&w.app.db.pool, import_rows).await;
    println!(
        "  upload (kept, read, mapping proposed): {uploaded:.2} s; import (mapped, deduplicated, scrubbed, recorded): \
         {imported:.2} s = {:.0} rows/s; raw INSERT of the same rows: {raw:.2} s = {:.0} rows/s",
        import_rows as f64 / imported,
        import_rows as f64 / raw
    );
    let started = Instant::now();
    w.app.settle().await;
    println!("  read models caught up in {:.2} s", started.elapsed().as_secs_f64());
    let (_, _) = w.post(&format!("/api/campaigns/{first}/cancel"), json!({})).await;

    println!("scheduler: {contacts} contacts over {campaigns} running campaigns");
    let per_campaign = contacts / campaigns;
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..campaigns {
        let id = create_campaign(&w, &number, &format!("bench {n}")).await;
        import(&w, &id, per_campaign).await;
        ids.push(id);
    }
    for id in &ids {
        let (status, _) = w.post(&format!("/api/campaigns/{id}/start"), json!({})).await;
        assert_eq!(status, 200);
    }
    w.app.settle().await;
    println!("  loaded in {:.1} s", started.elapsed().as_secs_f64());
    // A steady state: autovacuum would have caught up with a million fresh rows by now.
    for table in ["campaign_contacts", "campaign_attempts", "campaigns"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}"))
            .execute(&w.app.db.pool)
            .await
            .unwrap();
    }
    let runner = application::campaigns::runner::CampaignRunner {
        store: std::sync::Arc::new(infrastructure::event_store::PgEventStore::new(w.app.db.pool.clone())),
        clock: clock.clone(),
        board: std::sync::Arc::new(projections::campaigns::PgCampaigns::new(w.app.db.pool.clone())),
        campaigns: std::sync::Arc::new(projections::campaigns::PgCampaigns::new(w.app.db.pool.clone())),
        locks: std::sync::Arc::new(infrastructure::work_queue::PgJobLocks::new(w.app.db.pool.clone())),
        progress: std::sync::Arc::new(projections::runtime::PgReadModelProgress::new(w.app.db.pool.clone())),
    };
    let board = projections::campaigns::PgCampaigns::new(w.app.db.pool.clone());
    let at = application::clock::Clock::now(clock.as_ref());
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let running = application::campaigns::runner::CampaignBoard::running(&board, at)
            .await
            .unwrap();
        let chosen = runner.choose(running, at).await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(chosen.iter().map(|(_, c)| c.len()).sum::<usize>(), 100);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  choosing a tick's 100 contacts: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );

    println!("runner: {seconds} s of ticks, each dial recorded, requested and placed with a fake Vapi");
    let started = Instant::now();
    let mut dialed = 0;
    let mut ticks = 0;
    while started.elapsed() < Duration::from_secs(seconds as u64) {
        // Each tick a minute later, so the pace limit is not what is measured.
        clock.set(&(application::clock::Clock::now(clock.as_ref()) + chrono::Duration::minutes(1)).to_rfc3339());
        w.app.settle().await;
        dialed += runner.tick().await.unwrap().dialed;
        w.app.drain_work().await;
        ticks += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "  {dialed} dials in {elapsed:.1} s over {ticks} ticks = {:.0} dial decisions/s (placed with Vapi)",
        dialed as f64 / elapsed
    );

    let raw = voxreach_tests::raw_log_read_rate(&w.app.db.pool).await;
    println!("replay: raw Postgres read of the log (SELECT * in log order): {raw:.0} events/s");
    let projections = &w.app.state.runner;
    for name in ["campaigns", "campaign_contacts", "campaign_attempts", "dnc"] {
        let result = projections.rebuild(name, |_| {}).await.unwrap();
        println!(
            "  rebuild of read model `{name:<17}`: {}",
            voxreach_tests::rebuild_figures(&result)
        );
    }
}
