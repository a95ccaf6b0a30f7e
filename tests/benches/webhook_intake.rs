//! Webhook intake and live read-model lag: `cargo bench -p voxreach-tests --bench webhook_intake`.
//! Serves the API with what `voxreach serve` runs beside it (projections,
//! reactors, scheduled jobs) for a synced agent, as in production, posts end-of-call reports of realistic size for fresh calls
//! from 32 connections for 15 s, and meanwhile samples how long a call takes,
//! after its webhook's 200, to be visible in `GET /api/calls/:id`.
//! `BENCH_CONNECTIONS` and `BENCH_SECONDS` change the load.

use api::roles::{Role, SchedulerConfig};
use infrastructure::work_queue::WorkerConfig;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use voxreach_tests::{VapiWorld, TEST_VAPI_SECRET};

fn report(id: &str) -> Value {
    let messages: Vec<Value> = (0..16)
        .map(|turn| {
            json!({"role": if turn % 2 == 0 { "bot" } else { "user" },
                   "message": format!("Turn {turn}: thanks for taking the time, could you tell me a bit more about how you handle it today?"),
                   "time": 1764000000000.0 + turn as f64 * 7500.0, "secondsFromStart": turn as f64 * 7.5})
        })
        .collect();
    let transcript: Vec<String> = messages
        .iter()
        .map(|m| format!("{}: {}", m["role"].as_str().unwrap(), m["message"].as_str().unwrap()))
        .collect();
    json!({"message": {
        "type": "end-of-call-report", "timestamp": 1764000300000i64, "endedReason": "customer-ended-call",
        "call": {"id": id, "type": "inboundPhoneCall", "assistantId": "asst_123", "phoneNumberId": "pn_1",
                 "customer": {"number": "+14155552671"}},
        "customer": {"number": "+14155552671"},
        "cost": 0.31, "startedAt": "2026-11-24T12:00:00.000Z", "endedAt": "2026-11-24T12:02:00.000Z",
        "artifact": {"transcript": transcript.join("\n"), "recordingUrl": "https://storage.vapi.ai/rec.wav",
                     "stereoRecordingUrl": "https://storage.vapi.ai/rec-stereo.wav", "messages": messages},
        "analysis": {"summary": "Caller wants a quote.", "structuredData": {"interest": "Enterprise"}, "successEvaluation": "true"}
    }})
}

/// Where each request's call id goes in the rendered report.
const CALL_ID_SLOT: &str = "__call_id__";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The id of the newest acknowledged call and when its 200 came.
type LastAcknowledged = Arc<Mutex<Option<(String, Instant)>>>;

/// Posts end-of-call reports of fresh calls from `connections` connections for
/// `run_for`; each 200's latency in ms. The newest acknowledged call goes to `last`.
async fn post_reports(
    url: &str,
    template: &Arc<String>,
    connections: usize,
    run_for: Duration,
    prefix: &'static str,
    last: &LastAcknowledged,
) -> Vec<f64> {
    let started = Instant::now();
    let senders: Vec<_> = (0..connections)
        .map(|c| {
            let (url, last, template) = (url.to_owned(), last.clone(), template.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                let mut latencies = vec![];
                let mut n = 0;
                while started.elapsed() < run_for {
                    let id = format!("{prefix}-{c}-{n}");
                    n += 1;
                    let body = template.replacen(CALL_ID_SLOT, &id, 1);
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("x-vapi-secret", TEST_VAPI_SECRET)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("webhook sent");
                    assert_eq!(response.status(), 200, "webhook answered {}", response.status());
                    let acknowledged = Instant::now();
                    latencies.push((acknowledged - sent).as_secs_f64() * 1000.0);
                    *last.lock().unwrap() = Some((id, acknowledged));
                }
                latencies
            })
        })
        .collect();
    let mut latencies = vec![];
    for sender in senders {
        latencies.extend(sender.await.unwrap());
    }
    latencies
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let connections = env("BENCH_CONNECTIONS", 32) as usize;
    let run_for = Duration::from_secs(env("BENCH_SECONDS", 15));
    let world = VapiWorld::start().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // What `voxreach serve` runs beside the API: projections, reactors and scheduled jobs.
    let background = api::roles::spawn_background(
        &world.app.state,
        &[Role::Projectors, Role::Reactors, Role::Scheduler],
        WorkerConfig::default(),
        SchedulerConfig::default(),
        &stopped,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mb();

    let url = world.app.url("/api/webhooks/vapi");
    // Rendered once, the call id spliced in per request: the generator shares the
    // machine with the server, so it should cost as little as `wrk` with a fixed body would.
    let template = Arc::new(serde_json::to_string(&report(CALL_ID_SLOT)).unwrap());
    let last: LastAcknowledged = Arc::default();
    // A short warm-up, then statistics as autovacuum keeps them on a live database: on a
    // fresh one, plans made while the tables were nearly empty would be measured instead.
    let warm_up = post_reports(&url, &template, connections, Duration::from_secs(2), "warm", &last).await;
    sqlx::query("ANALYZE").execute(&world.app.db.pool).await.unwrap();
    // Lag samples start with the measured load, not with the warm-up's last call.
    *last.lock().unwrap() = None;
    let started = Instant::now();
    let senders = post_reports(&url, &template, connections, run_for, "bench", &last);

    // Samples the lag: the newest acknowledged call, polled until the API shows it.
    let sampler = {
        let app_client = reqwest::Client::new();
        let token = world.token.clone();
        let base = world.app.address.clone();
        let pool = world.app.db.pool.clone();
        let last = last.clone();
        tokio::spawn(async move {
            let mut lags = vec![];
            let mut peak_rss: f64 = 0.0;
            while started.elapsed() < run_for {
                tokio::time::sleep(Duration::from_millis(100)).await;
                peak_rss = peak_rss.max(rss_mb());
                let Some((vapi_id, acknowledged)) = last.lock().unwrap().clone() else {
                    continue;
                };
                loop {
                    let found: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM calls WHERE vapi_call_id = $1")
                        .bind(&vapi_id)
                        .fetch_optional(&pool)
                        .await
                        .unwrap();
                    if let Some(id) = found {
                        let response = app_client
                            .get(format!("{base}/api/calls/{id}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap();
                        if response.status() == 200 {
                            lags.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            (lags, peak_rss)
        })
    };

    let mut latencies = senders.await;
    let elapsed = started.elapsed().as_secs_f64();
    let load_end = Instant::now();
    let (mut lags, peak_rss) = sampler.await.unwrap();
    // Catch-up: until the calls read model holds every acknowledged call.
    let requests = latencies.len() as i64;
    let posted = requests + warm_up.len() as i64;
    loop {
        let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM calls")
            .fetch_one(&world.app.db.pool)
            .await
            .unwrap();
        if calls >= posted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up = load_end.elapsed().as_secs_f64();
    // Reactor work the reports made due (none, for an organization without CRM, campaigns,
    // A/B tests or Slack: reports arrive analyzed), and how long the reactors took to finish it.
    let due = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM reactor_work WHERE due_at <= now()")
            .fetch_one(&world.app.db.pool)
            .await
            .unwrap()
    };
    let work_at_end = due().await;
    while due().await > 0 && load_end.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let work_done = load_end.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }

    latencies.sort_by(f64::total_cmp);
    lags.sort_by(f64::total_cmp);
    println!(
        "webhook intake, {connections} connections, {:.0} s: {:>7.0} requests/s, p50 {:.1} ms, p99 {:.1} ms ({requests} end-of-call reports)",
        elapsed,
        requests as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "calls read model lag (200 → visible in GET /api/calls/:id): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} samples); caught up {:.2} s after the load",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.len(),
        catch_up
    );
    println!("reactor work due when the calls read model caught up: {work_at_end} items, done {work_done:.2} s after the load");
    println!("resident memory of this process (server and load generator): idle {idle_rss:.0} MB, peak under load {peak_rss:.0} MB");
}
