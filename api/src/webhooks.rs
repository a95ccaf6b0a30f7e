//! `POST /api/webhooks/vapi`, `/calendly` and `/hubspot`: authenticate,
//! record, acknowledge. Heavy work happens in projections and reactors.

use crate::error::{error_body, resource, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use infrastructure::vapi_messages::{is_authentic, parse, reply_body};

/// Transcripts make end-of-call reports large.
pub const WEBHOOK_LIMIT_BYTES: usize = 5 * 1024 * 1024;

/// HubSpot sends at most 100 notifications of a few hundred bytes per request.
pub const HUBSPOT_LIMIT_BYTES: usize = 1024 * 1024;

/// Vapi's server messages (status updates, end-of-call reports, tool calls, assistant requests).
/// Authenticated by the shared secret or HMAC signature configured with `VAPI_WEBHOOK_SECRET`.
#[utoipa::path(post, path = "/api/webhooks/vapi", tag = "webhooks", request_body = Object, responses(
    (status = 200, description = "Recorded; the body answers tool calls and assistant requests", body = Object),
    (status = 400, description = "Not a Vapi message", body = crate::error::ErrorBody),
    (status = 401, description = "Wrong secret or signature, or a stale timestamp", body = crate::error::ErrorBody),
    (status = 413, description = "Larger than 5 MiB", body = crate::error::ErrorBody)))]
pub async fn vapi(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !is_authentic(
        header,
        &body,
        &state.vapi_webhook_secret,
        state.vapi_webhook_auth,
        state.clock.now(),
    ) {
        return Ok(HttpResponse::Unauthorized().json(error_body(
            "invalid_webhook_signature",
            "the request does not carry this server's Vapi secret or signature",
            None,
        )));
    }
    let message = match parse(&body, state.clock.now()) {
        Ok(message) => message,
        Err(error) => {
            return Ok(HttpResponse::BadRequest().json(error_body("malformed_webhook", &error.to_string(), None)))
        }
    };
    let reply = state.calls.handle_vapi_message(message, &body).await?;
    Ok(HttpResponse::Ok().json(reply_body(&reply)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendlyQuery {
    /// Our integration the subscription belongs to (part of the URL we subscribed).
    integration: Option<uuid::Uuid>,
}

/// Calendly's `invitee.created` / `invitee.canceled` deliveries, verified by
/// `Calendly-Webhook-Signature` (HMAC-SHA256 with the integration's signing
/// key, timestamp within 3 minutes). A delivery for an integration that is
/// gone is answered 410, which makes Calendly delete the subscription.
#[utoipa::path(post, path = "/api/webhooks/calendly", tag = "webhooks", params(CalendlyQuery), request_body = Object, responses(
    (status = 200, description = "Recorded (or an event type we do not use)", body = Object),
    (status = 400, description = "Not a Calendly delivery", body = crate::error::ErrorBody),
    (status = 401, description = "Wrong or stale signature", body = crate::error::ErrorBody),
    (status = 410, description = "No such integration any more", body = crate::error::ErrorBody)))]
pub async fn calendly(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CalendlyQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let gone = || {
        HttpResponse::Gone().json(error_body(
            "integration_gone",
            "this Calendly subscription belongs to no connected calendar",
            None,
        ))
    };
    let Some(integration_id) = query.integration else {
        return Ok(gone());
    };
    let Some((organization_id, key)) = state.calendar.calendly_signing_key(integration_id).await? else {
        return Ok(gone());
    };
    let signature = req
        .headers()
        .get("calendly-webhook-signature")
        .and_then(|v| v.to_str().ok());
    if !infrastructure::calendly::is_authentic(signature, &body, &key, state.clock.now()) {
        return Ok(HttpResponse::Unauthorized().json(error_body(
            "invalid_webhook_signature",
            "the delivery is not signed with this integration's key, or its timestamp is stale",
            None,
        )));
    }
    match infrastructure::calendly::parse_delivery(&body) {
        Ok(Some(delivery)) => {
            state
                .calendar
                .record_calendly(organization_id, integration_id, delivery)
                .await?
        }
        Ok(None) => {}
        Err(error) => {
            return Ok(HttpResponse::BadRequest().json(error_body("malformed_webhook", &error.to_string(), None)))
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

/// HubSpot's webhook notifications (the app's subscriptions): contact
/// property changes, deletions, privacy deletions and merges update the
/// contact cache of every organization connected to the portal; other
/// subscription types and unknown portals are acknowledged and ignored.
/// Verified by `X-HubSpot-Signature-v3` (HMAC-SHA256 with the app's client
/// secret over method, URL, body and `X-HubSpot-Request-Timestamp`, which
/// must be within 5 minutes).
#[utoipa::path(post, path = "/api/webhooks/hubspot", tag = "webhooks", request_body = Object, responses(
    (status = 200, description = "Recorded (or nothing we keep)", body = Object),
    (status = 400, description = "Not a HubSpot delivery", body = crate::error::ErrorBody),
    (status = 401, description = "Missing or wrong signature, or a stale timestamp", body = crate::error::ErrorBody),
    (status = 413, description = "Larger than 1 MiB", body = crate::error::ErrorBody)))]
pub async fn hubspot(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    use domain::crm::CrmProvider;
    use infrastructure::hubspot::{is_authentic_v3, parse_webhook};
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // HubSpot signs the URL it called: ours, as the public sees it.
    let uri = format!("{}{}", state.public_url.trim_end_matches('/'), req.uri());
    let secret = state
        .crm
        .connections
        .providers
        .get(CrmProvider::Hubspot)
        .and_then(|connector| connector.webhook_secret.as_deref())
        .unwrap_or_default();
    if !is_authentic_v3(
        req.method().as_str(),
        &uri,
        &body,
        header("x-hubspot-request-timestamp"),
        header("x-hubspot-signature-v3"),
        secret,
        state.clock.now(),
    ) {
        return Ok(HttpResponse::Unauthorized().json(error_body(
            "invalid_webhook_signature",
            "the request does not carry HubSpot's signature for this app, or its timestamp is stale",
            None,
        )));
    }
    let changes = match parse_webhook(&body) {
        Ok(changes) => changes,
        Err(error) => return Ok(HttpResponse::BadRequest().json(error_body("malformed_webhook", &error, None))),
    };
    state.crm.record_contact_changes(CrmProvider::Hubspot, changes).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/webhooks/vapi")
            .app_data(web::PayloadConfig::new(WEBHOOK_LIMIT_BYTES))
            .post(vapi),
    )
    .service(
        resource("/api/webhooks/calendly")
            .app_data(web::PayloadConfig::new(WEBHOOK_LIMIT_BYTES))
            .post(calendly),
    )
    .service(
        resource("/api/webhooks/hubspot")
            .app_data(web::PayloadConfig::new(HUBSPOT_LIMIT_BYTES))
            .post(hubspot),
    );
}
