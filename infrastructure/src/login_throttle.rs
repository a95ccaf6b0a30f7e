//! Attempt counting in Postgres (sign-ins, sign-ups, reset requests), so every
//! server process sees the same lockouts.

use application::auth::LoginThrottle;
use application::AppError;
use async_trait::async_trait;
use sqlx::PgPool;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per e-mail address within the window before it locks.
    pub per_account: i32,
    /// Failures per client address within the window before it locks; higher,
    /// since offices share addresses.
    pub per_client: i32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_client: 20,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Clone)]
pub struct PgLoginThrottle {
    pool: PgPool,
    policy: ThrottlePolicy,
}

impl PgLoginThrottle {
    pub fn new(pool: PgPool, policy: ThrottlePolicy) -> Self {
        Self { pool, policy }
    }

    /// Keys are `<purpose>:<kind>:<value>`; client addresses get the higher limit.
    fn limit_for(&self, key: &str) -> i32 {
        if key.contains(":ip:") {
            self.policy.per_client
        } else {
            self.policy.per_account
        }
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("updating sign-in throttling", error)
}

#[async_trait]
impl LoginThrottle for PgLoginThrottle {
    async fn attempt(&self, keys: &[String]) -> Result<Option<Duration>, AppError> {
        let limits: Vec<i32> = keys.iter().map(|k| self.limit_for(k)).collect();
        // One statement per attempt: the row lock orders concurrent attempts, and
        // each sees the count including every attempt before it.
        let seconds: Option<f64> = sqlx::query_scalar(
            "WITH attempt AS (
                INSERT INTO login_throttle AS t (key, failures, window_started_at, locked_until)
                SELECT k, 1, now(), CASE WHEN l <= 1 THEN now() + $3 END FROM UNNEST($1::text[], $2::int[]) AS u(k, l)
                ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN t.window_started_at < now() - $4 THEN 1 ELSE t.failures + 1 END,
                   window_started_at = CASE WHEN t.window_started_at < now() - $4 THEN now() ELSE t.window_started_at END,
                   locked_until = CASE
                       WHEN t.locked_until > now() THEN t.locked_until
                       WHEN t.window_started_at >= now() - $4
                            AND t.failures + 1 >= (SELECT l FROM UNNEST($1::text[], $2::int[]) AS u(k, l) WHERE k = t.key)
                       THEN now() + $3
                       ELSE NULL END
                RETURNING t.key, t.failures, t.locked_until)
             SELECT EXTRACT(EPOCH FROM max(a.locked_until) - now())::float8 FROM attempt a
             JOIN UNNEST($1::text[], $2::int[]) AS u(k, l) ON u.k = a.key
             WHERE a.failures > u.l AND a.locked_until > now()",
        )
        .bind(keys)
        .bind(limits)
        .bind(self.policy.lockout)
        .bind(self.policy.window)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        Ok(seconds.map(|s| Duration::from_secs(s.ceil().max(1.0) as u64)))
    }

    async fn succeeded(&self, account_key: &str, client_key: &str) -> Result<(), AppError> {
        sqlx::query(
            "WITH cleared AS (DELETE FROM login_throttle WHERE key = $1)
             UPDATE login_throttle SET failures = GREATEST(failures - 1, 0) WHERE key = $2 AND locked_until IS NULL",
        )
        .bind(account_key)
        .bind(client_key)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }
}
