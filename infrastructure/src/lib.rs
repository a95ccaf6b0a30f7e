//! Implementations of the application's ports: the Postgres event store,
//! crypto, tokens, mail, configuration and the embedded PostgreSQL bootstrap.

pub mod ab_testing;
pub mod analytics;
pub mod calendly;
pub mod config;
pub mod database;
pub mod embedded_postgres;
pub mod event_store;
pub mod google_calendar;
mod group_commit;
pub mod http;
pub mod hubspot;
pub mod login_throttle;
pub mod mailer;
mod markup;
pub mod oauth;
pub mod oauth_store;
pub mod outlook_calendar;
pub mod passwords;
pub mod pipedrive;
#[cfg(test)]
mod provider_test_support;
pub mod salesforce;
pub mod secret_box;
pub mod secret_tokens;
pub mod sessions;
mod sign_in;
pub mod slack;
pub mod uploads;
pub mod usage;
pub mod vapi;
pub mod vapi_messages;
pub mod work_queue;
