//! Sign-up, sign-in, sessions, invitations and password resets.

use crate::aggregates::{
    execute_command, execute_decision, load_any, load_in, stream_of, Decided, Loaded, DECISION_ATTEMPTS,
};
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::auth::{
    validate_password, AuthError, ClaimEmail, Email, EmailClaim, Organization, OrganizationCommand, Role, TokenPurpose,
    User, UserCommand,
};
use domain::{Aggregate, EventMetadata};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

const RESET_TOKEN_LIFETIME: Duration = Duration::hours(1);
const INVITATION_TOKEN_LIFETIME: Duration = Duration::days(7);

// ---------------------------------------------------------------- ports

#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: &str) -> Result<String, AppError>;
    /// Whether `password` matches; `Busy` when every hashing slot is taken.
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, AppError>;
    /// Spends the same effort as a real verification, so that unknown e-mails
    /// cannot be told apart from wrong passwords by timing.
    async fn verify_nothing(&self, password: &str) -> Result<(), AppError>;
}

/// Who a session token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
}

#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The token is a credential: never printed.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub trait SessionTokens: Send + Sync {
    fn issue(&self, session: &Session, now: DateTime<Utc>) -> Result<IssuedToken, AppError>;
    /// Rejects forged, malformed and expired (at `now`) tokens with an
    /// `Unauthorized` error; returns the session and when the token was issued.
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(Session, DateTime<Utc>), AppError>;
}

/// Random single-use secrets (reset and invitation tokens) and their stored digests.
pub trait SecretTokens: Send + Sync {
    fn generate(&self) -> String;
    fn digest(&self, token: &str) -> String;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub organization_id: Uuid,
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: OutgoingEmail) -> Result<(), AppError>;
}

/// Failed sign-in bookkeeping, shared by every server process.
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Counts a sign-in attempt against every key, atomically, before the
    /// password is checked; answers how long the caller must wait if the
    /// attempt is over a limit (it is then not checked at all).
    async fn attempt(&self, keys: &[String]) -> Result<Option<std::time::Duration>, AppError>;
    /// A successful attempt: the account's count is cleared, the client's is given back.
    async fn succeeded(&self, account_key: &str, client_key: &str) -> Result<(), AppError>;
}

/// Whether a user can sign in yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// A password is set.
    Active,
    /// Invited; no password yet.
    Invited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// The users read model.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    async fn list(&self, organization_id: Uuid, page: Page) -> Result<Vec<UserSummary>, AppError>;
    /// When the user last set a password: sessions issued before then are revoked.
    async fn password_set_at(&self, user_id: Uuid) -> Result<Option<DateTime<Utc>>, AppError>;
}

// ---------------------------------------------------------------- use cases

#[derive(Clone)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: String,
    pub organization_name: String,
}

/// The password is never printed.
impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("organization_name", &self.organization_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub email: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub organization_id: Uuid,
    pub organization_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub token: IssuedToken,
    pub profile: Profile,
}

pub struct AuthService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub passwords: Arc<dyn PasswordHasher>,
    pub sessions: Arc<dyn SessionTokens>,
    pub secrets: Arc<dyn SecretTokens>,
    pub mailer: Arc<dyn Mailer>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub directory: Arc<dyn UserDirectory>,
    /// Where links in e-mails point (the public app URL).
    pub public_url: String,
}

impl From<AuthError> for AppError {
    fn from(error: AuthError) -> Self {
        domain_error(error)
    }
}

pub(crate) fn domain_error(error: AuthError) -> AppError {
    let kind = match &error {
        AuthError::Invalid { .. } => ErrorKind::Validation,
        AuthError::EmailTaken | AuthError::OrganizationExists | AuthError::UserExists => ErrorKind::Conflict,
        AuthError::UserNotFound | AuthError::OrganizationNotFound => ErrorKind::NotFound,
        AuthError::InvalidResetToken => ErrorKind::Validation,
        AuthError::RoleNotAllowed { .. } => ErrorKind::Forbidden,
    };
    let code = match &error {
        AuthError::Invalid { .. } => "validation_failed",
        AuthError::EmailTaken => "email_taken",
        AuthError::OrganizationExists => "organization_exists",
        AuthError::UserExists => "user_exists",
        AuthError::UserNotFound | AuthError::OrganizationNotFound => "not_found",
        AuthError::InvalidResetToken => "invalid_reset_token",
        AuthError::RoleNotAllowed { .. } => "role_not_allowed",
    };
    let app = AppError::new(kind, code, error.to_string());
    match error {
        AuthError::Invalid { field, .. } => app.with_details(serde_json::json!({ "field": field })),
        _ => app,
    }
}

fn invalid_credentials() -> AppError {
    AppError::new(
        ErrorKind::Unauthorized,
        "invalid_credentials",
        "e-mail or password is incorrect",
    )
}

/// Events of the sign-up and password flows, where there may be no session yet.
fn user_metadata(actor: Option<Uuid>) -> EventMetadata {
    crate::aggregates::metadata(
        actor.map_or_else(|| "anonymous".to_owned(), |id| format!("user:{id}")),
        "api",
    )
}

fn email_stream(email: &Email, secrets: &dyn SecretTokens) -> domain::StreamId {
    // Keyed by digest so the address itself is not part of an identifier.
    stream_of::<EmailClaim>(secrets.digest(email.as_str()))
}

/// Reset tokens carry their user's id so confirmation needs no global index.
fn split_token(token: &str) -> Option<Uuid> {
    let (user, _) = token.split_once('.')?;
    Uuid::parse_str(user).ok()
}

impl AuthService {
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, input: Registration, client_ip: &str) -> Result<SignedIn, AppError> {
        self.count_attempt(&[format!("register:ip:{client_ip}")], "sign-up")
            .await?;
        let email = Email::parse(&input.email).map_err(domain_error)?;
        validate_password(&input.password).map_err(domain_error)?;
        let now = self.clock.now();
        let organization_id = Uuid::now_v7();
        let user_id = Uuid::now_v7();
        let password_hash = self.passwords.hash(&input.password).await?;
        let metadata = user_metadata(Some(user_id));

        let organization = Organization::decide(
            &OrganizationCommand::Create {
                name: input.organization_name,
                owner_user_id: user_id,
                now,
            },
            &Organization::default(),
        )
        .map_err(domain_error)?;
        let user = User::decide(
            &UserCommand::Register {
                organization_id,
                email: email.clone(),
                name: input.name,
                role: Role::Owner,
                password_hash: Some(password_hash),
                invited_by: None,
                now,
            },
            &User::default(),
        )
        .map_err(domain_error)?;
        let streams = vec![
            Loaded::<User>::fresh(stream_of::<User>(user_id)).append_of(&user, &metadata),
            Loaded::<Organization>::fresh(stream_of::<Organization>(organization_id))
                .append_of(&organization, &metadata),
        ];
        self.claim_and_append(&email, user_id, organization_id, &metadata, streams)
            .await?;

        let session = Session {
            user_id,
            organization_id,
            role: Role::Owner,
        };
        let token = self.sessions.issue(&session, now)?;
        let profile = self.profile(session).await?;
        Ok(SignedIn { token, profile })
    }

    /// Loads the claim stream of an address that must still be free.
    /// Claims the address for `user_id` and appends `streams` with the claim,
    /// atomically, through the one command path: if someone claims the address
    /// meanwhile, the decision is taken again and answers `email_taken`.
    async fn claim_and_append(
        &self,
        email: &Email,
        user_id: Uuid,
        organization_id: Uuid,
        metadata: &EventMetadata,
        streams: Vec<crate::event_store::StreamAppend>,
    ) -> Result<(), AppError> {
        let decide = || -> BoxFuture<'_, Result<Decided<()>, AppError>> {
            Box::pin(async {
                // The claim stream is global: one account per address across organizations.
                let claim =
                    load_any::<EmailClaim>(self.store.as_ref(), email_stream(email, self.secrets.as_ref())).await?;
                let claimed = EmailClaim::decide(&ClaimEmail { user_id }, &claim.state).map_err(domain_error)?;
                let mut appends = vec![claim.append_of(&claimed, metadata)];
                appends.extend(streams.iter().cloned());
                Ok(Decided::new(appends, ()))
            })
        };
        execute_decision(self.store.as_ref(), organization_id, DECISION_ATTEMPTS, decide).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(&self, email: &str, password: &str, client_ip: &str) -> Result<SignedIn, AppError> {
        let email_key = format!("login:email:{}", self.secrets.digest(&email.trim().to_lowercase()));
        let client_key = format!("login:ip:{client_ip}");
        // Counted before the (costly) check, so parallel guesses cannot outrun the limit.
        self.count_attempt(&[email_key.clone(), client_key.clone()], "sign-in")
            .await?;
        let Some(user) = self.find_by_email(email).await? else {
            self.passwords.verify_nothing(password).await?;
            return Err(invalid_credentials());
        };
        let verified = match &user.state.password_hash {
            Some(hash) => self.passwords.verify(password, hash).await?,
            None => {
                self.passwords.verify_nothing(password).await?;
                false
            }
        };
        if !verified {
            return Err(invalid_credentials());
        }
        self.throttle.succeeded(&email_key, &client_key).await?;
        let session = session_of(&user)?;
        let token = self.sessions.issue(&session, self.clock.now())?;
        let profile = self.profile(session).await?;
        Ok(SignedIn { token, profile })
    }

    async fn find_by_email(&self, raw_email: &str) -> Result<Option<Loaded<User>>, AppError> {
        let Ok(email) = Email::parse(raw_email) else {
            return Ok(None);
        };
        let claim = load_any::<EmailClaim>(self.store.as_ref(), email_stream(&email, self.secrets.as_ref())).await?;
        let Some(user_id) = claim.state.user_id else {
            return Ok(None);
        };
        let user = load_any::<User>(self.store.as_ref(), stream_of::<User>(user_id)).await?;
        Ok(user.exists().then_some(user))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %session.organization_id))]
    pub async fn profile(&self, session: Session) -> Result<Profile, AppError> {
        let user = load_in::<User>(
            self.store.as_ref(),
            session.organization_id,
            stream_of::<User>(session.user_id),
        )
        .await?;
        let organization = load_in::<Organization>(
            self.store.as_ref(),
            session.organization_id,
            stream_of::<Organization>(session.organization_id),
        )
        .await?;
        let (Some(email), Some(role)) = (user.state.email.clone(), user.state.role) else {
            return Err(AppError::new(
                ErrorKind::Unauthorized,
                "unauthorized",
                "the session's user no longer exists",
            ));
        };
        Ok(Profile {
            id: session.user_id,
            email: email.to_string(),
            name: user.state.name.clone(),
            role,
            organization_id: session.organization_id,
            organization_name: organization.state.settings.map(|s| s.name).unwrap_or_default(),
        })
    }

    /// Adds a user to the inviter's organization and e-mails them a link to set a password.
    #[tracing::instrument(skip_all)]
    pub async fn invite(&self, inviter: Session, input: Invitation) -> Result<UserSummary, AppError> {
        crate::permissions::authorize(&inviter, crate::permissions::Action::ManageUsers)?;
        let email = Email::parse(&input.email).map_err(domain_error)?;
        let now = self.clock.now();
        let user_id = Uuid::now_v7();
        let token = format!("{user_id}.{}", self.secrets.generate());
        let mut user_events = User::decide(
            &UserCommand::Register {
                organization_id: inviter.organization_id,
                email: email.clone(),
                name: input.name,
                role: input.role,
                password_hash: None,
                invited_by: Some((inviter.user_id, inviter.role)),
                now,
            },
            &User::default(),
        )
        .map_err(domain_error)?;
        let registered = User::fold(&user_events);
        user_events.extend(
            User::decide(
                &UserCommand::IssuePasswordToken {
                    token_hash: self.secrets.digest(&token),
                    purpose: TokenPurpose::Invitation,
                    expires_at: now + INVITATION_TOKEN_LIFETIME,
                    now,
                },
                &registered,
            )
            .map_err(domain_error)?,
        );
        let metadata = user_metadata(Some(inviter.user_id));
        let user = Loaded::<User>::fresh(stream_of::<User>(user_id)).append_of(&user_events, &metadata);
        self.claim_and_append(&email, user_id, inviter.organization_id, &metadata, vec![user])
            .await?;

        let inviter_profile = self.profile(inviter).await?;
        self.mailer
            .send(OutgoingEmail {
                organization_id: inviter.organization_id,
                to: email.to_string(),
                subject: format!("You are invited to {} on VoxReach", inviter_profile.organization_name),
                body: format!(
                    "{} invited you to join {} on VoxReach.\n\nChoose your password here (valid for 7 days):\n{}/accept-invitation?token={token}\n",
                    inviter_profile.name, inviter_profile.organization_name, self.public_url
                ),
            })
            .await?;
        Ok(UserSummary {
            id: user_id,
            email: email.to_string(),
            name: registered.name,
            role: input.role,
            status: UserStatus::Invited,
            invited_by: Some(inviter.user_id),
            created_at: now,
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self, session: Session, page: Page) -> Result<Vec<UserSummary>, AppError> {
        self.directory.list(session.organization_id, page).await
    }

    /// Always succeeds from the caller's point of view, so it reveals nothing
    /// about which addresses have accounts: once the attempt is counted, the
    /// look-up, the token and the mail happen after the answer, so known and
    /// unknown addresses answer in the same time.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(self: &Arc<Self>, raw_email: &str, client_ip: &str) -> Result<(), AppError> {
        // A malformed address says nothing about who has an account.
        Email::parse(raw_email).map_err(domain_error)?;
        let email_key = format!("reset:email:{}", self.secrets.digest(&raw_email.trim().to_lowercase()));
        self.count_attempt(&[email_key, format!("reset:ip:{client_ip}")], "password reset")
            .await?;
        let (service, email) = (self.clone(), raw_email.to_owned());
        let correlation_id = crate::correlation::current().unwrap_or_else(Uuid::now_v7);
        tokio::spawn(crate::correlation::scope(correlation_id, async move {
            if let Err(error) = service.send_reset_link(&email).await {
                tracing::error!(error = %error.report(), "sending a reset link failed");
            }
        }));
        Ok(())
    }

    async fn send_reset_link(&self, raw_email: &str) -> Result<(), AppError> {
        let Some(user) = self.find_by_email(raw_email).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let token = format!("{}.{}", user_id_of(&user)?, self.secrets.generate());
        let command = UserCommand::IssuePasswordToken {
            token_hash: self.secrets.digest(&token),
            purpose: TokenPurpose::Reset,
            expires_at: now + RESET_TOKEN_LIFETIME,
            now,
        };
        let organization_id = user.organization_id.unwrap_or_default();
        execute_command::<User>(
            self.store.as_ref(),
            organization_id,
            user.stream.clone(),
            &user_metadata(None),
            &command,
        )
        .await?;
        self.mailer
            .send(OutgoingEmail {
                organization_id,
                to: user.state.email.as_ref().map(Email::to_string).unwrap_or_default(),
                subject: "Reset your VoxReach password".into(),
                body: format!(
                    "Someone asked to reset the password of this VoxReach account. If it was you, choose a new password here (valid for 1 hour):\n{}/reset-password?token={token}\n\nIf it was not you, ignore this message.\n",
                    self.public_url
                ),
            })
            .await
    }

    /// Sets a new password with a reset or invitation token; the token is then spent.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> Result<(), AppError> {
        validate_password(new_password).map_err(domain_error)?;
        let invalid = || domain_error(AuthError::InvalidResetToken);
        let user_id = split_token(token).ok_or_else(invalid)?;
        let user = load_any::<User>(self.store.as_ref(), stream_of::<User>(user_id)).await?;
        let token_hash = self.secrets.digest(token);
        let now = self.clock.now();
        // Check the token before spending effort on hashing.
        User::decide(
            &UserCommand::SetPasswordWithToken {
                token_hash: token_hash.clone(),
                password_hash: String::new(),
                now,
            },
            &user.state,
        )
        .map_err(domain_error)?;
        let password_hash = self.passwords.hash(new_password).await?;
        let command = UserCommand::SetPasswordWithToken {
            token_hash,
            password_hash,
            now,
        };
        // A concurrent use of the same token wins; taken again, this decision finds it spent.
        execute_command::<User>(
            self.store.as_ref(),
            user.organization_id.unwrap_or_default(),
            user.stream,
            &user_metadata(Some(user_id)),
            &command,
        )
        .await
        .map(|_| ())
    }

    /// Counts an attempt of `what` against `keys`; 429 when one is over its limit.
    async fn count_attempt(&self, keys: &[String], what: &str) -> Result<(), AppError> {
        match self.throttle.attempt(keys).await? {
            None => Ok(()),
            Some(wait) => Err(AppError::new(
                ErrorKind::TooManyRequests { retry_after: wait },
                "too_many_attempts",
                format!("too many {what} attempts; try again later"),
            )),
        }
    }

    /// The session a token stands for, unless it was issued before its user
    /// last set a password (a reset or a change revokes every earlier session).
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, token: &str) -> Result<Session, AppError> {
        let (session, issued_at) = self.sessions.verify(token, self.clock.now())?;
        if let Some(set_at) = self.directory.password_set_at(session.user_id).await? {
            if issued_at.timestamp() < set_at.timestamp() {
                return Err(AppError::new(
                    ErrorKind::Unauthorized,
                    "unauthorized",
                    "the session ended when the password was changed; sign in again",
                ));
            }
        }
        Ok(session)
    }
}

fn user_id_of(user: &Loaded<User>) -> Result<Uuid, AppError> {
    user.stream
        .to_string()
        .strip_prefix("user-")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::internal("reading a user id", user.stream.to_string()))
}

fn session_of(user: &Loaded<User>) -> Result<Session, AppError> {
    match (user.organization_id, user.state.role) {
        (Some(organization_id), Some(role)) => Ok(Session {
            user_id: user_id_of(user)?,
            organization_id,
            role,
        }),
        _ => Err(invalid_credentials()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let registration = Registration {
            email: "a@example.com".into(),
            password: "hunter2 hunter2".into(),
            name: "A".into(),
            organization_name: "O".into(),
        };
        assert!(!format!("{registration:?}").contains("hunter2"));
        let token = IssuedToken {
            token: "eyJ.secret.sig".into(),
            expires_at: "2026-11-24T12:00:00Z".parse().unwrap(),
        };
        assert!(!format!("{token:?}").contains("secret"));
    }
}
