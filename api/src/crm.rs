//! `/api/integrations/crm`.

use crate::auth::Caller;
use crate::body::{BodyName, Fields, Json};
use crate::calendar::{answer_sign_in, SignInResult, SignInReturn};
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::page_limit;
use actix_web::{web, HttpResponse};
use application::crm::{
    ContactSyncResult, CrmConnectResult, CrmIntegrationView, CrmSettingsPatch, SyncLogEntry, SyncLogFilter,
    SyncLogStatus,
};
use application::oauth::SignInFeature;
use application::AppError;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::crm::{CrmProvider, CrmSettings};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectCrm {
    provider: CrmProvider,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrmAuthorizationUrl {
    /// Send the user's browser here; the CRM redirects back to the callback.
    authorization_url: String,
}

/// Start connecting a CRM (owners and admins): its sign-in URL. Connecting a
/// CRM already connected replaces that connection.
#[utoipa::path(post, path = "/api/integrations/crm/connect", tag = "crm", security(("bearer" = [])),
    request_body = ConnectCrm,
    responses((status = 200, description = "Where to send the browser", body = CrmAuthorizationUrl)))]
pub async fn connect(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ConnectCrm>,
) -> Result<HttpResponse, ApiError> {
    let authorization_url = state.crm.start_connect(&caller.0, body.provider).await?;
    Ok(HttpResponse::Ok().json(CrmAuthorizationUrl { authorization_url }))
}

/// Where the CRM sends the browser back: redirects to the app with the result
/// (JSON when asked); an unknown, used, expired or foreign `state` is a 400.
#[utoipa::path(get, path = "/api/integrations/crm/callback", tag = "crm", params(crate::calendar::CallbackQuery),
    responses(
        (status = 200, description = "The result, as JSON", body = CrmConnectResult),
        (status = 303, description = "Back to the app, with the result in the query"),
        (status = 400, description = "Unknown, used, expired or foreign state", body = crate::error::ErrorBody)))]
pub async fn callback(state: web::Data<AppState>, sign_in: SignInReturn) -> Result<HttpResponse, ApiError> {
    let result = state
        .crm
        .complete_connect(sign_in.session.as_ref(), sign_in.callback)
        .await?;
    answer_sign_in(sign_in.json, result, &state.public_url)
}

impl SignInResult for CrmConnectResult {
    fn settings_query(self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("crm", if self.connected { "connected" } else { "error" }.to_owned()),
            ("provider", self.provider.as_str().to_owned()),
        ];
        pairs.extend(self.error.map(|error| ("reason", error)));
        pairs
    }
}

#[derive(Serialize, ToSchema)]
pub struct CrmIntegrationList {
    integrations: Vec<CrmIntegrationView>,
}

/// Connected CRMs: status, account, scopes, settings, last sync and error (never tokens).
#[utoipa::path(get, path = "/api/integrations/crm", tag = "crm", security(("bearer" = [])),
    responses((status = 200, description = "Connected CRMs", body = CrmIntegrationList)))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let integrations = state.crm.list(&caller.0).await?;
    Ok(HttpResponse::Ok().json(CrmIntegrationList { integrations }))
}

impl BodyName for CrmSettingsPatch {
    const BODY_NAME: &'static str = "settings";
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderQuery {
    provider: CrmProvider,
}

/// Change sync settings (owners and admins); properties and stages are checked against the CRM.
#[utoipa::path(patch, path = "/api/integrations/crm", tag = "crm", security(("bearer" = [])), params(ProviderQuery),
    request_body = CrmSettingsPatch,
    responses((status = 200, description = "The settings now", body = CrmSettings)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ProviderQuery>,
    patch: Fields<CrmSettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.crm.change_settings(&caller.0, query.provider, patch.0).await?;
    Ok(HttpResponse::Ok().json(settings))
}

/// Disconnect (owners and admins): revoked at the CRM where possible, tokens forgotten.
#[utoipa::path(delete, path = "/api/integrations/crm", tag = "crm", security(("bearer" = [])), params(ProviderQuery),
    responses((status = 204, description = "Disconnected")))]
pub async fn disconnect(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ProviderQuery>,
) -> Result<HttpResponse, ApiError> {
    state.crm.disconnect(&caller.0, query.provider).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncContact {
    /// E.164 (or a US national number).
    phone: String,
    provider: CrmProvider,
}

/// The manual sync test: finds the contact with this phone, or creates it.
#[utoipa::path(post, path = "/api/integrations/crm/sync-contact", tag = "crm", security(("bearer" = [])),
    request_body = SyncContact,
    responses((status = 200, description = "found or created, with the CRM's id", body = ContactSyncResult)))]
pub async fn sync_contact(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<SyncContact>,
) -> Result<HttpResponse, ApiError> {
    let result = state.crm.sync_contact(&caller.0, body.provider, &body.phone).await?;
    Ok(HttpResponse::Ok().json(result))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogQuery {
    provider: Option<CrmProvider>,
    call_id: Option<Uuid>,
    /// `succeeded`, `failed` or `skipped`.
    status: Option<String>,
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogPage {
    items: Vec<SyncLogEntry>,
    next_cursor: Option<String>,
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339()))
}

fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || AppError::validation("cursor", "cursor is invalid: use nextCursor of the previous page");
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc);
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Each sync attempt: action, result, external id and error; newest first.
#[utoipa::path(get, path = "/api/integrations/crm/sync-log", tag = "crm", security(("bearer" = [])), params(SyncLogQuery),
    responses((status = 200, description = "A page of the sync log", body = SyncLogPage)))]
pub async fn sync_log(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<SyncLogQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let status = q
        .status
        .as_deref()
        .map(|raw| {
            SyncLogStatus::parse(raw)
                .ok_or_else(|| AppError::validation("status", "status must be succeeded, failed or skipped"))
        })
        .transpose()?;
    let limit = page_limit(q.limit)?;
    let filter = SyncLogFilter {
        provider: q.provider,
        call_id: q.call_id,
        status,
        limit,
        before: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let items = state.crm.sync_log(&caller.0, &filter).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|last| encode_cursor(last.at, last.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(SyncLogPage { items, next_cursor }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStarted {
    /// Calls that ended since then, before the connection, are written to the CRM.
    since: DateTime<Utc>,
}

/// Write the last 90 days' calls (from before the connection) to a connected
/// CRM (owners and admins): call by call, or, from 200 calls on a CRM with a
/// bulk interface (Salesforce), in one bulk job. Results show in the sync log.
#[utoipa::path(post, path = "/api/integrations/crm/backfill", tag = "crm", security(("bearer" = [])),
    request_body = ConnectCrm,
    responses(
        (status = 202, description = "The backfill is under way", body = BackfillStarted),
        (status = 409, description = "A backfill is already under way, or the CRM is disconnected", body = crate::error::ErrorBody)))]
pub async fn backfill(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ConnectCrm>,
) -> Result<HttpResponse, ApiError> {
    let since = state.crm.backfill(&caller.0, body.provider).await?;
    Ok(HttpResponse::Accepted().json(BackfillStarted { since }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/integrations/crm")
            .get(list)
            .patch(update)
            .delete(disconnect),
    )
    .service(resource("/api/integrations/crm/connect").post(connect))
    .service(resource("/api/integrations/crm/callback").get(callback))
    .service(resource("/api/integrations/crm/sync-contact").post(sync_contact))
    .service(resource("/api/integrations/crm/backfill").post(backfill))
    .service(resource("/api/integrations/crm/sync-log").get(sync_log));
}
