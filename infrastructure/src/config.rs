//! Configuration from environment variables, each malformed value named in the error.

use crate::oauth::AppCredentials;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable} is malformed: {reason}")]
    Malformed { variable: &'static str, reason: String },
    #[error("with DATABASE_URL set, {} must be set too (the embedded database keeps generated keys in its data directory; an external one cannot). Generate them with: {}", .variables.join(", "), how_to_generate(.variables))]
    Missing { variables: Vec<&'static str> },
    #[error("could not keep generated keys in {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
}

/// Settings read from the environment before any key is resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    pub bind: SocketAddr,
    pub jwt_secret: Option<Vec<u8>>,
    pub encryption_key: Option<[u8; 32]>,
    pub public_url: url::Url,
    pub vapi: VapiSettings,
    /// Origins Slack webhook URLs may point at (`SLACK_WEBHOOK_ORIGINS`).
    pub slack_origins: Vec<url::Origin>,
    /// `VOXREACH_CALLS_PER_MINUTE`, `VOXREACH_NUMBERS_PER_DAY` (per organization).
    pub quotas: application::quotas::QuotaPolicy,
    /// `SMTP_URL` and `MAIL_FROM`: both or neither.
    pub smtp: Option<crate::mailer::SmtpSettings>,
    /// `VOXREACH_UPLOAD_LIMIT_BYTES`: largest contact file accepted.
    pub upload_limit_bytes: usize,
    /// Google calendars (`GOOGLE_*`), when configured.
    pub google: Option<OAuthAppSettings>,
    /// Outlook calendars through Microsoft Graph (`MICROSOFT_*`), when configured.
    pub microsoft: Option<OAuthAppSettings>,
    /// `CALENDLY_API_BASE`: Calendly's API.
    pub calendly_api_base: String,
    /// HubSpot (`HUBSPOT_*`), when configured.
    pub hubspot: Option<OAuthAppSettings>,
    /// `HUBSPOT_REQUESTS_PER_TEN_SECONDS`: the portal's request budget (100 on free and starter plans, up to 190).
    pub hubspot_requests_per_ten_seconds: u32,
    /// Salesforce (`SALESFORCE_*`), when configured.
    pub salesforce: Option<SalesforceAppSettings>,
    /// Pipedrive (`PIPEDRIVE_*`), when configured.
    pub pipedrive: Option<PipedriveAppSettings>,
}

/// Salesforce's connected app: each org's API is at the `instance_url` its
/// grant names, under `api_hosts`.
#[derive(Clone)]
pub struct SalesforceAppSettings {
    pub client_id: String,
    pub client_secret: String,
    /// `SALESFORCE_LOGIN_URL`: `https://login.salesforce.com`, or `https://test.salesforce.com` for sandboxes.
    pub login_url: String,
    /// `SALESFORCE_API_HOSTS`: domains an `instance_url` may be under (comma-separated).
    pub api_hosts: String,
    /// `SALESFORCE_BUDGET_SHARE`: the share of an org's daily API budget we use at most (0 < share ≤ 1).
    pub budget_share: f64,
}

impl std::fmt::Debug for SalesforceAppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceAppSettings")
            .field("client_id", &self.client_id)
            .field("login_url", &self.login_url)
            .field("api_hosts", &self.api_hosts)
            .field("budget_share", &self.budget_share)
            .finish_non_exhaustive()
    }
}

/// Pipedrive's app: each company's API is at the `api_domain` its grant
/// names, under `api_hosts`.
#[derive(Clone)]
pub struct PipedriveAppSettings {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: String,
    /// `PIPEDRIVE_API_HOSTS`: domains an `api_domain` may be under (comma-separated).
    pub api_hosts: String,
}

impl std::fmt::Debug for PipedriveAppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveAppSettings")
            .field("client_id", &self.client_id)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("revoke_url", &self.revoke_url)
            .field("api_hosts", &self.api_hosts)
            .finish_non_exhaustive()
    }
}

/// One provider's OAuth application and endpoints (calendars, CRMs).
#[derive(Clone)]
pub struct OAuthAppSettings {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub api_base: String,
    /// Where a grant is revoked, for providers that have such an endpoint.
    pub revoke_url: Option<String>,
}

impl std::fmt::Debug for OAuthAppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthAppSettings")
            .field("client_id", &self.client_id)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("api_base", &self.api_base)
            .field("revoke_url", &self.revoke_url)
            .finish_non_exhaustive()
    }
}

/// The environment variables of one provider, and its real endpoints.
struct ProviderVariables {
    client_id: &'static str,
    client_secret: &'static str,
    urls: [(&'static str, &'static str); 3],
    revoke_url: Option<(&'static str, &'static str)>,
}

const GOOGLE: ProviderVariables = ProviderVariables {
    client_id: "GOOGLE_CLIENT_ID",
    client_secret: "GOOGLE_CLIENT_SECRET",
    urls: [
        ("GOOGLE_AUTH_URL", crate::google_calendar::DEFAULT_AUTH_URL),
        ("GOOGLE_TOKEN_URL", crate::google_calendar::DEFAULT_TOKEN_URL),
        ("GOOGLE_API_BASE", crate::google_calendar::DEFAULT_API_BASE),
    ],
    revoke_url: Some(("GOOGLE_REVOKE_URL", crate::google_calendar::DEFAULT_REVOKE_URL)),
};

const HUBSPOT: ProviderVariables = ProviderVariables {
    client_id: "HUBSPOT_CLIENT_ID",
    client_secret: "HUBSPOT_CLIENT_SECRET",
    urls: [
        ("HUBSPOT_AUTH_URL", crate::hubspot::DEFAULT_AUTH_URL),
        ("HUBSPOT_TOKEN_URL", crate::hubspot::DEFAULT_TOKEN_URL),
        ("HUBSPOT_API_BASE", crate::hubspot::DEFAULT_API_BASE),
    ],
    revoke_url: None,
};

const MICROSOFT: ProviderVariables = ProviderVariables {
    client_id: "MICROSOFT_CLIENT_ID",
    client_secret: "MICROSOFT_CLIENT_SECRET",
    urls: [
        ("MICROSOFT_AUTH_URL", crate::outlook_calendar::DEFAULT_AUTH_URL),
        ("MICROSOFT_TOKEN_URL", crate::outlook_calendar::DEFAULT_TOKEN_URL),
        ("MICROSOFT_API_BASE", crate::outlook_calendar::DEFAULT_API_BASE),
    ],
    revoke_url: None,
};

/// A client id and secret: both set, or neither (the provider is not configured).
fn client_credentials(
    non_empty: &dyn Fn(&str) -> Option<String>,
    id_variable: &'static str,
    secret_variable: &'static str,
) -> Result<Option<(String, String)>, ConfigError> {
    match (non_empty(id_variable), non_empty(secret_variable)) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, Some(_)) => Err(ConfigError::Malformed {
            variable: id_variable,
            reason: format!("must be set with {secret_variable}"),
        }),
        (Some(_), None) => Err(ConfigError::Malformed {
            variable: secret_variable,
            reason: format!("must be set with {id_variable}"),
        }),
    }
}

/// An http(s) URL setting, its real value unless given; no trailing slash.
fn http_url(
    non_empty: &dyn Fn(&str) -> Option<String>,
    (variable, default): &(&'static str, &'static str),
) -> Result<String, ConfigError> {
    let raw = non_empty(variable).unwrap_or_else(|| (*default).to_owned());
    url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|_| raw.trim_end_matches('/').to_owned())
        .ok_or_else(|| ConfigError::Malformed {
            variable,
            reason: format!("{raw:?} is not an http(s) URL"),
        })
}

/// A provider's settings: its client id and secret together (or neither: not
/// configured), and its URLs (the real ones unless given).
fn provider_settings(
    non_empty: &dyn Fn(&str) -> Option<String>,
    variables: &ProviderVariables,
) -> Result<Option<OAuthAppSettings>, ConfigError> {
    let Some((client_id, client_secret)) = client_credentials(non_empty, variables.client_id, variables.client_secret)?
    else {
        return Ok(None);
    };
    let url = |setting: &(&'static str, &'static str)| http_url(non_empty, setting);
    let [auth_url, token_url, api_base] = &variables.urls;
    Ok(Some(OAuthAppSettings {
        client_id,
        client_secret,
        auth_url: url(auth_url)?,
        token_url: url(token_url)?,
        api_base: url(api_base)?,
        revoke_url: variables.revoke_url.as_ref().map(url).transpose()?,
    }))
}

fn salesforce_settings(
    non_empty: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SalesforceAppSettings>, ConfigError> {
    let Some((client_id, client_secret)) =
        client_credentials(non_empty, "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET")?
    else {
        return Ok(None);
    };
    let budget_share = match non_empty("SALESFORCE_BUDGET_SHARE") {
        None => crate::salesforce::DEFAULT_BUDGET_SHARE,
        Some(raw) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|share| *share > 0.0 && *share <= 1.0)
            .ok_or_else(|| ConfigError::Malformed {
                variable: "SALESFORCE_BUDGET_SHARE",
                reason: format!("{raw:?} is not a share above 0 and at most 1 (0.8 is 80%)"),
            })?,
    };
    Ok(Some(SalesforceAppSettings {
        client_id,
        client_secret,
        login_url: http_url(
            non_empty,
            &("SALESFORCE_LOGIN_URL", crate::salesforce::DEFAULT_LOGIN_URL),
        )?,
        api_hosts: non_empty("SALESFORCE_API_HOSTS").unwrap_or_else(|| crate::salesforce::DEFAULT_API_HOSTS.into()),
        budget_share,
    }))
}

fn pipedrive_settings(non_empty: &dyn Fn(&str) -> Option<String>) -> Result<Option<PipedriveAppSettings>, ConfigError> {
    let Some((client_id, client_secret)) =
        client_credentials(non_empty, "PIPEDRIVE_CLIENT_ID", "PIPEDRIVE_CLIENT_SECRET")?
    else {
        return Ok(None);
    };
    Ok(Some(PipedriveAppSettings {
        client_id,
        client_secret,
        auth_url: http_url(non_empty, &("PIPEDRIVE_AUTH_URL", crate::pipedrive::DEFAULT_AUTH_URL))?,
        token_url: http_url(non_empty, &("PIPEDRIVE_TOKEN_URL", crate::pipedrive::DEFAULT_TOKEN_URL))?,
        revoke_url: http_url(
            non_empty,
            &("PIPEDRIVE_REVOKE_URL", crate::pipedrive::DEFAULT_REVOKE_URL),
        )?,
        api_hosts: non_empty("PIPEDRIVE_API_HOSTS").unwrap_or_else(|| crate::pipedrive::DEFAULT_API_HOSTS.into()),
    }))
}

/// The calendar providers these settings configure, Google and Outlook
/// signing in through `<public base>/api/integrations/calendars/callback`,
/// Calendly (always available: it connects with a user's token) at `calendly_api_base`.
pub fn calendar_providers(
    google: Option<&OAuthAppSettings>,
    microsoft: Option<&OAuthAppSettings>,
    calendly_api_base: &str,
    public_base: &str,
) -> Result<application::calendar::CalendarProviders, String> {
    use application::calendar::CalendarConnector;
    use std::sync::Arc;
    let redirect_url = format!("{public_base}/api/integrations/calendars/callback");
    let oauth = |mut settings: crate::oauth::OAuthSettings, provider: &OAuthAppSettings| {
        settings.auth_url = provider.auth_url.clone();
        settings.token_url = provider.token_url.clone();
        crate::oauth::OAuth2Client::new(settings).map_err(|e| e.to_string())
    };
    let google = google
        .map(|g| -> Result<CalendarConnector, String> {
            let settings = crate::google_calendar::oauth_settings(AppCredentials::new(
                &g.client_id,
                &g.client_secret,
                &redirect_url,
            ));
            let revoke_url = g
                .revoke_url
                .as_deref()
                .unwrap_or(crate::google_calendar::DEFAULT_REVOKE_URL);
            Ok(CalendarConnector {
                oauth: Arc::new(oauth(settings, g)?),
                api: Arc::new(
                    crate::google_calendar::GoogleCalendar::new(&g.api_base, revoke_url).map_err(|e| e.to_string())?,
                ),
            })
        })
        .transpose()?;
    let outlook = microsoft
        .map(|m| -> Result<CalendarConnector, String> {
            let settings = crate::outlook_calendar::oauth_settings(AppCredentials::new(
                &m.client_id,
                &m.client_secret,
                &redirect_url,
            ));
            Ok(CalendarConnector {
                oauth: Arc::new(oauth(settings, m)?),
                api: Arc::new(crate::outlook_calendar::OutlookCalendar::new(&m.api_base).map_err(|e| e.to_string())?),
            })
        })
        .transpose()?;
    let calendly = crate::calendly::CalendlyClient::new(calendly_api_base).map_err(|e| e.to_string())?;
    Ok(application::calendar::CalendarProviders {
        google,
        outlook,
        calendly: Some(Arc::new(calendly)),
    })
}

/// Slack's incoming webhooks.
pub fn default_slack_origin() -> url::Origin {
    url::Url::parse("https://hooks.slack.com")
        .expect("a valid URL")
        .origin()
}

#[derive(Clone)]
pub struct VapiSettings {
    /// Unset: agents and numbers are kept but not pushed to Vapi (their sync stays pending).
    pub api_key: Option<String>,
    pub base_url: String,
    pub webhook_secret: Option<String>,
    /// How server messages prove they come from Vapi.
    pub webhook_auth: crate::vapi_messages::WebhookAuthModes,
}

impl std::fmt::Debug for VapiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapiSettings")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Keys ready to use.
#[derive(Clone)]
pub struct Keys {
    pub jwt_secret: Vec<u8>,
    pub encryption_key: [u8; 32],
    /// Shared secret Vapi sends with every server message.
    pub vapi_webhook_secret: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Settings {
    /// Reads `DATABASE_URL`, `VOXREACH_BIND`, `VOXREACH_JWT_SECRET`,
    /// `VOXREACH_ENCRYPTION_KEY`, `VOXREACH_PUBLIC_URL` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = non_empty("DATABASE_URL");
        if let Some(url) = &database_url {
            url::Url::parse(url).map_err(|e| ConfigError::Malformed {
                variable: "DATABASE_URL",
                reason: e.to_string(),
            })?;
        }
        let bind_raw = non_empty("VOXREACH_BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_raw.parse().map_err(|_| ConfigError::Malformed {
            variable: "VOXREACH_BIND",
            reason: format!("{bind_raw:?} is not an address like 127.0.0.1:8080"),
        })?;
        let jwt_secret = non_empty("VOXREACH_JWT_SECRET").map(|s| s.into_bytes());
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::Malformed {
                variable: "VOXREACH_JWT_SECRET",
                reason: "must be at least 32 bytes".into(),
            });
        }
        let encryption_key = non_empty("VOXREACH_ENCRYPTION_KEY")
            .map(|raw| parse_encryption_key(&raw))
            .transpose()?;
        let public_url_raw = non_empty("VOXREACH_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
        let public_url = url::Url::parse(&public_url_raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ConfigError::Malformed {
                variable: "VOXREACH_PUBLIC_URL",
                reason: format!("{public_url_raw:?} is not an http(s) URL"),
            })?;
        let vapi_base_raw = non_empty("VAPI_BASE_URL").unwrap_or_else(|| "https://api.vapi.ai".to_owned());
        url::Url::parse(&vapi_base_raw).map_err(|e| ConfigError::Malformed {
            variable: "VAPI_BASE_URL",
            reason: e.to_string(),
        })?;
        let vapi = VapiSettings {
            api_key: non_empty("VAPI_API_KEY"),
            base_url: vapi_base_raw,
            webhook_secret: non_empty("VAPI_WEBHOOK_SECRET"),
            webhook_auth: match non_empty("VAPI_WEBHOOK_AUTH") {
                None => crate::vapi_messages::WebhookAuthModes::ALL,
                Some(raw) => {
                    crate::vapi_messages::WebhookAuthModes::parse(&raw).map_err(|reason| ConfigError::Malformed {
                        variable: "VAPI_WEBHOOK_AUTH",
                        reason,
                    })?
                }
            },
        };
        let slack_origins = match non_empty("SLACK_WEBHOOK_ORIGINS") {
            None => vec![default_slack_origin()],
            Some(raw) => raw
                .split(',')
                .map(|origin| {
                    url::Url::parse(origin.trim())
                        .ok()
                        .filter(|u| u.path() == "/" && u.username().is_empty() && u.query().is_none())
                        .map(|u| u.origin())
                        .filter(url::Origin::is_tuple)
                        .ok_or_else(|| ConfigError::Malformed {
                            variable: "SLACK_WEBHOOK_ORIGINS",
                            reason: format!("{:?} is not an origin like https://hooks.slack.com", origin.trim()),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let count = |variable: &'static str, default: i32| -> Result<i32, ConfigError> {
            match non_empty(variable) {
                None => Ok(default),
                Some(raw) => raw
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::Malformed {
                        variable,
                        reason: format!("{raw:?} is not a positive whole number"),
                    }),
            }
        };
        let defaults = application::quotas::QuotaPolicy::default();
        let quotas = application::quotas::QuotaPolicy {
            calls_per_minute: count("VOXREACH_CALLS_PER_MINUTE", defaults.calls_per_minute)?,
            numbers_per_day: count("VOXREACH_NUMBERS_PER_DAY", defaults.numbers_per_day)?,
        };
        let upload_limit_bytes = match non_empty("VOXREACH_UPLOAD_LIMIT_BYTES") {
            None => application::campaigns::upload::DEFAULT_UPLOAD_LIMIT_BYTES,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Malformed {
                    variable: "VOXREACH_UPLOAD_LIMIT_BYTES",
                    reason: format!("{raw:?} is not a positive number of bytes"),
                })?,
        };
        let smtp = match (non_empty("SMTP_URL"), non_empty("MAIL_FROM")) {
            (None, None) => None,
            (Some(url), Some(from)) => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url).map_err(|e| {
                    ConfigError::Malformed {
                        variable: "SMTP_URL",
                        reason: format!("not an SMTP URL like smtps://user:password@host:465 ({e})"),
                    }
                })?;
                let from = from.parse().map_err(|_| ConfigError::Malformed {
                    variable: "MAIL_FROM",
                    reason: format!("{from:?} is not an address like VoxReach <no-reply@example.com>"),
                })?;
                Some(crate::mailer::SmtpSettings { url, from })
            }
            (Some(_), None) => {
                return Err(ConfigError::Malformed {
                    variable: "MAIL_FROM",
                    reason: "must be set with SMTP_URL (the sender of our mail)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Malformed {
                    variable: "SMTP_URL",
                    reason: "must be set with MAIL_FROM (where mail is sent)".into(),
                })
            }
        };
        let calendly_api_base =
            non_empty("CALENDLY_API_BASE").unwrap_or_else(|| crate::calendly::DEFAULT_API_BASE.to_owned());
        url::Url::parse(&calendly_api_base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ConfigError::Malformed {
                variable: "CALENDLY_API_BASE",
                reason: format!("{calendly_api_base:?} is not an http(s) URL"),
            })?;
        let google = provider_settings(&non_empty, &GOOGLE)?;
        let hubspot = provider_settings(&non_empty, &HUBSPOT)?;
        let hubspot_requests_per_ten_seconds = match non_empty("HUBSPOT_REQUESTS_PER_TEN_SECONDS") {
            None => crate::hubspot::HubSpotLimits::default().per_ten_seconds,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=crate::hubspot::HubSpotLimits::MAX_PER_TEN_SECONDS).contains(n))
                .ok_or_else(|| ConfigError::Malformed {
                    variable: "HUBSPOT_REQUESTS_PER_TEN_SECONDS",
                    reason: format!(
                        "{raw:?} is not a whole number from 1 to {}",
                        crate::hubspot::HubSpotLimits::MAX_PER_TEN_SECONDS
                    ),
                })?,
        };
        let microsoft = provider_settings(&non_empty, &MICROSOFT)?;
        Ok(Self {
            hubspot,
            hubspot_requests_per_ten_seconds,
            salesforce: salesforce_settings(&non_empty)?,
            pipedrive: pipedrive_settings(&non_empty)?,
            google,
            microsoft,
            calendly_api_base,
            database_url,
            bind,
            jwt_secret,
            encryption_key,
            public_url,
            vapi,
            slack_origins,
            quotas,
            smtp,
            upload_limit_bytes,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The public URL without a trailing slash, for building links.
    pub fn public_base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// Keys given in the environment, or with `DATABASE_URL` unset, generated
    /// once and kept in `key_dir` so tokens and encrypted secrets survive restarts.
    pub fn resolve_keys(&self, key_dir: Option<&Path>) -> Result<Keys, ConfigError> {
        if let (Some(jwt_secret), Some(encryption_key), Some(vapi_webhook_secret)) =
            (&self.jwt_secret, self.encryption_key, &self.vapi.webhook_secret)
        {
            return Ok(Keys {
                jwt_secret: jwt_secret.clone(),
                encryption_key,
                vapi_webhook_secret: vapi_webhook_secret.clone(),
            });
        }
        let Some(dir) = key_dir.filter(|_| self.database_url.is_none()) else {
            let variables = [
                ("VOXREACH_JWT_SECRET", self.jwt_secret.is_none()),
                ("VOXREACH_ENCRYPTION_KEY", self.encryption_key.is_none()),
                ("VAPI_WEBHOOK_SECRET", self.vapi.webhook_secret.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect();
            return Err(ConfigError::Missing { variables });
        };
        let stored = StoredKeys::load_or_create(&dir.join("keys.json"))?;
        if self.jwt_secret.is_none() {
            tracing::warn!(
                "VOXREACH_JWT_SECRET is not set: using a generated secret kept in {}; set it in production",
                dir.display()
            );
        }
        if self.encryption_key.is_none() {
            tracing::warn!("VOXREACH_ENCRYPTION_KEY is not set: using a generated key kept in {}; back it up or encrypted secrets are lost", dir.display());
        }
        Ok(Keys {
            jwt_secret: self.jwt_secret.clone().unwrap_or(stored.jwt_secret.into_bytes()),
            encryption_key: match self.encryption_key {
                Some(key) => key,
                None => parse_encryption_key(&stored.encryption_key)?,
            },
            vapi_webhook_secret: self.vapi.webhook_secret.clone().unwrap_or(stored.vapi_webhook_secret),
        })
    }
}

/// The shell commands that make each missing key.
fn how_to_generate(variables: &[&str]) -> String {
    variables
        .iter()
        .map(|v| match *v {
            "VOXREACH_ENCRYPTION_KEY" => format!("{v}=$(openssl rand -base64 32)"),
            _ => format!("{v}=$(openssl rand -hex 32)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_encryption_key(raw: &str) -> Result<[u8; 32], ConfigError> {
    let malformed = |reason: &str| ConfigError::Malformed {
        variable: "VOXREACH_ENCRYPTION_KEY",
        reason: reason.into(),
    };
    let bytes = STANDARD.decode(raw.trim()).map_err(|_| malformed("must be base64"))?;
    bytes
        .try_into()
        .map_err(|_| malformed("must decode to exactly 32 bytes"))
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    jwt_secret: String,
    encryption_key: String,
    vapi_webhook_secret: String,
}

impl StoredKeys {
    fn load_or_create(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::KeyFile {
            path: path.to_owned(),
            source,
        };
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).map_err(|e| io(std::io::Error::other(e)));
        }
        let random = |len: usize| {
            let mut bytes = vec![0u8; len];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            STANDARD.encode(bytes)
        };
        let keys = StoredKeys {
            jwt_secret: random(48),
            encryption_key: random(32),
            vapi_webhook_secret: random(32),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_private(path, &serde_json::to_string_pretty(&keys).expect("keys serialize")).map_err(io)?;
        Ok(keys)
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// The CRM apps a deployment is configured for.
#[derive(Debug, Clone, Default)]
pub struct CrmApps {
    pub hubspot: Option<OAuthAppSettings>,
    pub hubspot_limits: crate::hubspot::HubSpotLimits,
    pub salesforce: Option<SalesforceAppSettings>,
    pub pipedrive: Option<PipedriveAppSettings>,
}

impl Settings {
    pub fn crm_apps(&self) -> CrmApps {
        CrmApps {
            hubspot: self.hubspot.clone(),
            hubspot_limits: crate::hubspot::HubSpotLimits {
                per_ten_seconds: self.hubspot_requests_per_ten_seconds,
                ..Default::default()
            },
            salesforce: self.salesforce.clone(),
            pipedrive: self.pipedrive.clone(),
        }
    }
}

/// The CRMs these settings configure, signing in through
/// `<public base>/api/integrations/crm/callback`.
pub fn crm_providers(
    apps: &CrmApps,
    public_base: &str,
    clock: std::sync::Arc<dyn application::clock::Clock>,
) -> Result<application::crm::CrmProviders, String> {
    use application::crm::CrmConnector;
    use std::sync::Arc;
    let redirect_url = format!("{public_base}/api/integrations/crm/callback");
    let oauth = |settings| crate::oauth::OAuth2Client::new(settings).map_err(|e| e.to_string());
    let hubspot_limits = apps.hubspot_limits;
    let hubspot = apps
        .hubspot
        .as_ref()
        .map(|h| -> Result<CrmConnector, String> {
            let mut settings =
                crate::hubspot::oauth_settings(AppCredentials::new(&h.client_id, &h.client_secret, &redirect_url));
            settings.auth_url = h.auth_url.clone();
            settings.token_url = h.token_url.clone();
            Ok(CrmConnector {
                oauth: Arc::new(oauth(settings)?),
                api: Arc::new(
                    crate::hubspot::HubSpotClient::new(&h.api_base, hubspot_limits)
                        .map_err(|e| e.to_string())?
                        .with_clock(clock.clone()),
                ),
                bulk: None,
                // HubSpot signs its webhooks with the app's client secret.
                webhook_secret: Some(h.client_secret.clone()),
            })
        })
        .transpose()?;
    let salesforce = apps.salesforce.as_ref().map(|sf| -> Result<CrmConnector, String> {
        let app = AppCredentials::new(&sf.client_id, &sf.client_secret, &redirect_url);
        let settings = crate::salesforce::oauth_settings(app, &sf.login_url);
        let client = Arc::new(
            crate::salesforce::SalesforceClient::new(crate::salesforce::SalesforceSettings {
                login_url: sf.login_url.clone(),
                api_hosts: crate::http::ApiHosts::parse_list(&sf.api_hosts),
                budget_share: sf.budget_share,
            })
            .with_clock(clock.clone()),
        );
        Ok(CrmConnector {
            oauth: Arc::new(oauth(settings)?),
            api: client.clone(),
            bulk: Some(client),
            webhook_secret: None,
        })
    });
    let pipedrive = apps.pipedrive.as_ref().map(|pd| -> Result<CrmConnector, String> {
        let app = AppCredentials::new(&pd.client_id, &pd.client_secret, &redirect_url);
        let settings = crate::pipedrive::oauth_settings(app, &pd.auth_url, &pd.token_url);
        Ok(CrmConnector {
            oauth: Arc::new(oauth(settings)?),
            api: Arc::new(
                crate::pipedrive::PipedriveClient::new(crate::pipedrive::PipedriveApiSettings {
                    api_hosts: crate::http::ApiHosts::parse_list(&pd.api_hosts),
                    revoke_url: pd.revoke_url.clone(),
                    client_id: pd.client_id.clone(),
                    client_secret: pd.client_secret.clone(),
                })
                .map_err(|e| e.to_string())?
                .with_clock(clock.clone()),
            ),
            bulk: None,
            webhook_secret: None,
        })
    });
    Ok(application::crm::CrmProviders {
        hubspot,
        salesforce: salesforce.transpose()?,
        pipedrive: pipedrive.transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), DEFAULT_BIND);
        assert_eq!(s.public_base(), "http://127.0.0.1:8080");
        assert!(s.database_url.is_none());
        assert_eq!(s.vapi.webhook_auth, crate::vapi_messages::WebhookAuthModes::ALL);
        let hmac_only = settings(&[("VAPI_WEBHOOK_AUTH", "hmac")]).unwrap();
        assert!(!hmac_only.vapi.webhook_auth.secret_header && hmac_only.vapi.webhook_auth.hmac);
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("VOXREACH_BIND", "not-an-address"),
            ("VOXREACH_ENCRYPTION_KEY", "c2hvcnQ="),
            ("VOXREACH_ENCRYPTION_KEY", "%%%"),
            ("VOXREACH_JWT_SECRET", "short"),
            ("VOXREACH_PUBLIC_URL", "ftp://example.com"),
            ("DATABASE_URL", "::"),
            ("VAPI_WEBHOOK_AUTH", "secret,basic"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.to_string().starts_with(name), "{name}: {error}");
        }
    }

    #[test]
    fn provider_apps_are_configured_whole_or_not_at_all() {
        let none = settings(&[]).unwrap();
        assert!(none.google.is_none() && none.microsoft.is_none() && none.hubspot.is_none());
        assert_eq!(none.calendly_api_base, crate::calendly::DEFAULT_API_BASE);
        let hubspot = settings(&[("HUBSPOT_CLIENT_ID", "id"), ("HUBSPOT_CLIENT_SECRET", "secret")])
            .unwrap()
            .hubspot
            .unwrap();
        assert_eq!(hubspot.token_url, crate::hubspot::DEFAULT_TOKEN_URL);
        assert!(
            !format!("{hubspot:?}").contains("secret\""),
            "the secret is never printed"
        );
        for (pairs, named) in [
            (vec![("HUBSPOT_CLIENT_ID", "id")], "HUBSPOT_CLIENT_SECRET"),
            (vec![("GOOGLE_CLIENT_SECRET", "s")], "GOOGLE_CLIENT_ID"),
            (
                vec![
                    ("MICROSOFT_CLIENT_ID", "i"),
                    ("MICROSOFT_CLIENT_SECRET", "s"),
                    ("MICROSOFT_API_BASE", "nope"),
                ],
                "MICROSOFT_API_BASE",
            ),
            (
                vec![("HUBSPOT_REQUESTS_PER_TEN_SECONDS", "191")],
                "HUBSPOT_REQUESTS_PER_TEN_SECONDS",
            ),
            (vec![("CALENDLY_API_BASE", "ftp://x")], "CALENDLY_API_BASE"),
        ] {
            let error = settings(&pairs).unwrap_err().to_string();
            assert!(error.starts_with(named), "{named}: {error}");
        }
    }

    #[test]
    fn an_external_database_requires_explicit_keys() {
        let s = settings(&[("DATABASE_URL", "postgres://localhost/x")]).unwrap();
        let error = s.resolve_keys(Some(Path::new("/tmp"))).unwrap_err().to_string();
        // Every missing variable at once, and how to make each.
        for expected in [
            "VOXREACH_JWT_SECRET",
            "VOXREACH_ENCRYPTION_KEY",
            "VAPI_WEBHOOK_SECRET",
            "openssl rand -hex 32",
            "openssl rand -base64 32",
        ] {
            assert!(error.contains(expected), "{expected} missing from: {error}");
        }
        let s = settings(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("VOXREACH_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        let error = s.resolve_keys(None).unwrap_err().to_string();
        assert!(
            !error.contains("VOXREACH_JWT_SECRET,") && error.contains("VOXREACH_ENCRYPTION_KEY"),
            "{error}"
        );
    }

    #[test]
    fn generated_keys_are_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("voxreach-keys-{}", uuid::Uuid::new_v4()));
        let s = settings(&[]).unwrap();
        let first = s.resolve_keys(Some(&dir)).unwrap();
        let second = s.resolve_keys(Some(&dir)).unwrap();
        assert_eq!(first.jwt_secret, second.jwt_secret);
        assert_eq!(first.encryption_key, second.encryption_key);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
