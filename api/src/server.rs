//! Wiring: concrete infrastructure into the use cases, and the actix-web app.

use crate::error::{json_error, not_found, path_error, query_error};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use application::ab_testing::{AbDecisions, AbTestingService};
use application::agents::{AgentService, AgentSync, AssistantRefresh};
use application::auth::AuthService;
use application::calls::{CallHistory, CallPlacement, CallService, OutboundCalls, SetCallOutcomeTool};
use application::clock::{Clock, SystemClock};
use application::event_store::EventStore;
use application::phone_numbers::{NumberSync, PhoneNumberService};
use application::providers::RetryPolicy;
use application::slack::{SlackNotifier, SlackService};
use application::work::{ScheduledJob, WorkHandler, WorkQueue};
use chrono::Duration;
use infrastructure::config::Keys;
use infrastructure::event_store::{PgEventStore, EVENTS_CHANNEL};
use infrastructure::login_throttle::{PgLoginThrottle, ThrottlePolicy};
use infrastructure::mailer::OutboxMailer;
use infrastructure::passwords::Argon2Passwords;
use infrastructure::secret_box::SecretBox;
use infrastructure::secret_tokens::RandomSecretTokens;
use infrastructure::sessions::JwtSessions;
use infrastructure::slack::SlackClient;
use infrastructure::vapi::{VapiClient, VapiConfig};
use infrastructure::vapi_messages::WebhookAuthModes;
use infrastructure::work_queue::PgWorkQueue;
use projections::{ProjectionRunner, RunnerConfig};
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;

/// Largest JSON body accepted.
pub const JSON_LIMIT_BYTES: usize = 256 * 1024;
const SESSION_LIFETIME: Duration = Duration::hours(12);

pub struct AppState {
    pub pool: PgPool,
    pub auth: Arc<AuthService>,
    pub agents: Arc<AgentService>,
    pub organization: Arc<application::organization::OrganizationService>,
    pub analytics: Arc<application::analytics::AnalyticsService>,
    pub campaigns: Arc<application::campaigns::CampaignService>,
    pub dnc: Arc<application::campaigns::DncService>,
    pub calls: Arc<CallService>,
    pub call_history: Arc<dyn CallHistory>,
    pub numbers: Arc<PhoneNumberService>,
    pub outbound: Arc<OutboundCalls>,
    pub ab_testing: Arc<AbTestingService>,
    pub slack: Arc<SlackService>,
    pub slack_notifier: Arc<SlackNotifier>,
    pub calendar: Arc<application::calendar::CalendarService>,
    pub crm: Arc<application::crm::CrmService>,
    /// `VOXREACH_PUBLIC_URL`: where the app is, for redirects back to it.
    pub public_url: String,
    pub number_sync: Arc<NumberSync>,
    pub vapi_webhook_secret: String,
    pub vapi_webhook_auth: WebhookAuthModes,
    pub runner: ProjectionRunner,
    pub work_queue: Arc<dyn WorkQueue>,
    pub clock: Arc<dyn Clock>,
    /// Whether mail is delivered (`SMTP_URL`), for the readiness report.
    pub mail_configured: bool,
    /// Reactors that perform queued work against outside services.
    pub workers: Vec<Arc<dyn WorkHandler>>,
    /// Periodic jobs of the scheduler role.
    pub scheduled: Vec<Arc<dyn ScheduledJob>>,
    /// How long a change waits for the read models to hold it (see `consistency`).
    pub read_your_writes: std::time::Duration,
    pub uploads: Arc<application::campaigns::upload::UploadService>,
    /// Largest contact file accepted.
    pub upload_limit_bytes: usize,
}

/// Everything the service needs beyond the database.
pub struct Wiring {
    pub keys: Keys,
    pub public_url: String,
    pub clock: Arc<dyn Clock>,
    pub throttle: ThrottlePolicy,
    pub vapi_base_url: String,
    pub vapi_api_key: String,
    pub retry: RetryPolicy,
    /// Per-organization limits on costly actions.
    pub quotas: application::quotas::QuotaPolicy,
    /// Where mail goes; without it, mail waits in the outbox.
    pub smtp: Option<infrastructure::mailer::SmtpSettings>,
    /// Origins Slack webhook URLs may point at.
    pub slack_origins: Vec<url::Origin>,
    /// How Vapi server messages must authenticate.
    pub vapi_webhook_auth: WebhookAuthModes,
    /// Longest a change waits for the read models to hold it before answering.
    pub read_your_writes: std::time::Duration,
    /// Largest contact file accepted.
    pub upload_limit_bytes: usize,
    /// The calendar providers configured (`GOOGLE_*`, `MICROSOFT_*`).
    pub calendar_providers: application::calendar::CalendarProviders,
    /// The CRMs configured (`HUBSPOT_*`).
    pub crm_providers: application::crm::CrmProviders,
}

impl Wiring {
    pub fn new(keys: Keys, public_url: String) -> Self {
        Self {
            keys,
            public_url,
            clock: Arc::new(SystemClock),
            throttle: ThrottlePolicy::default(),
            vapi_base_url: infrastructure::vapi::DEFAULT_BASE_URL.into(),
            vapi_api_key: String::new(),
            retry: RetryPolicy::default(),
            quotas: application::quotas::QuotaPolicy::default(),
            smtp: None,
            slack_origins: vec![infrastructure::config::default_slack_origin()],
            vapi_webhook_auth: WebhookAuthModes::ALL,
            read_your_writes: crate::consistency::READ_YOUR_WRITES_WAIT,
            upload_limit_bytes: application::campaigns::upload::DEFAULT_UPLOAD_LIMIT_BYTES,
            calendar_providers: application::calendar::CalendarProviders::default(),
            crm_providers: application::crm::CrmProviders::default(),
        }
    }
}

pub fn projection_runner(pool: &PgPool, store: Arc<dyn EventStore>) -> ProjectionRunner {
    ProjectionRunner::new(
        pool.clone(),
        store,
        projections::read_models(),
        projections::subscriptions(),
        RunnerConfig {
            channel: EVENTS_CHANNEL,
            ..RunnerConfig::default()
        },
    )
}

pub fn build_state(pool: PgPool, wiring: Wiring) -> AppState {
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone()));
    let vapi = Arc::new(VapiClient::new(VapiConfig {
        base_url: wiring.vapi_base_url,
        api_key: wiring.vapi_api_key,
        webhook_url: format!("{}/api/webhooks/vapi", wiring.public_url),
        webhook_secret: wiring.keys.vapi_webhook_secret.clone(),
    }));
    let agent_directory = Arc::new(projections::agents::PgAgentDirectory::new(pool.clone()));
    let agents = AgentService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        directory: agent_directory.clone(),
    };
    let organization = Arc::new(application::organization::OrganizationService {
        store: store.clone(),
        clock: wiring.clock.clone(),
    });
    let analytics = application::analytics::AnalyticsService {
        read_model: Arc::new(projections::analytics::PgAnalytics::new(pool.clone())),
        organizations: organization.clone(),
        agents: agent_directory.clone(),
        renderer: Arc::new(infrastructure::analytics::ReportFiles),
        clock: wiring.clock.clone(),
    };
    let ab_slots: Arc<dyn application::ab_testing::AssignmentSlots> =
        Arc::new(infrastructure::ab_testing::PgAssignmentSlots::new(pool.clone()));
    let campaign_directory = Arc::new(projections::campaigns::PgCampaigns::new(pool.clone()));
    let campaigns = application::campaigns::CampaignService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        directory: campaign_directory.clone(),
        contacts: campaign_directory.clone(),
        progress: campaign_directory.clone(),
    };
    let uploads = application::campaigns::upload::UploadService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        uploads: Arc::new(infrastructure::uploads::PgUploadStore::new(pool.clone())),
        dnc: campaign_directory.clone(),
    };
    let campaign_runner = application::campaigns::runner::CampaignRunner {
        store: store.clone(),
        clock: wiring.clock.clone(),
        board: campaign_directory.clone(),
        campaigns: campaign_directory.clone(),
        locks: Arc::new(infrastructure::work_queue::PgJobLocks::new(pool.clone())),
        progress: Arc::new(projections::runtime::PgReadModelProgress::new(pool.clone())),
    };
    let campaign_dialer = application::campaigns::runner::CampaignDialer {
        store: store.clone(),
        clock: wiring.clock.clone(),
        ab_slots: ab_slots.clone(),
        campaigns: campaign_directory.clone(),
    };
    let call_analysis = application::analytics::call_analysis::CallAnalysisReactor {
        store: store.clone(),
        clock: wiring.clock.clone(),
    };
    let campaign_results = application::campaigns::runner::CampaignResults {
        store: store.clone(),
        clock: wiring.clock.clone(),
        campaigns: campaign_directory.clone(),
    };
    let dnc = application::campaigns::DncService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        directory: campaign_directory,
    };
    let call_history = Arc::new(projections::calls::PgCallHistory::new(pool.clone()));
    let sealer = Arc::new(SecretBox::new(&wiring.keys.encryption_key));
    let oauth_store = Arc::new(infrastructure::oauth_store::PgOAuthStore::new(
        pool.clone(),
        sealer.clone(),
    ));
    let calendar_directory = Arc::new(projections::calendar::PgCalendarDirectory::new(pool.clone()));
    let crm_directory = Arc::new(projections::crm::PgCrmDirectory::new(pool.clone()));
    let crm_connections = application::crm::CrmConnections {
        providers: wiring.crm_providers.clone(),
        tokens: application::crm::CrmTokens::new(
            store.clone(),
            wiring.clock.clone(),
            oauth_store.clone(),
            oauth_store.clone(),
        ),
    };
    let crm = Arc::new(application::crm::CrmService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        connections: crm_connections.clone(),
        directory: crm_directory.clone(),
        schema_cache: application::crm::schema_cache(),
    });
    let crm_sync = application::crm::CrmSync {
        store: store.clone(),
        clock: wiring.clock.clone(),
        connections: crm_connections.clone(),
        retry: wiring.retry,
        appointments: calendar_directory.clone(),
        progress: Arc::new(projections::runtime::PgReadModelProgress::new(pool.clone())),
    };
    let calendar = Arc::new(application::calendar::CalendarService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        providers: wiring.calendar_providers.clone(),
        oauth: crm_connections.tokens.sharing(),
        directory: calendar_directory.clone(),
        secrets: Arc::new(RandomSecretTokens),
        public_url: wiring.public_url.clone(),
    });
    let calls = CallService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        ab_slots: ab_slots.clone(),
        owners: call_history.clone(),
        tools: vec![
            Arc::new(SetCallOutcomeTool {
                store: store.clone(),
                clock: wiring.clock.clone(),
            }),
            Arc::new(application::campaigns::AddToDncTool {
                store: store.clone(),
                clock: wiring.clock.clone(),
            }),
            Arc::new(application::calendar::CheckAvailabilityTool {
                calendar: calendar.clone(),
            }),
            Arc::new(application::calendar::BookAppointmentTool {
                calendar: calendar.clone(),
            }),
        ],
        sealer: sealer.clone(),
        calendars: calendar_directory.clone(),
    };
    let vapi_webhook_secret = wiring.keys.vapi_webhook_secret.clone();
    let agent_sync = AgentSync {
        store: store.clone(),
        clock: wiring.clock.clone(),
        voice: vapi.clone(),
        retry: wiring.retry,
        calendars: Arc::new(projections::calendar::PgCalendarDirectory::new(pool.clone())),
        progress: Arc::new(projections::runtime::PgReadModelProgress::new(pool.clone())),
    };
    let assistant_refresh = AssistantRefresh {
        store: store.clone(),
        clock: wiring.clock.clone(),
        agents: agent_directory.clone(),
        progress: Arc::new(projections::runtime::PgReadModelProgress::new(pool.clone())),
    };
    let number_directory = Arc::new(projections::phone_numbers::PgNumberDirectory::new(pool.clone()));
    let usage: Arc<dyn application::quotas::UsageCounter> =
        Arc::new(infrastructure::usage::PgUsageCounter::new(pool.clone()));
    let numbers = PhoneNumberService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        sealer: sealer.clone(),
        directory: number_directory.clone(),
        usage: usage.clone(),
        quotas: wiring.quotas,
    };
    let number_sync = Arc::new(NumberSync {
        store: store.clone(),
        clock: wiring.clock.clone(),
        voice: vapi.clone(),
        sealer: sealer.clone(),
        agents: agent_directory.clone(),
        directory: number_directory,
        retry: wiring.retry,
    });
    let call_placement = CallPlacement {
        store: store.clone(),
        clock: wiring.clock.clone(),
        ab_slots: ab_slots.clone(),
        voice: vapi,
        retry: wiring.retry,
        briefing: Arc::new(application::crm::CrmBriefing {
            store: store.clone(),
            clock: wiring.clock.clone(),
            connections: crm_connections.clone(),
            directory: crm_directory.clone(),
        }),
        calendars: calendar_directory.clone(),
    };
    let ab_directory = Arc::new(projections::ab_testing::PgAbDirectory::new(pool.clone()));
    let outbound = OutboundCalls {
        store: store.clone(),
        clock: wiring.clock.clone(),
        ab_slots: ab_slots.clone(),
        usage,
        quotas: wiring.quotas,
    };
    let ab_testing = AbTestingService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        directory: ab_directory.clone(),
    };
    let slack_directory = Arc::new(projections::slack::PgSlackDirectory::new(pool.clone()));
    let slack_webhook = Arc::new(SlackClient::default());
    let slack = SlackService {
        store: store.clone(),
        clock: wiring.clock.clone(),
        sealer: sealer.clone(),
        directory: slack_directory.clone(),
        webhook: slack_webhook.clone(),
        allowed_origins: wiring.slack_origins.clone(),
        app_url: wiring.public_url.clone(),
    };
    let slack_notifier = Arc::new(SlackNotifier {
        store: store.clone(),
        clock: wiring.clock.clone(),
        sealer: sealer.clone(),
        directory: slack_directory,
        calls: call_history.clone(),
        webhook: slack_webhook,
        retry: wiring.retry,
        app_url: wiring.public_url.clone(),
    });
    let ab_decisions = AbDecisions {
        store: store.clone(),
        clock: wiring.clock.clone(),
        directory: ab_directory,
        progress: Arc::new(projections::runtime::PgReadModelProgress::new(pool.clone())),
    };
    let clock = wiring.clock;
    let auth = AuthService {
        store: store.clone(),
        clock: clock.clone(),
        passwords: Arc::new(Argon2Passwords::for_this_machine()),
        sessions: Arc::new(JwtSessions::new(&wiring.keys.jwt_secret, SESSION_LIFETIME)),
        secrets: Arc::new(RandomSecretTokens),
        mailer: Arc::new(OutboxMailer::new(pool.clone(), sealer.clone())),
        throttle: Arc::new(PgLoginThrottle::new(pool.clone(), wiring.throttle)),
        directory: Arc::new(projections::users::PgUserDirectory::new(pool.clone())),
        public_url: wiring.public_url.clone(),
    };
    let mail_delivery = wiring.smtp.as_ref().map(|smtp| {
        infrastructure::mailer::MailDelivery::new(pool.clone(), sealer.clone(), clock.clone(), smtp)
            .expect("SMTP_URL was checked when the settings were read")
    });
    let mail_configured = mail_delivery.is_some();
    let work_queue: Arc<dyn WorkQueue> = Arc::new(PgWorkQueue::new(pool.clone(), clock.clone()));
    let crm_backfill = application::crm::CrmBackfill {
        store: store.clone(),
        clock: clock.clone(),
        connections: crm_connections.clone(),
        calls: call_history.clone(),
        queue: work_queue.clone(),
    };
    AppState {
        organization,
        analytics: Arc::new(analytics),
        runner: projection_runner(&pool, store),
        scheduled: [
            Some(number_sync.clone() as Arc<dyn ScheduledJob>),
            Some(Arc::new(campaign_runner) as Arc<dyn ScheduledJob>),
            Some(Arc::new(application::slack::DailySummaries {
                notifier: slack_notifier.clone(),
                queue: work_queue.clone(),
            }) as Arc<dyn ScheduledJob>),
            mail_delivery.map(|job| Arc::new(job) as Arc<dyn ScheduledJob>),
        ]
        .into_iter()
        .flatten()
        .collect(),
        mail_configured,
        work_queue,
        clock,
        workers: vec![
            Arc::new(agent_sync),
            Arc::new(assistant_refresh),
            number_sync.clone(),
            Arc::new(call_placement),
            Arc::new(ab_decisions),
            slack_notifier.clone(),
            Arc::new(campaign_dialer),
            Arc::new(campaign_results),
            Arc::new(call_analysis),
            Arc::new(crm_sync),
            Arc::new(crm_backfill),
        ],
        slack: Arc::new(slack),
        slack_notifier,
        outbound: Arc::new(outbound),
        ab_testing: Arc::new(ab_testing),
        numbers: Arc::new(numbers),
        number_sync,
        auth: Arc::new(auth),
        calendar,
        crm,
        agents: Arc::new(agents),
        campaigns: Arc::new(campaigns),
        dnc: Arc::new(dnc),
        calls: Arc::new(calls),
        call_history,
        vapi_webhook_secret,
        vapi_webhook_auth: wiring.vapi_webhook_auth,
        read_your_writes: wiring.read_your_writes,
        uploads: Arc::new(uploads),
        upload_limit_bytes: wiring.upload_limit_bytes,
        public_url: wiring.public_url,
        pool,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT_BYTES)
            .error_handler(json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .configure(crate::health::routes)
    .configure(crate::auth::routes)
    .configure(crate::users::routes)
    .configure(crate::agents::routes)
    .configure(crate::organization::routes)
    .configure(crate::analytics::routes)
    .configure(crate::ab_testing::routes)
    .configure(crate::slack::routes)
    .configure(crate::calendar::routes)
    .configure(crate::crm::routes)
    .configure(crate::calls::routes)
    .configure(crate::campaigns::routes)
    .configure(crate::phone_numbers::routes)
    .configure(crate::webhooks::routes);
}

/// The HTTP server on `listener`. Signals are left to the caller, which also
/// has projectors and possibly a database to stop.
pub fn http_server(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(crate::consistency::read_your_writes))
            .wrap(actix_web::middleware::from_fn(crate::observability::observe))
            .configure(configure)
            .default_service(web::to(not_found))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}
