//! CRM sync tests' world: HubSpot faked with wiremock (OAuth endpoints and
//! CRM API on one server, answering as HubSpot does), an organization that
//! connects it the way a user does, and calls that end and are synced.

use crate::{ManualClock, TestApp};
use infrastructure::config::{crm_providers, OAuthAppSettings};
use serde_json::{json, Value};
use std::sync::Arc;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The HubSpot app's client secret in tests: it also signs HubSpot's webhooks.
pub const CLIENT_SECRET: &str = "hs-secret";

/// An organization with HubSpot configured (not yet connected), on a manual clock at 2026-03-02T13:00Z.
pub struct World {
    pub app: TestApp,
    pub hubspot: MockServer,
    pub clock: Arc<ManualClock>,
    pub token: String,
    pub organization_id: String,
}

pub async fn world() -> World {
    let hubspot = MockServer::start().await;
    let clock = ManualClock::at("2026-03-02T13:00:00Z");
    let uri = hubspot.uri();
    let providers = crm_providers(
        Some(&OAuthAppSettings {
            client_id: "hs-client".into(),
            client_secret: CLIENT_SECRET.into(),
            auth_url: format!("{uri}/oauth/authorize"),
            token_url: format!("{uri}/oauth/v1/token"),
            api_base: uri.clone(),
            revoke_url: None,
        }),
        infrastructure::hubspot::HubSpotLimits::default(),
        "https://app.voxreach.test",
    )
    .unwrap();
    let app_clock = clock.clone();
    // The same fake answers as Vapi and as Google Calendar (their paths differ from HubSpot's), for
    // outbound calls and for meetings booked during calls.
    let vapi = uri.clone();
    let calendars = infrastructure::config::calendar_providers(
        Some(&crate::calendars::google_settings(&uri)),
        None,
        infrastructure::calendly::DEFAULT_API_BASE,
        crate::PUBLIC_URL,
    )
    .unwrap();
    let app = TestApp::spawn_with(|w| {
        w.clock = app_clock;
        w.crm_providers = providers;
        w.calendar_providers = calendars;
        w.vapi_base_url = vapi;
        w.vapi_api_key = "vapi-key".into();
    })
    .await;
    let (token, registered) = app.register("owner@crm.test", "Pipeline Inc").await;
    World {
        app,
        hubspot,
        clock,
        token,
        organization_id: registered["user"]["organizationId"].as_str().unwrap().to_owned(),
    }
}

/// HubSpot's token endpoint's answer.
pub fn token_answer(access: &str, expires_in: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": access, "refresh_token": "hs-refresh-1", "expires_in": expires_in, "token_type": "bearer"}),
    )
}

/// A search's answer holding `results`.
pub fn found(results: Value) -> ResponseTemplate {
    let total = results.as_array().map_or(0, Vec::len);
    ResponseTemplate::new(200).set_body_json(json!({"total": total, "results": results}))
}

/// A create's answer: the new object's id.
pub fn created(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"id": id, "properties": {}, "createdAt": "2026-03-02T13:00:00Z",
        "updatedAt": "2026-03-02T13:00:00Z", "archived": false}))
}

impl World {
    /// Connects HubSpot (portal 62515) with tokens that expire in `expires_in` seconds.
    pub async fn connect(&self, expires_in: i64) {
        Mock::given(method("POST"))
            .and(path("/oauth/v1/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(token_answer("hs-access-1", expires_in))
            .up_to_n_times(1)
            .mount(&self.hubspot)
            .await;
        Mock::given(method("GET"))
            .and(path("/oauth/v1/access-tokens/hs-access-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "hs-access-1", "user": "owner@crm.test",
                "hub_domain": "pipeline.hubspot.com", "scopes": ["oauth", "crm.objects.contacts.write"], "hub_id": 62515,
                "app_id": 456, "expires_in": expires_in, "user_id": 123, "token_type": "access"})))
            .mount(&self.hubspot)
            .await;
        let (status, body) = self
            .app
            .post(
                "/api/integrations/crm/connect",
                Some(&self.token),
                json!({"provider": "hubspot"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let url = url::Url::parse(body["authorizationUrl"].as_str().unwrap()).unwrap();
        assert_eq!(url.path(), "/oauth/authorize");
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert_eq!(
            param("redirect_uri").as_deref(),
            Some("https://app.voxreach.test/api/integrations/crm/callback")
        );
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        let state = param("state").unwrap();
        let (status, body) = self
            .app
            .get(
                &format!("/api/integrations/crm/callback?code=hs-code&state={state}&format=json"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&body["connected"], &body["accountId"]),
            (&json!(true), &json!("62515"))
        );
        self.app.settle().await;
    }

    /// An inbound call from `customer` ends (with an analysed `outcome`); its call id.
    pub async fn call_ends(&self, vapi_id: &str, customer: &str, outcome: Option<&str>) -> String {
        let report = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "call": {"id": vapi_id, "type": "inboundPhoneCall", "metadata": {"voxreachOrganizationId": self.organization_id}},
            "customer": {"number": customer},
            "startedAt": "2026-03-02T13:00:00.000Z", "endedAt": "2026-03-02T13:04:32.000Z", "durationSeconds": 272,
            "artifact": {"transcript": "AI: Hi, this is Ava.\nUser: I'd like a demo.", "recordingUrl": "https://storage.vapi.ai/rec-1.wav"},
            "analysis": {"summary": "Wants a demo.", "structuredData": {"name": "Ann Lee", "company": "Acme", "outcome": outcome}}}});
        let (status, body) = self.app.deliver_vapi(&report).await;
        assert_eq!(status, 200, "{body}");
        self.app.settle().await;
        let (_, calls) = self.app.get("/api/calls", Some(&self.token)).await;
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["vapiCallId"] == vapi_id)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The JSON bodies HubSpot received on `method_name path_suffix`.
    pub async fn requests_to(&self, method_name: &str, path_suffix: &str) -> Vec<Value> {
        self.hubspot
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == method_name && r.url.path() == path_suffix)
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    /// The sync log entries `query` selects, newest first.
    pub async fn sync_log(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .app
            .get(&format!("/api/integrations/crm/sync-log{query}"), Some(&self.token))
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

/// HubSpot finds contact `id` (Ann Lee of Acme, +14155552671) for any number searched.
pub async fn known_contact(w: &World, id: &str) {
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(found(
            json!([{"id": id, "properties": {"firstname": "Ann", "lastname": "Lee",
            "phone": "+14155552671", "company": "Acme", "hubspot_owner_id": "77"},
            "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z", "archived": false}]),
        ))
        .mount(&w.hubspot)
        .await;
}

/// HubSpot logs one call (9001) and one note (7001), and expects exactly one of each.
pub async fn engagement_mocks(w: &World) {
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/calls"))
        .respond_with(created("9001"))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(created("7001"))
        .expect(1)
        .mount(&w.hubspot)
        .await;
}
