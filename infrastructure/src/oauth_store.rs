//! OAuth state in PostgreSQL: pending sign-ins by the hash of their `state`
//! (taken once), and integrations' tokens, encrypted, refreshed under a row lock.

use application::oauth::{AuthorizationStates, PendingAuthorization, Refresh, Refreshed, TokenVault, Tokens};
use application::secrets::SecretSealer;
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

fn verifier_context(state_hash: &[u8]) -> String {
    format!("oauth-state:{}", hex::encode(state_hash))
}

fn tokens_context(organization_id: Uuid, owner: &str) -> String {
    format!("tokens:{organization_id}:{owner}")
}

/// Tokens as sealed in one column.
#[derive(Serialize, Deserialize)]
struct SealedForm {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Absent in tokens sealed before providers named an API address.
    #[serde(default)]
    api_base: Option<String>,
}

#[derive(Clone)]
pub struct PgOAuthStore {
    pool: PgPool,
    sealer: Arc<dyn SecretSealer>,
}

impl PgOAuthStore {
    pub fn new(pool: PgPool, sealer: Arc<dyn SecretSealer>) -> Self {
        Self { pool, sealer }
    }

    fn seal(&self, organization_id: Uuid, owner: &str, tokens: &Tokens) -> String {
        let form = SealedForm {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: tokens.expires_at,
            api_base: tokens.api_base.clone(),
        };
        let plain = serde_json::to_string(&form).expect("tokens serialize");
        self.sealer.seal(&plain, &tokens_context(organization_id, owner))
    }

    fn open(&self, organization_id: Uuid, owner: &str, sealed: &str) -> Result<Tokens, AppError> {
        let plain = self.sealer.open(sealed, &tokens_context(organization_id, owner))?;
        let form: SealedForm =
            serde_json::from_str(&plain).map_err(|e| AppError::internal("reading stored tokens", e))?;
        Ok(Tokens {
            access_token: form.access_token,
            refresh_token: form.refresh_token,
            expires_at: form.expires_at,
            api_base: form.api_base,
        })
    }
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> AppError {
    move |e| AppError::internal(context, e)
}

#[async_trait]
impl AuthorizationStates for PgOAuthStore {
    async fn save(&self, state: &str, pending: &PendingAuthorization) -> Result<(), AppError> {
        let hash = state_hash(state);
        let sealed = self.sealer.seal(&pending.pkce_verifier, &verifier_context(&hash));
        // Long-expired states are swept as new ones arrive (by the caller's clock, not the database's).
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1 - interval '1 day'")
            .bind(pending.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db("sweeping expired sign-ins"))?;
        sqlx::query(
            "INSERT INTO oauth_states
               (state_hash, organization_id, user_id, purpose, integration_id, sealed_pkce_verifier, details, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&hash)
        .bind(pending.organization_id)
        .bind(pending.user_id)
        .bind(&pending.purpose)
        .bind(pending.integration_id)
        .bind(&sealed)
        .bind(&pending.details)
        .bind(pending.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("saving a sign-in"))?;
        Ok(())
    }

    async fn take(&self, state: &str, now: DateTime<Utc>) -> Result<Option<PendingAuthorization>, AppError> {
        type Row = (Uuid, Uuid, String, Uuid, String, serde_json::Value, DateTime<Utc>);
        let hash = state_hash(state);
        // Deleting is taking: of two callbacks with one state, one gets the row.
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1
             RETURNING organization_id, user_id, purpose, integration_id, sealed_pkce_verifier, details, expires_at",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("taking a sign-in"))?;
        let Some((organization_id, user_id, purpose, integration_id, sealed, details, expires_at)) = row else {
            return Ok(None);
        };
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(PendingAuthorization {
            organization_id,
            user_id,
            purpose,
            integration_id,
            pkce_verifier: self.sealer.open(&sealed, &verifier_context(&hash))?,
            details,
            expires_at,
        }))
    }
}

#[async_trait]
impl TokenVault for PgOAuthStore {
    async fn put(&self, organization_id: Uuid, owner: &str, tokens: &Tokens) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO integration_tokens (organization_id, owner, sealed_tokens, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (organization_id, owner)
             DO UPDATE SET sealed_tokens = EXCLUDED.sealed_tokens, expires_at = EXCLUDED.expires_at, updated_at = now()",
        )
        .bind(organization_id)
        .bind(owner)
        .bind(self.seal(organization_id, owner, tokens))
        .bind(tokens.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("storing tokens"))?;
        Ok(())
    }

    async fn get(&self, organization_id: Uuid, owner: &str) -> Result<Option<Tokens>, AppError> {
        let sealed: Option<String> = sqlx::query_scalar(
            "SELECT sealed_tokens FROM integration_tokens WHERE organization_id = $1 AND owner = $2",
        )
        .bind(organization_id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading tokens"))?;
        sealed.map(|s| self.open(organization_id, owner, &s)).transpose()
    }

    async fn refresh(&self, organization_id: Uuid, owner: &str, refresh: Refresh<'_>) -> Result<Refreshed, AppError> {
        let mut tx = self.pool.begin().await.map_err(db("starting a token refresh"))?;
        // The row lock is the refresh lock: a second refresher waits here, then sees the new tokens.
        let sealed: Option<String> = sqlx::query_scalar(
            "SELECT sealed_tokens FROM integration_tokens WHERE organization_id = $1 AND owner = $2 FOR UPDATE",
        )
        .bind(organization_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("locking tokens"))?;
        let Some(sealed) = sealed else {
            return Ok(Refreshed::Gone);
        };
        let current = self.open(organization_id, owner, &sealed)?;
        if !(refresh.stale)(&current) {
            return Ok(Refreshed::Tokens(current));
        }
        let fresh = match (refresh.run)(current).await {
            Ok(fresh) => fresh,
            Err(error) => return Ok(Refreshed::Failed(error)),
        };
        sqlx::query(
            "UPDATE integration_tokens SET sealed_tokens = $3, expires_at = $4, updated_at = now()
             WHERE organization_id = $1 AND owner = $2",
        )
        .bind(organization_id)
        .bind(owner)
        .bind(self.seal(organization_id, owner, &fresh))
        .bind(fresh.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db("storing refreshed tokens"))?;
        tx.commit().await.map_err(db("committing refreshed tokens"))?;
        Ok(Refreshed::Tokens(fresh))
    }

    async fn forget(&self, organization_id: Uuid, owner: &str) -> Result<(), AppError> {
        sqlx::query("DELETE FROM integration_tokens WHERE organization_id = $1 AND owner = $2")
            .bind(organization_id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db("forgetting tokens"))?;
        Ok(())
    }
}
