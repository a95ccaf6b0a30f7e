//! `/api/campaigns` (outbound campaigns) and `/api/dnc` (the organization's do-not-call list).

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError, ErrorBody};
use crate::server::AppState;
use crate::users::{page_limit, PageQuery, PAGE_LIMIT};
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use actix_web::{HttpMessage, HttpRequest};
use application::campaigns::upload::{ColumnMapping, ImportResult, UploadSummary};
use application::campaigns::{
    AttemptPage, CampaignStats, CampaignView, ContactPage, DncStatus, DncUploadResult, ListPage, Steer,
};
use application::{AppError, ErrorKind};
use domain::campaigns::{AttemptResult, CampaignSettings, CampaignStatus, ContactStatus, DncReason};
use domain::openapi::optional_integer;
use domain::phone::PhoneNumber;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The filter of the list; its page is a [`PageQuery`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    /// Only campaigns in this status.
    status: Option<CampaignStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    campaigns: Vec<CampaignView>,
}

/// Create a campaign, in draft.
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])), request_body = CampaignSettings,
    responses((status = 201, description = "Created, in draft", body = CampaignView)))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, actix_web::Error> {
    let mut raw = body.into_inner();
    // A campaign without its own zone is in the organization's.
    if let Some(fields) = raw.as_object_mut().filter(|fields| !fields.contains_key("timezone")) {
        let zone = state
            .organization
            .settings(&caller.0)
            .await
            .map_err(ApiError::from)?
            .timezone;
        fields.insert("timezone".into(), serde_json::Value::from(zone.name()));
    }
    let settings: CampaignSettings =
        serde_json::from_value(raw).map_err(|e| crate::error::unprocessable("invalid_body", &e.to_string()))?;
    let created = state
        .campaigns
        .create(&caller.0, settings)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(created))
}

/// The organization's campaigns (archived ones left out), newest first.
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])), params(CampaignFilter, PageQuery),
    responses((status = 200, description = "A page of campaigns", body = CampaignList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<CampaignFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let campaigns = state.campaigns.list(&caller.0, filter.status, page.page()?).await?;
    Ok(HttpResponse::Ok().json(CampaignList { campaigns }))
}

/// A campaign with its settings and progress.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "The campaign", body = CampaignView)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.get(&caller.0, *id).await?))
}

/// Change a campaign's settings: a JSON merge patch (absent keeps, `null`
/// clears). Everything may change in draft, scheduled and paused; while
/// running only `name` and `description`.
#[utoipa::path(patch, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    request_body(content = Object, description = "Fields of the campaign's settings to change"),
    responses((status = 200, description = "The changed campaign", body = CampaignView),
        (status = 409, description = "Not editable in this status (`campaign_not_editable`)", body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.update(&caller.0, *id, &body).await?))
}

/// Archive a campaign: hidden from lists, history kept. A running campaign is paused or cancelled first.
#[utoipa::path(delete, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    responses((status = 204, description = "Archived"),
        (status = 409, description = "The campaign is running (`campaign_running`)", body = ErrorBody)))]
pub async fn archive(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.campaigns.archive(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn steer(state: &AppState, caller: &Caller, id: Uuid, steer: Steer) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.steer(&caller.0, id, steer).await?))
}

/// Start a draft: running now, or scheduled until its `scheduledStart`.
#[utoipa::path(post, path = "/api/campaigns/{id}/start", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Running or scheduled", body = CampaignView),
        (status = 409, description = "Not a draft (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn start(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Start).await
}

/// Pause a running campaign: no new dials; calls in flight finish.
#[utoipa::path(post, path = "/api/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Paused", body = CampaignView),
        (status = 409, description = "Not running (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn pause(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Pause).await
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Running", body = CampaignView),
        (status = 409, description = "Not paused (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn resume(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Resume).await
}

/// Cancel a campaign that is not completed: no more dials, ever.
#[utoipa::path(post, path = "/api/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Cancelled", body = CampaignView),
        (status = 409, description = "Already completed or cancelled (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn cancel(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Cancel).await
}

fn too_large(limit: usize) -> ApiError {
    AppError::new(
        ErrorKind::TooLarge,
        "upload_too_large",
        format!("contact files may be at most {limit} bytes"),
    )
    .into()
}

/// Reads a body stream, refusing it as soon as it passes `limit`.
async fn read_limited<S, E>(mut stream: S, limit: usize) -> Result<Vec<u8>, ApiError>
where
    S: futures::Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut content = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::from(AppError::validation("file", format!("the upload broke off: {e}"))))?;
        if content.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        content.extend_from_slice(&chunk);
    }
    Ok(content)
}

/// The file of a `multipart/form-data` body: its part named `file` (or its first file part).
async fn multipart_file(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut parts = actix_multipart::Multipart::new(req.headers(), payload);
    while let Some(part) = parts.next().await {
        let part =
            part.map_err(|e| ApiError::from(AppError::validation("file", format!("not a multipart body: {e}"))))?;
        let is_file = part
            .content_disposition()
            .is_some_and(|d| d.get_name() == Some("file") || d.get_filename().is_some());
        if is_file {
            return read_limited(part, limit).await;
        }
    }
    Err(AppError::validation("file", "the form has no part named file").into())
}

/// A file's bytes from a `text/csv` (or plain) body or a `multipart/form-data` part named `file`, refused
/// past `limit` as soon as the declared or streamed size passes it.
async fn file_body(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let mime = req.mime_type().ok().flatten();
    match mime.as_ref().map(|m| (m.type_().as_str(), m.subtype().as_str())) {
        Some(("multipart", "form-data")) => multipart_file(req, payload, limit).await,
        Some(("text", "csv" | "plain") | ("application", "octet-stream" | "csv" | "vnd.ms-excel")) => {
            read_limited(payload, limit).await
        }
        _ => Err(ApiError::new(
            ErrorKind::Unsupported,
            "unsupported_media_type",
            "send the file as text/csv or multipart/form-data",
        )),
    }
}

/// Upload a contact file (`text/csv`, or `multipart/form-data` with a part named `file`): it is kept and read
/// once to propose a mapping. UTF-8 (with or without BOM) or Windows-1252; comma, semicolon or tab separated.
#[utoipa::path(post, path = "/api/campaigns/{id}/upload", tag = "campaigns", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "The CSV file (or multipart/form-data with a `file` part)"),
    responses((status = 201, description = "Kept; columns, proposed mapping, preview and counts", body = UploadSummary),
        (status = 400, description = "Not a CSV file (`csv_unreadable`)", body = ErrorBody),
        (status = 413, description = "Larger than `VOXREACH_UPLOAD_LIMIT_BYTES` (50 MB by default)", body = ErrorBody),
        (status = 415, description = "Neither text/csv nor multipart/form-data", body = ErrorBody)))]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content = file_body(&req, payload, state.upload_limit_bytes).await?;
    Ok(HttpResponse::Created().json(state.uploads.upload(&caller.0, *id, content).await?))
}

/// An upload as first read, with its import's result (refused rows by line) once imported.
#[utoipa::path(get, path = "/api/campaigns/{id}/upload/{uploadId}", tag = "campaigns", security(("bearer" = [])),
    params(("uploadId" = Uuid, Path, description = "The upload's id")),
    responses((status = 200, description = "The upload", body = UploadSummary)))]
pub async fn get_upload(
    state: web::Data<AppState>,
    caller: Caller,
    ids: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (campaign, upload) = ids.into_inner();
    Ok(HttpResponse::Ok().json(state.uploads.get(&caller.0, campaign, upload).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The mapping the upload proposed, edited as needed.
    mapping: ColumnMapping,
}

/// Import an upload with the confirmed mapping: numbers normalized to E.164, duplicates (in the file and
/// in the campaign) dropped, DNC numbers kept with status `dnc`, refused rows reported by line.
#[utoipa::path(post, path = "/api/campaigns/{id}/upload/{uploadId}/import", tag = "campaigns", security(("bearer" = [])),
    params(("uploadId" = Uuid, Path, description = "The upload's id")), request_body = ImportBody,
    responses((status = 200, description = "Imported", body = ImportResult),
        (status = 409, description = "The campaign is completed or cancelled", body = ErrorBody)))]
pub async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    ids: web::Path<(Uuid, Uuid)>,
    body: Json<ImportBody>,
) -> Result<HttpResponse, ApiError> {
    let (campaign, upload) = ids.into_inner();
    Ok(HttpResponse::Ok().json(state.uploads.import(&caller.0, campaign, upload, &body.mapping).await?))
}

/// The page of one of a campaign's lists a query asks for.
fn list_page<F>(
    campaign_id: Uuid,
    only: Option<F>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<ListPage<F>, ApiError> {
    Ok(ListPage {
        campaign_id,
        only,
        after: cursor,
        limit: page_limit(limit)?,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only contacts in this status.
    status: Option<ContactStatus>,
    /// `nextCursor` of the previous page.
    cursor: Option<Uuid>,
    /// Contacts per page (default 50).
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
}

/// A campaign's contacts in import order, with their progress.
#[utoipa::path(get, path = "/api/campaigns/{id}/contacts", tag = "campaigns", security(("bearer" = [])), params(ContactQuery),
    responses((status = 200, description = "A page of contacts", body = ContactPage)))]
pub async fn contacts(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = list_page(*id, query.status, query.cursor, query.limit)?;
    Ok(HttpResponse::Ok().json(state.campaigns.contacts(&caller.0, page).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// Only attempts with this result.
    result: Option<AttemptResult>,
    /// `nextCursor` of the previous page.
    cursor: Option<Uuid>,
    /// Calls per page (default 50).
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
}

/// Every attempt of the campaign in dialling order: contact, attempt number, result, call id.
#[utoipa::path(get, path = "/api/campaigns/{id}/calls", tag = "campaigns", security(("bearer" = [])), params(AttemptQuery),
    responses((status = 200, description = "A page of attempts", body = AttemptPage)))]
pub async fn calls(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<AttemptQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = list_page(*id, query.result, query.cursor, query.limit)?;
    Ok(HttpResponse::Ok().json(state.campaigns.attempts(&caller.0, page).await?))
}

/// How the campaign is going: SPEC's figures, contacts by status, contact and conversion rates, pace, ETA.
#[utoipa::path(get, path = "/api/campaigns/{id}/stats", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "The campaign's statistics", body = CampaignStats)))]
pub async fn stats(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.stats(&caller.0, *id).await?))
}

/// How often the live stream looks for changes, and says it is alive when nothing changed.
const LIVE_POLL: std::time::Duration = std::time::Duration::from_secs(1);
const LIVE_KEEP_ALIVE_POLLS: u32 = 15;
/// A stream ends after this long (clients reconnect with a current session),
/// so an expired or revoked session does not keep one open.
const LIVE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Live progress as Server-Sent Events: a `stats` event (the body of `GET …/stats`) at once and whenever
/// the figures change; a comment line every 15 s keeps idle connections open; the stream ends after 15 minutes
/// (reconnect to go on).
#[utoipa::path(get, path = "/api/campaigns/{id}/events", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "`text/event-stream` of `stats` events", content_type = "text/event-stream", body = String)))]
pub async fn events(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let session = caller.0;
    let campaign = *id;
    // Refused before the stream starts when the campaign is not the caller's.
    let first = state.campaigns.stats(&session, campaign).await?;
    let ends = tokio::time::Instant::now() + LIVE_LIFETIME;
    let stream = futures::stream::unfold(
        (state, None::<String>, Some(first), 0u32),
        move |(state, last, pending, quiet)| async move {
            let mut quiet = quiet;
            let mut next = pending;
            loop {
                let stats = match next.take() {
                    Some(stats) => stats,
                    None if tokio::time::Instant::now() >= ends => return None,
                    None => {
                        tokio::time::sleep(LIVE_POLL).await;
                        match state.campaigns.stats(&session, campaign).await {
                            Ok(stats) => stats,
                            // The campaign was archived (or the database is away): the stream ends.
                            Err(_) => return None,
                        }
                    }
                };
                let body = serde_json::to_string(&stats).unwrap_or_default();
                if last.as_deref() != Some(body.as_str()) {
                    let frame = web::Bytes::from(format!("event: stats\ndata: {body}\n\n"));
                    return Some((Ok::<_, actix_web::Error>(frame), (state, Some(body), None, 0)));
                }
                quiet += 1;
                if quiet >= LIVE_KEEP_ALIVE_POLLS {
                    return Some((Ok(web::Bytes::from_static(b": alive\n\n")), (state, last, None, 0)));
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncBody {
    #[schema(value_type = PhoneNumber)]
    phone: String,
    reason: DncReason,
}

fn parse_phone(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| AppError::validation("phone", e.to_string()).into())
}

/// Put a number on the organization's do-not-call list (listing it again keeps the first listing).
#[utoipa::path(post, path = "/api/dnc", tag = "campaigns", security(("bearer" = [])), request_body = DncBody,
    responses((status = 201, description = "Listed", body = DncStatus)))]
pub async fn add_dnc(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<DncBody>,
) -> Result<HttpResponse, ApiError> {
    let phone = parse_phone(&body.phone)?;
    Ok(HttpResponse::Created().json(state.dnc.add(&caller.0, phone, body.reason).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncQuery {
    /// Check one number (any format a person types; answered in E.164).
    phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DncList {
    numbers: Vec<DncStatus>,
}

/// One number's standing, or a page of the list.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum DncAnswer {
    One(DncStatus),
    Page(DncList),
}

/// With `phone`: that number's standing (`listed: false` when absent). Without: the listed numbers, newest first.
#[utoipa::path(get, path = "/api/dnc", tag = "campaigns", security(("bearer" = [])), params(DncQuery, PageQuery),
    responses((status = 200, description = "A number's standing, or a page of the list", body = DncAnswer)))]
pub async fn dnc(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DncQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let answer = match &query.phone {
        Some(raw) => DncAnswer::One(state.dnc.status(&caller.0, &parse_phone(raw)?).await?),
        None => DncAnswer::Page(DncList {
            numbers: state.dnc.list(&caller.0, page.page()?).await?,
        }),
    };
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncUploadQuery {
    /// Why these numbers are listed (default `manual_add`).
    reason: Option<DncReason>,
}

/// List many numbers at once: the US National DNC Registry's download (one 10-digit number per line) or a
/// CSV file with a phone column (`text/csv`, or `multipart/form-data` with a part named `file`).
#[utoipa::path(post, path = "/api/dnc/upload", tag = "campaigns", security(("bearer" = [])), params(DncUploadQuery),
    request_body(content = String, content_type = "text/csv", description = "The numbers"),
    responses((status = 200, description = "What was listed, and the refused lines", body = DncUploadResult),
        (status = 413, description = "Larger than `VOXREACH_UPLOAD_LIMIT_BYTES`", body = ErrorBody),
        (status = 415, description = "Neither text/csv nor multipart/form-data", body = ErrorBody),
        (status = 422, description = "A CSV file without a phone column", body = ErrorBody)))]
pub async fn upload_dnc(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DncUploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content = file_body(&req, payload, state.upload_limit_bytes).await?;
    let reason = query.reason.unwrap_or(DncReason::ManualAdd);
    Ok(HttpResponse::Ok().json(state.dnc.upload(&caller.0, &content, reason).await?))
}

/// Take a number off the list (owners and admins; recorded with who did it).
#[utoipa::path(delete, path = "/api/dnc/{phone}", tag = "campaigns", security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number, E.164 (`+` written `%2B`)")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not on the list (`dnc_not_listed`)", body = ErrorBody)))]
pub async fn remove_dnc(
    state: web::Data<AppState>,
    caller: Caller,
    phone: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.dnc.remove(&caller.0, parse_phone(&phone)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/campaigns").post(create).get(list))
        .service(resource("/api/campaigns/{id}").get(get).patch(update).delete(archive));
    cfg.service(resource("/api/campaigns/{id}/upload").post(upload))
        .service(resource("/api/campaigns/{id}/upload/{uploadId}").get(get_upload))
        .service(resource("/api/campaigns/{id}/upload/{uploadId}/import").post(import))
        .service(resource("/api/campaigns/{id}/contacts").get(contacts))
        .service(resource("/api/campaigns/{id}/calls").get(calls))
        .service(resource("/api/campaigns/{id}/stats").get(stats))
        .service(resource("/api/campaigns/{id}/events").get(events));
    cfg.service(resource("/api/campaigns/{id}/start").post(start))
        .service(resource("/api/campaigns/{id}/pause").post(pause))
        .service(resource("/api/campaigns/{id}/resume").post(resume))
        .service(resource("/api/campaigns/{id}/cancel").post(cancel));
    cfg.service(resource("/api/dnc").post(add_dnc).get(dnc))
        .service(resource("/api/dnc/upload").post(upload_dnc))
        .service(resource("/api/dnc/{phone}").delete(remove_dnc));
}
