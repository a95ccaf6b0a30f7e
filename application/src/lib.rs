//! Use cases and the ports they need. Orchestrates the domain; owns no SQL and no HTTP.

pub mod ab_testing;
pub mod agents;
pub mod aggregates;
pub mod analytics;
pub mod auth;
pub mod calendar;
pub mod calls;
pub mod campaigns;
pub mod clock;
pub mod correlation;
pub mod crm;
pub mod error;
pub mod event_store;
pub mod oauth;
pub mod organization;
pub mod permissions;
pub mod phone_numbers;
pub mod providers;
pub mod quotas;
pub mod secrets;
pub mod slack;
pub mod voice;
pub mod work;

pub use error::{AppError, ErrorKind};
