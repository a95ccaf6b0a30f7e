//! `/api/integrations/calendars`, `/api/calendar` and `/api/appointments`.

use crate::auth::Caller;
use crate::body::{BodyName, Fields, Json};
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::page_limit;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use application::auth::Session;
use application::calendar::{
    AppointmentFilter, AppointmentView, AvailabilityView, BookingRequest, BookingView, CalendarIntegrationView,
    Callback, ConnectResult, SlotRequest,
};
use application::oauth::SignInFeature;
use application::permissions::{authorize, Action};
use application::{AppError, ErrorKind};
use chrono::{DateTime, Utc};
use domain::calendar::{AppointmentStatus, CalendarProvider, CalendarSettings, SettingsPatch};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectCalendar {
    provider: CalendarProvider,
    /// Google and Outlook: the provider's calendar to book into (the account's primary calendar when absent).
    calendar_id: Option<String>,
    /// Calendly: a personal access token (scopes users:read and webhooks:write).
    personal_access_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAnswer {
    /// Google and Outlook: send the user's browser here; the provider redirects back to the callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_url: Option<String>,
    /// Calendly: the integration, connected at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    integration_id: Option<Uuid>,
}

/// Connect a calendar (owners and admins): Google and Outlook answer the
/// provider's sign-in URL (200); Calendly is connected at once with a personal
/// access token, its webhook subscribed (201).
#[utoipa::path(post, path = "/api/integrations/calendars/connect", tag = "calendar", security(("bearer" = [])),
    request_body = ConnectCalendar,
    responses(
        (status = 200, description = "Where to send the browser", body = ConnectAnswer),
        (status = 201, description = "Calendly connected", body = ConnectAnswer)))]
pub async fn connect(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ConnectCalendar>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.provider == CalendarProvider::Calendly {
        let token = body.personal_access_token.unwrap_or_default();
        let id = state.calendar.connect_calendly(&caller.0, &token).await?;
        return Ok(HttpResponse::Created().json(ConnectAnswer {
            authorization_url: None,
            integration_id: Some(id),
        }));
    }
    let authorization_url = state
        .calendar
        .start_connect(&caller.0, body.provider, body.calendar_id)
        .await?;
    Ok(HttpResponse::Ok().json(ConnectAnswer {
        authorization_url: Some(authorization_url),
        integration_id: None,
    }))
}

/// What a provider's redirect back to us carries (calendars and CRMs alike).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub(crate) code: Option<String>,
    pub(crate) state: Option<String>,
    /// The provider's error code when the sign-in was refused (`access_denied`…).
    pub(crate) error: Option<String>,
    /// `json` for a JSON answer instead of a redirect (also when the request accepts only JSON).
    pub(crate) format: Option<String>,
}

/// A provider's redirect back after a sign-in (calendars and CRMs alike): who
/// is signed in here, if anyone, what the provider sent, and whether to answer JSON.
pub struct SignInReturn {
    pub(crate) session: Option<Session>,
    pub(crate) callback: Callback,
    pub(crate) json: bool,
}

impl FromRequest for SignInReturn {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Option::<Caller>::from_request(request, payload);
        let query = web::Query::<CallbackQuery>::from_request(request, payload);
        let request = request.clone();
        Box::pin(async move {
            let session = caller.await.ok().flatten().map(|caller| caller.0);
            let query = query.await?.into_inner();
            Ok(SignInReturn {
                session,
                json: wants_json(&request, query.format.as_deref()),
                callback: Callback {
                    code: query.code,
                    state: query.state,
                    error: query.error,
                },
            })
        })
    }
}

/// A sign-in's result, as the app's settings page reads it from its query.
pub(crate) trait SignInResult: Serialize {
    fn settings_query(self) -> Vec<(&'static str, String)>;
}

impl SignInResult for ConnectResult {
    fn settings_query(self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (
                "calendar",
                if self.connected { "connected" } else { "error" }.to_owned(),
            ),
            ("provider", self.provider.as_str().to_owned()),
            ("integrationId", self.integration_id.to_string()),
        ];
        pairs.extend(self.error.map(|error| ("reason", error)));
        pairs
    }
}

/// Answers a completed sign-in: its result as JSON when asked, else a 303 to
/// the app's integration settings with the result in the query.
pub(crate) fn answer_sign_in(
    json: bool,
    result: impl SignInResult,
    public_url: &str,
) -> Result<HttpResponse, ApiError> {
    if json {
        return Ok(HttpResponse::Ok().json(result));
    }
    let mut target = url::Url::parse(public_url).map_err(|e| AppError::internal("reading VOXREACH_PUBLIC_URL", e))?;
    target.set_path("/settings/integrations");
    target.query_pairs_mut().extend_pairs(result.settings_query());
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.as_str()))
        .finish())
}

/// Whether the caller asked for JSON (`format=json`, or an `Accept` of JSON and not HTML).
fn wants_json(request: &HttpRequest, format: Option<&str>) -> bool {
    format == Some("json")
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

/// Where the provider sends the browser back. Redirects to the app with the
/// result (or answers JSON when asked); an unknown, used, expired or foreign
/// `state` is a 400 and stores nothing.
#[utoipa::path(get, path = "/api/integrations/calendars/callback", tag = "calendar", params(CallbackQuery),
    responses(
        (status = 200, description = "The result, as JSON", body = ConnectResult),
        (status = 303, description = "Back to the app, with the result in the query"),
        (status = 400, description = "Unknown, used, expired or foreign state", body = crate::error::ErrorBody)))]
pub async fn callback(state: web::Data<AppState>, sign_in: SignInReturn) -> Result<HttpResponse, ApiError> {
    let result = state
        .calendar
        .complete_connect(sign_in.session.as_ref(), sign_in.callback)
        .await?;
    answer_sign_in(sign_in.json, result, &state.public_url)
}

#[derive(Serialize, ToSchema)]
pub struct CalendarIntegrationList {
    integrations: Vec<CalendarIntegrationView>,
}

/// Connected calendars with their status and settings (never tokens).
#[utoipa::path(get, path = "/api/integrations/calendars", tag = "calendar", security(("bearer" = [])),
    responses((status = 200, description = "Connected calendars", body = CalendarIntegrationList)))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let integrations = state.calendar.list(&caller.0).await?;
    Ok(HttpResponse::Ok().json(CalendarIntegrationList { integrations }))
}

impl BodyName for SettingsPatch {
    const BODY_NAME: &'static str = "settings";
}

#[derive(Serialize, ToSchema)]
pub struct SettingsChanged {
    id: Uuid,
    settings: CalendarSettings,
}

/// Change a calendar's booking rules (owners and admins).
#[utoipa::path(patch, path = "/api/integrations/calendars/{id}", tag = "calendar", security(("bearer" = [])),
    request_body = SettingsPatch,
    responses((status = 200, description = "The settings now", body = SettingsChanged)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    patch: Fields<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.calendar.change_settings(&caller.0, *id, patch.0).await?;
    Ok(HttpResponse::Ok().json(SettingsChanged { id: *id, settings }))
}

/// Disconnect: revoked at the provider where it can be, tokens forgotten (owners and admins).
#[utoipa::path(delete, path = "/api/integrations/calendars/{id}", tag = "calendar", security(("bearer" = [])),
    responses((status = 204, description = "Disconnected")))]
pub async fn disconnect(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.calendar.disconnect(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Declares a request body asking for a slot: the slot's fields (one home
/// for both bodies: `serde(flatten)` cannot be combined with
/// `deny_unknown_fields`), then the body's own fields.
macro_rules! slot_body {
    ($name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        #[derive(Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// The agent whose calendar is asked (its own, else the organization's default).
            agent_id: Uuid,
            /// Local date, `YYYY-MM-DD`.
            #[schema(example = "2026-02-20")]
            date: String,
            /// Local time, `HH:MM` (24-hour).
            #[schema(example = "14:00")]
            time: String,
            /// Minutes, 1 to 480 (the calendar's default when absent).
            duration: Option<i64>,
            /// The IANA zone of `date` and `time` (the calendar's when absent).
            timezone: Option<String>,
            $($(#[$field_meta])* $field: $ty,)*
        }

        impl $name {
            /// The slot asked for, taken out of the body.
            fn take_slot(&mut self) -> SlotRequest {
                SlotRequest {
                    agent_id: Some(self.agent_id),
                    date: std::mem::take(&mut self.date),
                    time: std::mem::take(&mut self.time),
                    duration: self.duration,
                    timezone: self.timezone.take(),
                }
            }
        }
    };
}

slot_body!(CheckAvailability {});

/// Is a slot free? If not, the next three free slots.
#[utoipa::path(post, path = "/api/calendar/check-availability", tag = "calendar", security(("bearer" = [])),
    request_body = CheckAvailability,
    responses((status = 200, description = "Whether the slot is free, and alternatives", body = AvailabilityView)))]
pub async fn check_availability(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CheckAvailability>,
) -> Result<HttpResponse, ApiError> {
    let answer = state
        .calendar
        .check_availability(caller.0.organization_id, &body.into_inner().take_slot())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

slot_body!(Book {
    /// The event's title ("Meeting with <attendee>" when absent).
    title: Option<String>,
    attendee_name: String,
    attendee_email: Option<String>,
    /// E.164.
    attendee_phone: Option<String>,
    /// Create a Google Meet / Teams link.
    #[serde(default)]
    add_video_link: bool,
    /// The call this booking was made in: its outcome becomes `appointment`.
    call_id: Option<Uuid>,
});

/// Book a slot (members may). Booked: 201 with the appointment. Taken: 409
/// `slot_unavailable` with the reason and the next free slots in `details`.
#[utoipa::path(post, path = "/api/calendar/book", tag = "calendar", security(("bearer" = [])),
    request_body = Book,
    responses(
        (status = 201, description = "Booked", body = BookingView),
        (status = 409, description = "The slot is not free; details hold alternatives", body = crate::error::ErrorBody)))]
pub async fn book(state: web::Data<AppState>, caller: Caller, body: Json<Book>) -> Result<HttpResponse, ApiError> {
    authorize(&caller.0, Action::BookAppointments)?;
    let mut b = body.into_inner();
    let request = BookingRequest {
        slot: b.take_slot(),
        title: b.title,
        attendee_name: b.attendee_name,
        attendee_email: b.attendee_email,
        attendee_phone: b.attendee_phone,
        add_video_link: b.add_video_link,
        call_id: b.call_id,
    };
    let answer = state
        .calendar
        .book(
            caller.0.organization_id,
            &format!("user:{}", caller.0.user_id),
            Uuid::now_v7(),
            &request,
        )
        .await?;
    if answer.booked {
        return Ok(HttpResponse::Created().json(answer));
    }
    Err(AppError::new(
        ErrorKind::Conflict,
        "slot_unavailable",
        "the slot is not free; pick one of the alternatives",
    )
    .with_details(serde_json::json!({
        "reason": answer.reason,
        "slot": answer.slot,
        "alternatives": answer.alternatives,
        "timezone": answer.timezone,
    }))
    .into())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentQuery {
    agent_id: Option<Uuid>,
    /// Every status but `released` when absent.
    status: Option<AppointmentStatus>,
    /// Appointments starting at or after.
    from: Option<DateTime<Utc>>,
    /// Appointments starting before.
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AppointmentList {
    appointments: Vec<AppointmentView>,
}

/// Appointments, soonest first.
#[utoipa::path(get, path = "/api/appointments", tag = "calendar", security(("bearer" = [])), params(AppointmentQuery),
    responses((status = 200, description = "A page of appointments", body = AppointmentList)))]
pub async fn appointments(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AppointmentQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if to < from {
            return Err(AppError::validation("to", "to must not be before from").into());
        }
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::validation("offset", "offset must not be negative").into());
    }
    let filter = AppointmentFilter {
        agent_id: q.agent_id,
        call_id: None,
        status: q.status,
        from: q.from,
        to: q.to,
        limit: page_limit(q.limit)?,
        offset,
    };
    let appointments = state.calendar.appointments(&caller.0, &filter).await?;
    Ok(HttpResponse::Ok().json(AppointmentList { appointments }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/integrations/calendars").get(list))
        .service(resource("/api/integrations/calendars/connect").post(connect))
        .service(resource("/api/integrations/calendars/callback").get(callback))
        .service(
            resource("/api/integrations/calendars/{id}")
                .patch(update)
                .delete(disconnect),
        )
        .service(resource("/api/calendar/check-availability").post(check_availability))
        .service(resource("/api/calendar/book").post(book))
        .service(resource("/api/appointments").get(appointments));
}
