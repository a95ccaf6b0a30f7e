//! The HTTP API and the wiring of concrete infrastructure into the use cases.

pub mod ab_testing;
pub mod agents;
pub mod analytics;
pub mod auth;
pub mod body;
pub mod calendar;
pub mod calls;
pub mod campaigns;
pub mod consistency;
pub mod crm;
pub mod error;
pub mod health;
pub mod observability;
pub mod openapi;
pub mod organization;
pub mod phone_numbers;
pub mod roles;
pub mod server;
pub mod slack;
pub mod users;
pub mod webhooks;
