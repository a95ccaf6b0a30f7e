//! CRM sync tests' world: HubSpot, Salesforce and Pipedrive faked with one
//! wiremock server (OAuth endpoints and CRM APIs, answering as each does;
//! their paths differ), an organization that connects them the way a user
//! does, and calls that end and are synced.

use crate::{ManualClock, TestApp};
use infrastructure::config::{crm_providers, CrmApps, OAuthAppSettings, PipedriveAppSettings, SalesforceAppSettings};
use serde_json::{json, Value};
use std::sync::Arc;
use wiremock::matchers::{body_partial_json, body_string_contains, method, path, query_param};
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
        &CrmApps {
            hubspot: Some(OAuthAppSettings {
                client_id: "hs-client".into(),
                client_secret: CLIENT_SECRET.into(),
                auth_url: format!("{uri}/oauth/authorize"),
                token_url: format!("{uri}/oauth/v1/token"),
                api_base: uri.clone(),
                revoke_url: None,
            }),
            salesforce: Some(SalesforceAppSettings {
                client_id: "sf-client".into(),
                client_secret: "sf-secret".into(),
                login_url: uri.clone(),
                api_hosts: "127.0.0.1".into(),
                budget_share: 0.8,
            }),
            pipedrive: Some(PipedriveAppSettings {
                client_id: "pd-client".into(),
                client_secret: "pd-secret".into(),
                auth_url: format!("{uri}/pipedrive/oauth/authorize"),
                token_url: format!("{uri}/pipedrive/oauth/token"),
                revoke_url: format!("{uri}/pipedrive/oauth/revoke"),
                api_hosts: "127.0.0.1".into(),
            }),
            ..Default::default()
        },
        "https://app.voxreach.test",
        clock.clone(),
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
        self.app.call_id_of(&self.token, vapi_id).await
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

    /// An agent named `name` with `prompt`, created as the owner and synced to
    /// the fake (which answers as Vapi: assistant `asst_1`); its JSON.
    pub async fn create_agent(&self, name: &str, prompt: &str) -> Value {
        Mock::given(method("POST"))
            .and(path("/assistant"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "asst_1"})))
            .mount(&self.hubspot)
            .await;
        let (status, agent) = self
            .app
            .post(
                "/api/agents",
                Some(&self.token),
                json!({"name": name, "systemPrompt": prompt, "voice": {"provider": "openai", "voiceId": "nova"}}),
            )
            .await;
        assert_eq!(status, 201, "{agent}");
        self.app.drain_work().await;
        agent
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

/// HubSpot creates a record of `object` (`calls`, `notes`…) as `id`: a mock to mount.
pub fn hubspot_creates(object: &str, id: &str) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!("/crm/v3/objects/{object}")))
        .respond_with(created(id))
}

/// HubSpot's search of `object` (`contacts`, `deals`…) finds `results`: a mock to mount.
pub fn hubspot_search_finds(object: &str, results: Value) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!("/crm/v3/objects/{object}/search")))
        .respond_with(found(results))
}

/// HubSpot finds contact `id` (Ann Lee of Acme, +14155552671) for any number searched.
pub async fn known_contact(w: &World, id: &str) {
    hubspot_search_finds(
        "contacts",
        json!([{"id": id, "properties": {"firstname": "Ann", "lastname": "Lee",
            "phone": "+14155552671", "company": "Acme", "hubspot_owner_id": "77"},
            "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z", "archived": false}]),
    )
    .mount(&w.hubspot)
    .await;
}

/// HubSpot logs one call (9001) and one note (7001), and expects exactly one of each.
pub async fn engagement_mocks(w: &World) {
    hubspot_creates("calls", "9001").expect(1).mount(&w.hubspot).await;
    hubspot_creates("notes", "7001").expect(1).mount(&w.hubspot).await;
}

/// HubSpot has no open deal and creates one (3001) in `stage`, expected once.
pub async fn new_deal_mocks(w: &World, stage: &str) {
    hubspot_search_finds("deals", json!([])).mount(&w.hubspot).await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals"))
        .and(body_partial_json(json!({"properties": {"dealstage": stage}})))
        .respond_with(created("3001"))
        .expect(1)
        .mount(&w.hubspot)
        .await;
}

/// The steps of a sync log (as [`World::sync_log`] returns it), oldest first:
/// each one's action, status and `detail` field (`externalId`, `error`…).
pub fn sync_steps<'a>(log: &'a [Value], detail: &str) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
    log.iter()
        .rev()
        .map(|l| {
            (
                l["action"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
                l[detail].as_str(),
            )
        })
        .collect()
}

/// One of the CRMs, as its fake answers: sign-in, a known caller, and the
/// writes a synced call makes. The same test drives each through the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crm {
    HubSpot,
    Salesforce,
    Pipedrive,
}

/// Salesforce's versioned REST path.
pub const SF: &str = "/services/data/v62.0";
/// Ann Lee's record at Salesforce (a Contact) and Pipedrive (a person).
pub const SF_CONTACT: &str = "0035e00000AnnLeAAV";
pub const PD_PERSON: i64 = 501;

impl Crm {
    pub fn name(self) -> &'static str {
        match self {
            Crm::HubSpot => "hubspot",
            Crm::Salesforce => "salesforce",
            Crm::Pipedrive => "pipedrive",
        }
    }

    /// The account id the sign-in reports.
    pub fn account_id(self) -> &'static str {
        match self {
            Crm::HubSpot => "62515",
            Crm::Salesforce => "00D5e000000PipEAA",
            Crm::Pipedrive => "7001",
        }
    }

    /// The id of Ann Lee (+14155552671) at this CRM.
    pub fn contact_id(self) -> String {
        match self {
            Crm::HubSpot => "501".into(),
            Crm::Salesforce => SF_CONTACT.into(),
            Crm::Pipedrive => PD_PERSON.to_string(),
        }
    }

    /// The token endpoint's path at the fake.
    pub fn token_path(self) -> &'static str {
        match self {
            Crm::HubSpot => "/oauth/v1/token",
            Crm::Salesforce => "/services/oauth2/token",
            Crm::Pipedrive => "/pipedrive/oauth/token",
        }
    }

    /// The token endpoint's answer, naming the API address where the CRM does.
    pub fn token_answer(self, w: &World, access: &str) -> ResponseTemplate {
        let uri = w.hubspot.uri();
        match self {
            Crm::HubSpot => token_answer(access, 1800),
            Crm::Salesforce => ResponseTemplate::new(200).set_body_json(json!({"access_token": access,
                "refresh_token": "sf-refresh-1", "instance_url": uri, "token_type": "Bearer",
                "id": "https://login.salesforce.com/id/00D5e000000PipEAA/0055e000001AbcdAAA",
                "issued_at": "1772456400000", "signature": "c2lnbmF0dXJl"})),
            Crm::Pipedrive => ResponseTemplate::new(200).set_body_json(json!({"access_token": access,
                "refresh_token": "pd-refresh-1", "expires_in": 3599, "scope": "base,deals:full,contacts:full,activities:full",
                "api_domain": uri, "token_type": "Bearer"})),
        }
    }

    async fn mount_account(self, w: &World) {
        match self {
            Crm::HubSpot => {
                Mock::given(method("GET"))
                    .and(path("/oauth/v1/access-tokens/hs-access-1"))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "hs-access-1",
                        "hub_id": 62515, "scopes": ["oauth"], "app_id": 456, "user_id": 123, "token_type": "access"})))
                    .mount(&w.hubspot)
                    .await
            }
            Crm::Salesforce => {
                Mock::given(method("GET"))
                    .and(path(format!("{SF}/query")))
                    .and(query_param("q", "SELECT Id FROM Organization LIMIT 1"))
                    .respond_with(
                        ResponseTemplate::new(200).set_body_json(json!({"totalSize": 1, "done": true,
                        "records": [{"attributes": {"type": "Organization"}, "Id": "00D5e000000PipEAA"}]})),
                    )
                    .mount(&w.hubspot)
                    .await
            }
            Crm::Pipedrive => {
                Mock::given(method("GET"))
                    .and(path("/api/v1/users/me"))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true,
                        "data": {"id": 11, "name": "Owner", "email": "owner@crm.test", "company_id": 7001,
                        "company_domain": "pipeline"}})))
                    .mount(&w.hubspot)
                    .await
            }
        }
    }

    /// The fake knows Ann Lee (+14155552671) whatever number is searched.
    pub async fn mount_known_contact(self, w: &World) {
        match self {
            Crm::HubSpot => known_contact(w, "501").await,
            Crm::Salesforce => {
                Mock::given(method("GET"))
                    .and(path(format!("{SF}/search")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"searchRecords": [
                        {"attributes": {"type": "Contact"}, "Id": SF_CONTACT, "Name": "Ann Lee",
                         "Account": {"Name": "Acme"}, "OwnerId": "0055e000001AbcdAAA"}]})))
                    .mount(&w.hubspot)
                    .await
            }
            Crm::Pipedrive => {
                Mock::given(method("GET"))
                    .and(path("/api/v2/persons/search"))
                    .respond_with(
                        ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [
                        {"result_score": 1.0, "item": {"id": PD_PERSON, "type": "person", "name": "Ann Lee",
                         "phones": ["+14155552671"], "emails": [], "organization": {"id": 9, "name": "Acme"},
                         "owner": {"id": 11}}}]}, "additional_data": {"next_cursor": null}})),
                    )
                    .mount(&w.hubspot)
                    .await
            }
        }
    }

    /// The fake takes one call record, one note and one new deal in the
    /// outcome `stage`, each expected once; their ids.
    pub async fn mount_writes(self, w: &World, stage: &str) -> [String; 3] {
        let once = |template: ResponseTemplate, m: wiremock::MockBuilder| m.respond_with(template).expect(1);
        match self {
            Crm::HubSpot => {
                engagement_mocks(w).await;
                new_deal_mocks(w, stage).await;
                ["9001".into(), "7001".into(), "3001".into()]
            }
            Crm::Salesforce => {
                let sf_created = |id: &str| {
                    ResponseTemplate::new(201).set_body_json(json!({"id": id, "success": true, "errors": []}))
                };
                once(
                    sf_created("00T5e00000CallAAAQ"),
                    Mock::given(method("POST")).and(path(format!("{SF}/sobjects/Task"))),
                )
                .mount(&w.hubspot)
                .await;
                once(
                    sf_created("0025e00000NoteAAAQ"),
                    Mock::given(method("POST")).and(path(format!("{SF}/sobjects/Note"))),
                )
                .mount(&w.hubspot)
                .await;
                Mock::given(method("GET"))
                    .and(path(format!("{SF}/query")))
                    .and(query_param_contains_text("q", "FROM OpportunityContactRole"))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": []})))
                    .mount(&w.hubspot)
                    .await;
                once(
                    ResponseTemplate::new(200).set_body_json(json!({"compositeResponse": [
                        {"body": {"id": "0065e00000DealAAAQ", "success": true, "errors": []}, "httpHeaders": {},
                         "httpStatusCode": 201, "referenceId": "deal"},
                        {"body": {"id": "00K5e00000RoleAAAQ", "success": true, "errors": []}, "httpHeaders": {},
                         "httpStatusCode": 201, "referenceId": "role"},
                        {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "filedCall"}]})),
                    Mock::given(method("POST"))
                        .and(path(format!("{SF}/composite")))
                        .and(body_string_contains(format!("\"StageName\":\"{stage}\""))),
                )
                .mount(&w.hubspot)
                .await;
                [
                    "00T5e00000CallAAAQ".into(),
                    "0025e00000NoteAAAQ".into(),
                    "0065e00000DealAAAQ".into(),
                ]
            }
            Crm::Pipedrive => {
                let pd_created =
                    |id: i64| ResponseTemplate::new(201).set_body_json(json!({"success": true, "data": {"id": id}}));
                once(
                    pd_created(8001),
                    Mock::given(method("POST"))
                        .and(path("/api/v2/activities"))
                        .and(body_partial_json(json!({"type": "call"}))),
                )
                .mount(&w.hubspot)
                .await;
                once(pd_created(7001), Mock::given(method("POST")).and(path("/api/v1/notes")))
                    .mount(&w.hubspot)
                    .await;
                Mock::given(method("GET"))
                    .and(path("/api/v2/deals"))
                    .respond_with(
                        ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": [],
                        "additional_data": {"next_cursor": null}})),
                    )
                    .mount(&w.hubspot)
                    .await;
                Mock::given(method("GET"))
                    .and(path(format!("/api/v2/stages/{stage}")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true,
                        "data": {"id": stage.parse::<i64>().unwrap_or(1), "name": "Qualified", "pipeline_id": 1,
                        "order_nr": 1}})))
                    .mount(&w.hubspot)
                    .await;
                once(pd_created(3001), Mock::given(method("POST")).and(path("/api/v2/deals")))
                    .mount(&w.hubspot)
                    .await;
                // The call's activity is filed under the new deal.
                once(
                    ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"id": 8001}})),
                    Mock::given(method("PATCH"))
                        .and(path("/api/v2/activities/8001"))
                        .and(body_partial_json(json!({"deal_id": 3001}))),
                )
                .mount(&w.hubspot)
                .await;
                ["8001".into(), "7001".into(), "3001".into()]
            }
        }
    }

    /// The standard deal stage a qualified call moves a deal to.
    pub fn qualified_stage(self) -> &'static str {
        match self {
            Crm::HubSpot => "qualifiedtobuy",
            Crm::Salesforce => "Qualification",
            Crm::Pipedrive => "1",
        }
    }
}

impl World {
    /// Connects `crm` the way a user does (its tokens: `<name>-access-1`).
    pub async fn connect_crm(&self, crm: Crm) {
        let access = match crm {
            Crm::HubSpot => "hs-access-1",
            Crm::Salesforce => "sf-access-1",
            Crm::Pipedrive => "pd-access-1",
        };
        Mock::given(method("POST"))
            .and(path(crm.token_path()))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(crm.token_answer(self, access))
            .up_to_n_times(1)
            .mount(&self.hubspot)
            .await;
        crm.mount_account(self).await;
        let (status, body) = self
            .app
            .post(
                "/api/integrations/crm/connect",
                Some(&self.token),
                json!({"provider": crm.name()}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let url = url::Url::parse(body["authorizationUrl"].as_str().unwrap()).unwrap();
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let (status, body) = self
            .app
            .get(
                &format!("/api/integrations/crm/callback?code=crm-code&state={state}&format=json"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&body["connected"], &body["accountId"]),
            (&json!(true), &json!(crm.account_id()))
        );
        self.app.settle().await;
    }
}

/// Matches a request whose query parameter `name` contains `text`.
fn query_param_contains_text(name: &'static str, text: &'static str) -> impl wiremock::Match {
    move |request: &wiremock::Request| request.url.query_pairs().any(|(k, v)| k == name && v.contains(text))
}
