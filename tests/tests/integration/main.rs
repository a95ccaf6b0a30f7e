//! The black-box integration tests, one module per feature, in one binary:
//! each test binary links the whole workspace, so one is much faster to build
//! than one per file. Real PostgreSQL, the API over HTTP, providers faked with
//! wiremock.

mod ab_testing;
mod agents;
mod analytics;
mod auth;
mod bad_input;
mod calendar;
mod calendar_tools;
mod calendly;
mod calls;
mod campaigns;
mod consumers;
mod crm;
mod crm_providers;
mod crm_webhooks;
mod event_store;
mod mail;
mod observability;
mod openapi;
mod phone_numbers;
mod quotas;
mod roles;
mod runtime;
mod slack;
mod vapi_client;
