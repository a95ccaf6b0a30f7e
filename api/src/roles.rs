//! Process roles: what one `voxreach serve` process runs. Every role can run
//! in many processes at once; they coordinate only through PostgreSQL
//! (checkpoint row locks, work-queue leases, unique keys), never in memory.

use crate::server::AppState;
use infrastructure::work_queue::{run_worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API.
    Api,
    /// Read models and the subscriptions that feed reactors.
    Projectors,
    /// Workers performing reactor work against outside services.
    Reactors,
    /// Periodic jobs: number status checks, daily summaries.
    Scheduler,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Api, Role::Projectors, Role::Reactors, Role::Scheduler];
}

/// How often the scheduler's jobs run.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    pub number_checks: Duration,
    pub summaries: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            number_checks: Duration::from_secs(300),
            summaries: Duration::from_secs(60),
        }
    }
}

/// Starts the background parts of `roles` (all but the API) until `stopped` turns true.
pub fn spawn_background(
    state: &Arc<AppState>,
    roles: &[Role],
    workers: WorkerConfig,
    scheduler: SchedulerConfig,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![];
    if roles.contains(&Role::Projectors) {
        tasks.push(tokio::spawn(state.runner.clone().run(stopped.clone())));
    }
    if roles.contains(&Role::Reactors) {
        for worker in &state.workers {
            tasks.push(tokio::spawn(run_worker(
                state.work_queue.clone(),
                worker.clone(),
                state.clock.clone(),
                workers,
                stopped.clone(),
            )));
        }
    }
    if roles.contains(&Role::Scheduler) {
        let numbers = state.clone();
        tasks.push(tokio::spawn(every(
            scheduler.number_checks,
            stopped.clone(),
            move || {
                let state = numbers.clone();
                async move {
                    match state.number_sync.check_statuses().await {
                        Ok(changed) if changed > 0 => tracing::info!(changed, "phone number statuses changed"),
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "phone number status check failed"),
                    }
                }
            },
        )));
        let summaries = state.clone();
        // Each summary is queued and sent once per day, however many schedulers run.
        tasks.push(tokio::spawn(every(scheduler.summaries, stopped.clone(), move || {
            let state = summaries.clone();
            async move {
                if let Err(error) = state
                    .slack_notifier
                    .schedule_daily_summaries(state.work_queue.as_ref())
                    .await
                {
                    tracing::error!(%error, "scheduling daily summaries failed");
                }
            }
        })));
    }
    tasks
}

/// Runs `job` now and then every `period` until `stopped` turns true.
async fn every<F, Fut>(period: Duration, mut stopped: watch::Receiver<bool>, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !*stopped.borrow() {
        job().await;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.changed() => {}
        }
    }
}
