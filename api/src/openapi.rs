//! The OpenAPI document, served at `GET /api/openapi.json`: generated with
//! `utoipa` from the handlers' `#[utoipa::path]` attributes and the request
//! and response types themselves. A modifier adds what every operation shares
//! (error answers, operation ids, links from creates), so no handler repeats it.

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "VoxReach API", description = "AI voice agents: agents, numbers, calls, A/B tests, Slack."),
    paths(
        crate::health::live,
        crate::health::ready,
        serve,
        crate::auth::register,
        crate::auth::login,
        crate::auth::me,
        crate::auth::request_password_reset,
        crate::auth::confirm_password_reset,
        crate::users::invite,
        crate::users::list,
        crate::agents::create,
        crate::agents::list,
        crate::agents::get,
        crate::agents::update,
        crate::agents::delete,
        crate::agents::activate,
        crate::agents::deactivate,
        crate::agents::voices,
        crate::agents::adherence_checklist,
        crate::agents::set_adherence_checklist,
        crate::organization::get,
        crate::organization::update,
        crate::analytics::overview,
        crate::analytics::funnel,
        crate::analytics::talk_time,
        crate::analytics::best_times,
        crate::analytics::agents,
        crate::analytics::outcomes,
        crate::analytics::sentiment,
        crate::analytics::adherence,
        crate::analytics::export,
        crate::analytics::call,
        crate::phone_numbers::add_credential,
        crate::phone_numbers::list_credentials,
        crate::phone_numbers::remove_credential,
        crate::phone_numbers::add_number,
        crate::phone_numbers::list_numbers,
        crate::phone_numbers::get_number,
        crate::phone_numbers::assign,
        crate::phone_numbers::remove_number,
        crate::calls::start,
        crate::calls::list,
        crate::calls::get,
        crate::calls::set_outcome,
        crate::calls::dashboard,
        crate::campaigns::create,
        crate::campaigns::list,
        crate::campaigns::get,
        crate::campaigns::update,
        crate::campaigns::archive,
        crate::campaigns::start,
        crate::campaigns::pause,
        crate::campaigns::resume,
        crate::campaigns::cancel,
        crate::campaigns::upload,
        crate::campaigns::get_upload,
        crate::campaigns::import,
        crate::campaigns::contacts,
        crate::campaigns::calls,
        crate::campaigns::stats,
        crate::campaigns::events,
        crate::campaigns::add_dnc,
        crate::campaigns::upload_dnc,
        crate::campaigns::dnc,
        crate::campaigns::remove_dnc,
        crate::ab_testing::create_variant,
        crate::ab_testing::list_variants,
        crate::ab_testing::update_variant,
        crate::ab_testing::delete_variant,
        crate::ab_testing::start_test,
        crate::ab_testing::tests_of_agent,
        crate::ab_testing::results,
        crate::ab_testing::declare_winner,
        crate::ab_testing::pause,
        crate::ab_testing::resume,
        crate::slack::connect,
        crate::slack::list,
        crate::slack::update,
        crate::slack::disconnect,
        crate::slack::test,
        crate::calendar::connect,
        crate::calendar::callback,
        crate::calendar::list,
        crate::calendar::update,
        crate::calendar::disconnect,
        crate::calendar::check_availability,
        crate::calendar::book,
        crate::calendar::appointments,
        crate::crm::connect,
        crate::crm::callback,
        crate::crm::list,
        crate::crm::update,
        crate::crm::disconnect,
        crate::crm::sync_contact,
        crate::crm::sync_log,
        crate::crm::backfill,
        crate::webhooks::vapi,
        crate::webhooks::calendly,
        crate::webhooks::hubspot,
    ),
    components(schemas(crate::error::ErrorBody, crate::calls::Direction, domain::slack::Mention)),
    modifiers(&Conventions)
)]
struct ApiDoc;

/// Operations that create a resource (answering its `id`), and the path under
/// which that resource's own operations live (`<path>/{id}…`).
const CREATES: &[(&str, &str)] = &[
    ("/api/agents", "/api/agents"),
    ("/api/credentials", "/api/credentials"),
    ("/api/phone-numbers", "/api/phone-numbers"),
    ("/api/calls", "/api/calls"),
    ("/api/agents/{id}/variants", "/api/variants"),
    ("/api/agents/{id}/ab-tests", "/api/ab-tests"),
    ("/api/integrations/slack", "/api/integrations/slack"),
    ("/api/campaigns", "/api/campaigns"),
];

/// Adds the bearer scheme.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

fn error_answer(description: &str) -> Value {
    json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// `get_api_agents_id` for `GET /api/agents/{id}`: unique, and readable in links.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!("{method}_{}", words.join("_"))
}

/// Every `{id}` in a path is a resource's UUID.
fn add_id_parameter(path: &str, operation: &mut Value) {
    if !path.contains("{id}") {
        return;
    }
    let parameters = operation["parameters"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut parameters: Vec<Value> = parameters.into_iter().filter(|p| p["name"] != "id").collect();
    parameters.insert(
        0,
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}),
    );
    operation["parameters"] = Value::Array(parameters);
}

/// The answers every operation of its kind can give, besides its own.
fn add_shared_errors(path: &str, operation: &mut Value) {
    let has_body = operation.get("requestBody").is_some();
    let secured = operation.get("security").is_some();
    let responses = operation["responses"].as_object_mut().expect("responses");
    let mut add = |status: &str, description: &str| {
        responses.entry(status).or_insert_with(|| error_answer(description));
    };
    add("400", "Invalid input (`details.field` names it)");
    if has_body {
        add("413", "Body too large");
        add("415", "Not `application/json`");
        add("422", "Body is not the documented JSON");
    }
    if secured {
        add("401", "No valid session");
        add("403", "The caller's role may not do this (`role_not_allowed`)");
    }
    if path.contains('{') {
        add("404", "No such resource in the caller's organization");
    }
    add("default", "Unexpected error");
}

/// Operations that take a created resource's id in their body: the create,
/// the operation (method, path) and the body field.
const BODY_LINKS: &[(&str, &str, &str, &str)] = &[(
    "/api/integrations/slack",
    "post",
    "/api/integrations/slack/test",
    "integrationId",
)];

/// OpenAPI links from a create to every operation on what it created, so a
/// client (or a stateful fuzzer) can follow the new `id`.
fn add_links(paths: &mut Map<String, Value>) {
    for (create, base) in CREATES {
        let prefix = format!("{base}/{{id}}");
        let links: Map<String, Value> = paths
            .iter()
            .filter(|(path, _)| **path == prefix || path.starts_with(&format!("{prefix}/")))
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(method, _)| operation_id(method, path))
            })
            .map(|id| {
                (
                    id.clone(),
                    json!({"operationId": id, "parameters": {"id": "$response.body#/id"}}),
                )
            })
            .chain(
                BODY_LINKS
                    .iter()
                    .filter(|(from, ..)| from == create)
                    .map(|(_, method, path, field)| {
                        let id = operation_id(method, path);
                        (
                            id.clone(),
                            json!({"operationId": id, "requestBody": {*field: "$response.body#/id"}}),
                        )
                    }),
            )
            .collect();
        let created = paths[*create]["post"]["responses"]
            .as_object_mut()
            .and_then(|responses| responses.iter_mut().find(|(status, _)| status.starts_with('2')))
            .map(|(_, answer)| answer);
        if let Some(created) = created {
            created["links"] = Value::Object(links);
        }
    }
}

fn generate() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    document["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let paths = document["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().expect("path item") {
            operation["operationId"] = json!(operation_id(method, path));
            add_id_parameter(path, operation);
            add_shared_errors(path, operation);
        }
    }
    add_links(paths);
    document
}

/// The document (generated once).
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(generate)
}

/// One documented operation.
pub struct Operation {
    pub method: String,
    pub path: String,
    pub authenticated: bool,
    /// The `$ref`'d schema of its JSON body, if it takes one.
    pub body: Option<String>,
}

/// Every documented operation.
pub fn operations() -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in document()["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .map(|r| r.trim_start_matches("#/components/schemas/").to_owned());
            all.push(Operation {
                method: method.clone(),
                path: path.clone(),
                authenticated: operation.get("security").is_some(),
                body,
            });
        }
    }
    all
}

/// The documented methods of a concrete request path (`{…}` matches one
/// segment; like the router, the most literal template wins, so
/// `/slack/test` is not `/slack/{id}`).
pub fn methods_of(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let matches = |template: &str| {
        let pattern: Vec<&str> = template.split('/').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
    };
    let placeholders = |template: &str| template.matches('{').count();
    let paths = document()["paths"].as_object().expect("paths");
    let matching: Vec<&String> = paths.keys().filter(|template| matches(template)).collect();
    let most_literal = matching.iter().map(|t| placeholders(t)).min();
    matching
        .into_iter()
        .filter(|template| Some(placeholders(template)) == most_literal)
        .flat_map(|template| paths[template].as_object().expect("path item").keys().cloned())
        .collect()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
