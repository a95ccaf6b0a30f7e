//! Process roles: what one `voxreach serve` process runs. Every role can run
//! in many processes at once; they coordinate only through PostgreSQL
//! (checkpoint row locks, work-queue leases, unique keys), never in memory.

use crate::server::AppState;
use application::work::ScheduledJob;
use infrastructure::work_queue::{run_worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API.
    Api,
    /// Read models and the subscriptions that feed reactors.
    Projectors,
    /// Workers performing reactor work against outside services.
    Reactors,
    /// Periodic jobs (`ScheduledJob`s of the features): number status checks, daily summaries.
    Scheduler,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Api, Role::Projectors, Role::Reactors, Role::Scheduler];
}

/// How often the scheduler's jobs run: each job's own period, unless overridden (tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedulerConfig {
    pub period_override: Option<Duration>,
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
        for job in &state.scheduled {
            let period = scheduler.period_override.unwrap_or(job.period());
            tasks.push(tokio::spawn(every(period, job.clone(), stopped.clone())));
        }
    }
    tasks
}

/// Runs `job` now and then every `period` until `stopped` turns true.
async fn every(period: Duration, job: Arc<dyn ScheduledJob>, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        let span = tracing::info_span!("scheduled_job", job = job.name());
        match job.run().instrument(span).await {
            Ok(done) if done > 0 => tracing::info!(job = job.name(), done, "scheduled job did work"),
            Ok(_) => {}
            Err(error) => tracing::error!(job = job.name(), error = %error.report(), "scheduled job failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.changed() => {}
        }
    }
}
