//! Organizations, users, roles, sign-up, invitations and password resets.

use crate::aggregate::Aggregate;
use crate::domain_events;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("this organization already exists")]
    OrganizationExists,
    #[error("organization not found")]
    OrganizationNotFound,
    #[error("this user already exists")]
    UserExists,
    #[error("user not found")]
    UserNotFound,
    #[error("the reset token is invalid, expired or already used")]
    InvalidResetToken,
    #[error("a {inviter} may not invite a user with role {invitee}")]
    RoleNotAllowed { inviter: Role, invitee: Role },
}

/// Longest e-mail address (RFC 5321).
pub const EMAIL_CHARS: usize = 254;
/// Shortest and longest password.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=128;
/// Longest person or organization name.
pub const NAME_CHARS: usize = 200;

/// A normalized (trimmed, lower-cased) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let normalized = raw.trim().to_lowercase();
        let invalid = |reason: &str| AuthError::Invalid {
            field: "email",
            reason: reason.to_owned(),
        };
        if normalized.chars().count() > EMAIL_CHARS {
            return Err(invalid(&format!("must be at most {EMAIL_CHARS} characters")));
        }
        let (local, domain) = normalized.split_once('@').ok_or_else(|| invalid("must contain @"))?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if local.is_empty() || local.len() > 64 || local.contains(char::is_whitespace) {
            return Err(invalid("has an invalid local part"));
        }
        if !domain_ok {
            return Err(invalid("has an invalid domain"));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = AuthError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Passwords are checked before hashing; the upper bound keeps hashing cheap to refuse.
pub fn validate_password(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if !PASSWORD_CHARS.contains(&chars) {
        return Err(AuthError::Invalid {
            field: "password",
            reason: format!(
                "must be between {} and {} characters",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        });
    }
    Ok(())
}

/// A required, trimmed, bounded display name.
pub fn validate_name(field: &'static str, value: &str) -> Result<String, AuthError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > NAME_CHARS {
        return Err(AuthError::Invalid {
            field,
            reason: format!("must be between 1 and {NAME_CHARS} characters"),
        });
    }
    Ok(trimmed.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Owners invite anyone; admins invite admins and members; members invite nobody.
    pub fn may_invite(self, invitee: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => invitee != Role::Owner,
            Role::Member => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(AuthError::Invalid {
                field: "role",
                reason: format!("must be owner, admin or member, not {other:?}"),
            }),
        }
    }
}

// ---------------------------------------------------------------- organization

domain_events! {
    pub enum OrganizationEvent for Organization in "organization" {
        /// A customer organization (tenant) was created by its first owner at sign-up. Payload: name,
        /// ownerUserId, createdAt.
        #[version(1)]
        OrganizationCreated {
            name: String,
            owner_user_id: Uuid,
            created_at: DateTime<Utc>,
        },
        /// An owner or admin changed the organization's settings; carries all of them. Before the first
        /// change an organization is in America/New_York and counts in USD. Payload: name, timezone (IANA), currency
        /// (ISO 4217), changedBy, at.
        #[version(1)]
        OrganizationSettingsChanged {
            name: String,
            timezone: TimeZone,
            currency: Currency,
            changed_by: Uuid,
            at: DateTime<Utc>,
        },
    }
}

/// An ISO 4217 currency (`USD`), parsed when it enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub const USD: Currency = Currency(iso_currency::Currency::USD);

    pub fn code(self) -> &'static str {
        self.0.code()
    }
}

impl TryFrom<String> for Currency {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        iso_currency::Currency::from_code(raw.trim())
            .map(Currency)
            .ok_or_else(|| format!("{raw:?} is not an ISO 4217 currency code like USD"))
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.code().to_owned()
    }
}

/// The settings every organization has.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationSettings {
    pub name: String,
    pub timezone: TimeZone,
    pub currency: Currency,
}

impl OrganizationSettings {
    /// Where an organization starts, counting in USD.
    pub const DEFAULT_TIMEZONE: TimeZone = TimeZone::DEFAULT;
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationCommand {
    Create {
        name: String,
        owner_user_id: Uuid,
        now: DateTime<Utc>,
    },
    /// Changes the given settings, keeping the others.
    ChangeSettings {
        name: Option<String>,
        timezone: Option<TimeZone>,
        currency: Option<Currency>,
        changed_by: Uuid,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Organization {
    pub settings: Option<OrganizationSettings>,
}

impl Aggregate for Organization {
    type Command = OrganizationCommand;
    type Error = AuthError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            OrganizationCommand::Create {
                name,
                owner_user_id,
                now,
            } => {
                if state.settings.is_some() {
                    return Err(AuthError::OrganizationExists);
                }
                Ok(vec![OrganizationEvent::OrganizationCreated {
                    name: validate_name("organizationName", name)?,
                    owner_user_id: *owner_user_id,
                    created_at: *now,
                }])
            }
            OrganizationCommand::ChangeSettings {
                name,
                timezone,
                currency,
                changed_by,
                now,
            } => {
                let current = state.settings.as_ref().ok_or(AuthError::OrganizationNotFound)?;
                let changed = OrganizationSettings {
                    name: match name {
                        Some(name) => validate_name("name", name)?,
                        None => current.name.clone(),
                    },
                    timezone: timezone.unwrap_or(current.timezone),
                    currency: currency.unwrap_or(current.currency),
                };
                if &changed == current {
                    return Ok(vec![]);
                }
                Ok(vec![OrganizationEvent::OrganizationSettingsChanged {
                    name: changed.name,
                    timezone: changed.timezone,
                    currency: changed.currency,
                    changed_by: *changed_by,
                    at: *now,
                }])
            }
        }
    }

    fn evolve(self, event: &Self::Event) -> Self {
        let settings = match event {
            OrganizationEvent::OrganizationCreated { name, .. } => OrganizationSettings {
                name: name.clone(),
                timezone: OrganizationSettings::DEFAULT_TIMEZONE,
                currency: Currency::USD,
            },
            OrganizationEvent::OrganizationSettingsChanged {
                name,
                timezone,
                currency,
                ..
            } => OrganizationSettings {
                name: name.clone(),
                timezone: *timezone,
                currency: *currency,
            },
        };
        Organization {
            settings: Some(settings),
        }
    }
}

// ---------------------------------------------------------------- e-mail claim

domain_events! {
    pub enum EmailClaimEvent for EmailClaim in "user-email" {
        /// An e-mail address (normalized, stream keyed by its SHA-256) was claimed by a user; guarantees one
        /// account per address across all organizations. Payload: userId.
        #[version(1)]
        EmailClaimed { user_id: Uuid },
    }
}

/// One stream per e-mail address: its first event makes the address taken,
/// across every organization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailClaim {
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimEmail {
    pub user_id: Uuid,
}

impl Aggregate for EmailClaim {
    type Command = ClaimEmail;
    type Error = AuthError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        if state.user_id.is_some() {
            return Err(AuthError::EmailTaken);
        }
        Ok(vec![EmailClaimEvent::EmailClaimed {
            user_id: command.user_id,
        }])
    }

    fn evolve(self, event: &Self::Event) -> Self {
        match event {
            EmailClaimEvent::EmailClaimed { user_id } => EmailClaim {
                user_id: Some(*user_id),
            },
        }
    }
}

// ---------------------------------------------------------------- user

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenPurpose {
    Reset,
    Invitation,
}

domain_events! {
    pub enum UserEvent for User in "user" {
        /// A user joined an organization, either by sign-up (owner, with a password) or by invitation (no
        /// password until the invitation is accepted). Payload: email, name, role, passwordHash (argon2,
        /// optional), invitedBy (optional), registeredAt.
        #[version(1)]
        UserRegistered {
            organization_id: Uuid,
            email: Email,
            name: String,
            role: Role,
            password_hash: Option<String>,
            invited_by: Option<Uuid>,
            registered_at: DateTime<Utc>,
        },
        /// A single-use token to set the password was issued (purpose reset or invitation); only its SHA-256 is
        /// stored. Supersedes earlier unused tokens. Payload: tokenHash, purpose, expiresAt, requestedAt.
        #[version(1)]
        PasswordResetRequested {
            token_hash: String,
            purpose: TokenPurpose,
            expires_at: DateTime<Utc>,
            requested_at: DateTime<Utc>,
        },
        /// The user's password was set through a reset or invitation token, which is consumed. Payload:
        /// passwordHash, tokenHash, changedAt.
        #[version(1)]
        PasswordChanged {
            password_hash: String,
            token_hash: String,
            changed_at: DateTime<Utc>,
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingToken {
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub organization_id: Option<Uuid>,
    pub email: Option<Email>,
    pub name: String,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    /// The only token that may still set the password: a new request replaces it, use consumes it.
    pub pending_token: Option<PendingToken>,
}

impl User {
    pub fn exists(&self) -> bool {
        self.organization_id.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Register {
        organization_id: Uuid,
        email: Email,
        name: String,
        role: Role,
        password_hash: Option<String>,
        invited_by: Option<(Uuid, Role)>,
        now: DateTime<Utc>,
    },
    IssuePasswordToken {
        token_hash: String,
        purpose: TokenPurpose,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    SetPasswordWithToken {
        token_hash: String,
        password_hash: String,
        now: DateTime<Utc>,
    },
}

impl Aggregate for User {
    type Command = UserCommand;
    type Error = AuthError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            UserCommand::Register {
                organization_id,
                email,
                name,
                role,
                password_hash,
                invited_by,
                now,
            } => {
                if state.exists() {
                    return Err(AuthError::UserExists);
                }
                if let Some((_, inviter_role)) = invited_by {
                    if !inviter_role.may_invite(*role) {
                        return Err(AuthError::RoleNotAllowed {
                            inviter: *inviter_role,
                            invitee: *role,
                        });
                    }
                }
                Ok(vec![UserEvent::UserRegistered {
                    organization_id: *organization_id,
                    email: email.clone(),
                    name: validate_name("name", name)?,
                    role: *role,
                    password_hash: password_hash.clone(),
                    invited_by: invited_by.map(|(id, _)| id),
                    registered_at: *now,
                }])
            }
            UserCommand::IssuePasswordToken {
                token_hash,
                purpose,
                expires_at,
                now,
            } => {
                if !state.exists() {
                    return Err(AuthError::UserNotFound);
                }
                Ok(vec![UserEvent::PasswordResetRequested {
                    token_hash: token_hash.clone(),
                    purpose: *purpose,
                    expires_at: *expires_at,
                    requested_at: *now,
                }])
            }
            UserCommand::SetPasswordWithToken {
                token_hash,
                password_hash,
                now,
            } => match &state.pending_token {
                Some(pending) if pending.token_hash == *token_hash && pending.expires_at > *now => {
                    Ok(vec![UserEvent::PasswordChanged {
                        password_hash: password_hash.clone(),
                        token_hash: token_hash.clone(),
                        changed_at: *now,
                    }])
                }
                _ => Err(AuthError::InvalidResetToken),
            },
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            UserEvent::UserRegistered {
                organization_id,
                email,
                name,
                role,
                password_hash,
                ..
            } => {
                self.organization_id = Some(*organization_id);
                self.email = Some(email.clone());
                self.name = name.clone();
                self.role = Some(*role);
                self.password_hash = password_hash.clone();
            }
            UserEvent::PasswordResetRequested {
                token_hash, expires_at, ..
            } => {
                self.pending_token = Some(PendingToken {
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                });
            }
            UserEvent::PasswordChanged { password_hash, .. } => {
                self.password_hash = Some(password_hash.clone());
                self.pending_token = None;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::{given, given_state, Then};
    use crate::events::{current_version, DomainEvent};
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn register(role: Role, invited_by: Option<(Uuid, Role)>) -> UserCommand {
        UserCommand::Register {
            organization_id: Uuid::nil(),
            email: Email::parse("a@example.com").unwrap(),
            name: "Ada".into(),
            role,
            password_hash: Some("hash".into()),
            invited_by,
            now: now(),
        }
    }

    fn registered(role: Role) -> User {
        given::<User>([]).when(register(role, None)).state_after()
    }

    fn issue(user: User, hash: &str, expires_in: Duration) -> User {
        given_state(user)
            .when(UserCommand::IssuePasswordToken {
                token_hash: hash.into(),
                purpose: TokenPurpose::Reset,
                expires_at: now() + expires_in,
                now: now(),
            })
            .state_after()
    }

    fn set_password(user: &User, hash: &str, at: DateTime<Utc>) -> Then<User> {
        given_state(user.clone()).when(UserCommand::SetPasswordWithToken {
            token_hash: hash.into(),
            password_hash: "new".into(),
            now: at,
        })
    }

    #[test]
    fn emails_are_normalized_and_validated() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a@nodot",
            "a b@example.com",
            "a@exa mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_organization_is_created_once() {
        let created = OrganizationEvent::OrganizationCreated {
            name: "Acme".into(),
            owner_user_id: Uuid::nil(),
            created_at: now(),
        };
        let create = || OrganizationCommand::Create {
            name: "Acme".into(),
            owner_user_id: Uuid::nil(),
            now: now(),
        };
        given::<Organization>([]).when(create()).then([created.clone()]);
        given::<Organization>([created])
            .when(create())
            .then_error(AuthError::OrganizationExists);
    }

    #[test]
    fn a_token_is_single_use_and_expires() {
        let user = issue(registered(Role::Owner), "t1", Duration::hours(1));
        set_password(&user, "t1", now() + Duration::hours(2)).then_error(AuthError::InvalidResetToken);
        set_password(&user, "wrong", now()).then_error(AuthError::InvalidResetToken);
        let user = set_password(&user, "t1", now()).state_after();
        assert_eq!(user.password_hash.as_deref(), Some("new"));
        set_password(&user, "t1", now()).then_error(AuthError::InvalidResetToken);
    }

    #[test]
    fn a_new_token_supersedes_the_previous_one() {
        let user = issue(registered(Role::Member), "old", Duration::hours(1));
        let user = issue(user, "new", Duration::hours(1));
        set_password(&user, "old", now()).then_error(AuthError::InvalidResetToken);
        set_password(&user, "new", now()).state_after();
    }

    #[test]
    fn roles_bound_who_may_invite_whom() {
        assert!(Role::Owner.may_invite(Role::Owner));
        assert!(Role::Admin.may_invite(Role::Member));
        assert!(!Role::Admin.may_invite(Role::Owner));
        assert!(!Role::Member.may_invite(Role::Member));
        assert!(matches!(
            given::<User>([])
                .when(register(Role::Owner, Some((Uuid::new_v4(), Role::Admin))))
                .error(),
            AuthError::RoleNotAllowed { .. }
        ));
    }

    #[test]
    fn a_user_or_email_or_organization_exists_once() {
        given_state(registered(Role::Owner))
            .when(register(Role::Owner, None))
            .then_error(AuthError::UserExists);
        given::<EmailClaim>([EmailClaimEvent::EmailClaimed {
            user_id: Uuid::new_v4(),
        }])
        .when(ClaimEmail {
            user_id: Uuid::new_v4(),
        })
        .then_error(AuthError::EmailTaken);
    }

    #[test]
    fn a_user_registers_with_a_valid_name_and_is_issued_tokens_once_registered() {
        let inviter = Uuid::new_v4();
        given::<User>([])
            .when(register(Role::Member, Some((inviter, Role::Admin))))
            .then([UserEvent::UserRegistered {
                organization_id: Uuid::nil(),
                email: Email::parse("a@example.com").unwrap(),
                name: "Ada".into(),
                role: Role::Member,
                password_hash: Some("hash".into()),
                invited_by: Some(inviter),
                registered_at: now(),
            }]);
        assert!(matches!(
            given::<User>([])
                .when(UserCommand::Register {
                    organization_id: Uuid::nil(),
                    email: Email::parse("a@example.com").unwrap(),
                    name: " ".into(),
                    role: Role::Owner,
                    password_hash: None,
                    invited_by: None,
                    now: now(),
                })
                .error(),
            AuthError::Invalid { .. }
        ));
        given::<User>([])
            .when(UserCommand::IssuePasswordToken {
                token_hash: "t".into(),
                purpose: TokenPurpose::Invitation,
                expires_at: now(),
                now: now(),
            })
            .then_error(AuthError::UserNotFound);
    }

    #[test]
    fn an_email_is_claimed_by_its_first_user() {
        let user_id = Uuid::new_v4();
        given::<EmailClaim>([])
            .when(ClaimEmail { user_id })
            .then([EmailClaimEvent::EmailClaimed { user_id }]);
    }

    #[test]
    fn every_auth_event_is_catalogued_and_round_trips() {
        use crate::event_log::EventMetadata;
        let samples: Vec<UserEvent> = vec![
            UserEvent::UserRegistered {
                organization_id: Uuid::new_v4(),
                email: Email::parse("a@example.com").unwrap(),
                name: "Ada".into(),
                role: Role::Admin,
                password_hash: None,
                invited_by: Some(Uuid::new_v4()),
                registered_at: now(),
            },
            UserEvent::PasswordResetRequested {
                token_hash: "h".into(),
                purpose: TokenPurpose::Invitation,
                expires_at: now(),
                requested_at: now(),
            },
            UserEvent::PasswordChanged {
                password_hash: "p".into(),
                token_hash: "h".into(),
                changed_at: now(),
            },
        ];
        for event in samples {
            let stored = event.to_new_event(&EventMetadata::default());
            assert_eq!(Some(stored.event_version), current_version(&stored.event_type));
            let back = UserEvent::decode(&stored.event_type, stored.event_version, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
        assert!(current_version("OrganizationCreated").is_some());
        assert!(current_version("EmailClaimed").is_some());
    }
}
