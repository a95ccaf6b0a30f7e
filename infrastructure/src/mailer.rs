//! Mail: use cases put it in the `email_outbox` table (the body encrypted: it
//! carries single-use links), and the delivery job sends it over SMTP with
//! retries, erasing the body once sent. Without `SMTP_URL`, mail waits there.

use application::auth::{Mailer, OutgoingEmail};
use application::clock::Clock;
use application::secrets::SecretSealer;
use application::work::ScheduledJob;
use application::AppError;
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The context a mail body is sealed under.
fn body_context(id: Uuid) -> String {
    format!("email:{id}")
}

#[derive(Clone)]
pub struct OutboxMailer {
    pool: PgPool,
    sealer: Arc<dyn SecretSealer>,
}

impl OutboxMailer {
    pub fn new(pool: PgPool, sealer: Arc<dyn SecretSealer>) -> Self {
        Self { pool, sealer }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: OutgoingEmail) -> Result<(), AppError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO email_outbox (id, organization_id, recipient, subject, sealed_body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(email.organization_id)
        .bind(&email.to)
        .bind(&email.subject)
        .bind(self.sealer.seal(&email.body, &body_context(id)))
        .execute(&self.pool)
        .await
        .map_err(|e| AppError::internal("queueing an e-mail", e))?;
        // The body carries single-use tokens: never log it.
        tracing::info!(outbox_id = %id, subject = %email.subject, "e-mail queued");
        Ok(())
    }
}

/// Where mail goes: an SMTP server and our sender address.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://host:port` (plain, for a local relay), `smtp://…?tls=required` (STARTTLS) or `smtps://…` (TLS), with optional `user:password@`.
    pub url: String,
    pub from: Mailbox,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SmtpSettings")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Sends queued mail, a batch at a time, leased so that several schedulers
/// never send one twice; failures are retried with backoff, up to `MAX_ATTEMPTS`.
pub struct MailDelivery {
    pool: PgPool,
    sealer: Arc<dyn SecretSealer>,
    clock: Arc<dyn Clock>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

const MAX_ATTEMPTS: i32 = 10;

impl MailDelivery {
    pub fn new(
        pool: PgPool,
        sealer: Arc<dyn SecretSealer>,
        clock: Arc<dyn Clock>,
        settings: &SmtpSettings,
    ) -> Result<Self, lettre::transport::smtp::Error> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Self {
            pool,
            sealer,
            clock,
            transport,
            from: settings.from.clone(),
        })
    }

    async fn send_one(&self, id: Uuid, recipient: &str, subject: &str, sealed: &str) -> Result<(), String> {
        let body = self
            .sealer
            .open(sealed, &body_context(id))
            .map_err(|_| "the body does not decrypt".to_owned())?;
        let to: Mailbox = recipient
            .parse()
            .map_err(|_| "the recipient is not an address".to_owned())?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| format!("the message cannot be built: {e}"))?;
        // Only the error's kind: an SMTP answer may quote the message.
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                "refused by the mail server".to_owned()
            } else {
                "the mail server is unavailable".to_owned()
            }
        })
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("delivering mail", error)
}

#[async_trait]
impl ScheduledJob for MailDelivery {
    fn name(&self) -> &'static str {
        "mail-delivery"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn run(&self) -> Result<usize, AppError> {
        let now = self.clock.now();
        let due = sqlx::query(
            "UPDATE email_outbox o SET leased_until = $1::timestamptz + interval '2 minutes'
             FROM (SELECT id FROM email_outbox
                   WHERE sent_at IS NULL AND sealed_body IS NOT NULL AND attempts < $2
                     AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                     AND (leased_until IS NULL OR leased_until < $1)
                   ORDER BY created_at LIMIT 20 FOR UPDATE SKIP LOCKED) due
             WHERE o.id = due.id
             RETURNING o.id, o.recipient, o.subject, o.sealed_body, o.attempts",
        )
        .bind(now)
        .bind(MAX_ATTEMPTS)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        let mut sent = 0;
        for row in &due {
            let id: Uuid = row.get("id");
            let attempts: i32 = row.get("attempts");
            let outcome = self
                .send_one(id, row.get("recipient"), row.get("subject"), row.get("sealed_body"))
                .await;
            let update = match &outcome {
                // Sent: the body, with its link, is erased.
                Ok(()) => sqlx::query(
                    "UPDATE email_outbox SET sent_at = $2, sealed_body = NULL, leased_until = NULL, last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(now),
                Err(reason) => {
                    let backoff = chrono::Duration::seconds(30 * 2i64.pow(attempts.clamp(0, 7) as u32));
                    tracing::warn!(mail_id = %id, attempt = attempts + 1, %reason, "mail delivery failed");
                    sqlx::query(
                        "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = $2, leased_until = NULL, last_error = $3
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(now + backoff)
                    .bind(reason)
                }
            };
            update.execute(&self.pool).await.map_err(failed)?;
            sent += usize::from(outcome.is_ok());
        }
        Ok(sent)
    }
}
