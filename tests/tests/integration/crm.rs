//! CRM sync against a fake HubSpot that answers as HubSpot's API does:
//! connecting, each ended call logged on its contact (found or created), the
//! transcript note, the outcome's deal stage, retries that never write twice,
//! rate limits, settings checked against the portal, tenancy.

use serde_json::{json, Value};
use voxreach_tests::assert_read_models_equal_rebuilds;
use voxreach_tests::crm::{
    engagement_mocks, found, hubspot_creates, hubspot_search_finds, known_contact, new_deal_mocks, sync_steps,
    token_answer, world, World,
};
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_known_callers_call_is_logged_with_its_note_and_a_qualified_deal_once() {
    let w = world().await;
    w.connect(1800).await;
    known_contact(&w, "501").await;
    engagement_mocks(&w).await;
    new_deal_mocks(&w, "qualifiedtobuy").await;
    let call_id = w.call_ends("vapi-crm-1", "+14155552671", Some("qualified")).await;
    w.app.drain_work().await;
    // What HubSpot received: the call on contact 501 (association 194), the transcript note (202).
    let logged = &w.requests_to("POST", "/crm/v3/objects/calls").await[0];
    assert_eq!(logged["associations"][0]["to"]["id"], "501");
    assert_eq!(logged["associations"][0]["types"][0]["associationTypeId"], 194);
    assert_eq!(logged["properties"]["hs_call_direction"], "INBOUND");
    assert_eq!(logged["properties"]["hs_call_duration"], "272000");
    assert_eq!(
        logged["properties"]["hs_call_recording_url"],
        "https://storage.vapi.ai/rec-1.wav"
    );
    let note = &w.requests_to("POST", "/crm/v3/objects/notes").await[0];
    assert_eq!(note["associations"][0]["types"][0]["associationTypeId"], 202);
    assert!(note["properties"]["hs_note_body"]
        .as_str()
        .unwrap()
        .contains("like a demo"));
    // Running the work again writes nothing more (the mocks expect one each).
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    assert_eq!(
        sync_steps(&log, "externalId"),
        [
            ("search", "succeeded", Some("501")),
            ("log_call", "succeeded", Some("9001")),
            ("add_note", "succeeded", Some("7001")),
            ("create_deal", "succeeded", Some("3001")),
        ]
    );
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    let integration = &listed["integrations"][0];
    assert_eq!(integration["provider"], "hubspot");
    assert_eq!(integration["accountId"], "62515");
    assert_eq!(integration["status"], "active");
    assert!(integration["lastSyncAt"].is_string());
    assert!(!listed.to_string().contains("hs-access-1"));
    assert_read_models_equal_rebuilds(&w.app).await;
}

#[tokio::test]
async fn an_unknown_caller_becomes_a_contact_and_a_duplicate_answer_names_the_existing_one() {
    let w = world().await;
    w.connect(1800).await;
    hubspot_search_finds("contacts", json!([])).mount(&w.hubspot).await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"status": "error",
            "message": "Contact already exists. Existing ID: 12345", "correlationId": "3f2c", "category": "CONFLICT"})))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    engagement_mocks(&w).await;
    w.call_ends("vapi-crm-2", "+14155552672", None).await;
    w.app.drain_work().await;
    let contact = &w.requests_to("POST", "/crm/v3/objects/contacts").await[0];
    assert_eq!(contact["properties"]["phone"], "+14155552672");
    assert_eq!(contact["properties"]["company"], "Acme");
    let logged = &w.requests_to("POST", "/crm/v3/objects/calls").await[0];
    assert_eq!(logged["associations"][0]["to"]["id"], "12345");
    let log = w.sync_log("").await;
    assert!(log
        .iter()
        .any(|l| l["action"] == "create_contact" && l["externalId"] == "12345"));
}

#[tokio::test]
async fn a_crash_between_hubspots_answer_and_our_record_writes_nothing_twice() {
    use application::aggregates::{execute, metadata, stream_of};
    use domain::crm::{CallSync, CrmProvider, CrmSyncEvent, SyncStep};
    use domain::Aggregate;
    let w = world().await;
    w.connect(1800).await;
    known_contact(&w, "501").await;
    let call_id = w.call_ends("vapi-crm-3", "+14155552671", None).await;
    // A previous process found the contact and sent the call to HubSpot, then died before recording its id.
    let organization_id: uuid::Uuid = w.organization_id.parse().unwrap();
    let call: uuid::Uuid = call_id.parse().unwrap();
    let store = w.app.state.calls.store.clone();
    let now: chrono::DateTime<chrono::Utc> = "2026-03-02T13:05:00Z".parse().unwrap();
    for observed in [
        CrmSyncEvent::CrmContactResolved {
            provider: CrmProvider::Hubspot,
            call_id: call,
            contact_id: "501".into(),
            created: false,
            at: now,
        },
        CrmSyncEvent::CrmWriteStarted {
            step: SyncStep::LogCall,
            at: now,
        },
    ] {
        execute::<CallSync>(
            store.as_ref(),
            organization_id,
            stream_of::<CallSync>(CrmProvider::Hubspot.call_sync_id(call)),
            &metadata("test", "test"),
            |loaded| Ok(CallSync::decide(&observed, &loaded.state).unwrap()),
        )
        .await
        .unwrap();
    }
    // HubSpot has the call: it is found by our call id, not created again.
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/calls/search"))
        .and(body_string_contains(&call_id))
        .respond_with(found(
            json!([{"id": "9001", "properties": {"hs_call_external_id": call_id}}]),
        ))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    hubspot_creates("calls", "9999").expect(0).mount(&w.hubspot).await;
    hubspot_creates("notes", "7001").mount(&w.hubspot).await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    assert!(
        log.iter()
            .any(|l| l["action"] == "log_call" && l["externalId"] == "9001"),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_ten_second_limit_waits_and_the_daily_limit_throttles_the_integration() {
    let w = world().await;
    w.connect(1800).await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(
                    json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "correlationId": "c1", "policyName": "TEN_SECONDLY_ROLLING"}),
                ),
        )
        .up_to_n_times(1)
        .mount(&w.hubspot)
        .await;
    known_contact(&w, "501").await;
    engagement_mocks(&w).await;
    let call_id = w.call_ends("vapi-crm-4", "+14155552671", None).await;
    w.app.drain_work().await;
    let failed = w.sync_log("?status=failed").await;
    assert_eq!(failed[0]["error"], "rate_limited");
    assert!(failed[0]["retryAt"].is_string());
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}&status=succeeded")).await;
    assert_eq!(log.len(), 3, "{log:?}");

    // The daily budget is spent: the integration is throttled, visibly, and waits.
    Mock::given(method("POST"))
        .and(path_regex("^/crm/v3/objects/.*"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"status": "error",
            "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"})))
        .with_priority(1)
        .mount(&w.hubspot)
        .await;
    w.call_ends("vapi-crm-5", "+14155552673", None).await;
    w.app.drain_work().await;
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["status"], "throttled", "{listed}");
    assert!(listed["integrations"][0]["throttledUntil"].is_string());
    w.clock.set("2026-03-02T13:10:00Z");
}

#[tokio::test]
async fn settings_name_only_properties_and_stages_the_portal_has() {
    let w = world().await;
    w.connect(1800).await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"name": "company", "label": "Company", "type": "string"},
            {"name": "hs_lead_status", "label": "Lead Status", "type": "enumeration"},
            {"name": "voxreach_sentiment", "label": "Sentiment", "type": "string"}]})))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/pipelines/deals"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [{"id": "default", "label": "Sales Pipeline",
            "stages": [{"id": "appointmentscheduled"}, {"id": "qualifiedtobuy"}, {"id": "closedwon"}, {"id": "closedlost"}]}]})))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    let patch = |body: Value| {
        w.app
            .patch("/api/integrations/crm?provider=hubspot", Some(&w.token), body)
    };
    let (status, answer) = patch(json!({"fieldMappings": {"sentiment": "no_such_property"}})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "fieldMappings.sentiment");
    let (status, answer) = patch(
        json!({"stageMapping": {"qualified": "nope", "appointment": "appointmentscheduled", "sale": "closedwon"}}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("stageMapping.qualified"))
    );
    let (status, answer) =
        patch(json!({"fieldMappings": {"sentiment": "voxreach_sentiment"}, "autoCreateContacts": false})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fieldMappings"]["sentiment"], "voxreach_sentiment");
    assert_eq!(answer["autoCreateContacts"], false);
    let (status, answer) = patch(json!({"syncEnabled": "yes"})).await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("syncEnabled"))
    );
}

/// The manual sync test of `phone` at HubSpot, as the holder of `token`.
async fn sync_contact(w: &World, token: &str, phone: &str) -> (u16, Value) {
    w.app
        .post(
            "/api/integrations/crm/sync-contact",
            Some(token),
            json!({"phone": phone, "provider": "hubspot"}),
        )
        .await
}

#[tokio::test]
async fn the_manual_sync_test_finds_or_creates_and_a_stale_token_is_refreshed_first() {
    let w = world().await;
    // The token expires within the refresh margin: refreshed before use.
    w.connect(60).await;
    Mock::given(method("POST"))
        .and(path("/oauth/v1/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("client_secret=hs-secret"))
        .respond_with(token_answer("hs-access-2", 1800))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    known_contact(&w, "501").await;
    let (status, answer) = sync_contact(&w, &w.token, "+14155552671").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["result"].as_str(), answer["contactId"].as_str()),
        (Some("found"), Some("501"))
    );
    let searched = w
        .hubspot
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/crm/v3/objects/contacts/search")
        .unwrap();
    assert_eq!(searched.headers["authorization"], "Bearer hs-access-2");
    let (status, answer) = sync_contact(&w, &w.token, "not a phone").await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("phone"))
    );
}

#[tokio::test]
async fn another_organization_sees_and_changes_none_of_it_and_members_may_not_manage() {
    let w = world().await;
    w.connect(1800).await;
    let (stranger, _) = w.app.register("stranger@elsewhere.test", "Elsewhere").await;
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&stranger)).await;
    assert_eq!(listed["integrations"], json!([]));
    let (_, log) = w.app.get("/api/integrations/crm/sync-log", Some(&stranger)).await;
    assert_eq!(log["items"], json!([]));
    let (status, _) = w
        .app
        .patch(
            "/api/integrations/crm?provider=hubspot",
            Some(&stranger),
            json!({"syncEnabled": false}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .app
        .delete("/api/integrations/crm?provider=hubspot", Some(&stranger))
        .await;
    assert_eq!(status, 404);
    let (status, _) = sync_contact(&w, &stranger, "+14155552671").await;
    assert_eq!(status, 404);
    // Disconnecting revokes the refresh token at HubSpot and forgets the tokens.
    Mock::given(method("DELETE"))
        .and(path("/oauth/v1/refresh-tokens/hs-refresh-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    let (status, _) = w
        .app
        .delete("/api/integrations/crm?provider=hubspot", Some(&w.token))
        .await;
    assert_eq!(status, 204);
    assert_eq!(w.app.stored_token_count().await, 0);
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    assert_eq!(listed["integrations"], json!([]));
}

#[tokio::test]
async fn a_meeting_booked_during_a_call_is_logged_on_the_contact_with_the_deal_at_appointment() {
    let w = world().await;
    w.connect(1800).await;
    voxreach_tests::calendars::connect(&w.app, &w.token, &w.hubspot, "google", "ya29.a", "1//r", 3600).await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"calendars": {"primary": {"busy": []}}})))
        .mount(&w.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt-1", "status": "confirmed"})))
        .mount(&w.hubspot)
        .await;
    known_contact(&w, "501").await;
    engagement_mocks(&w).await;
    hubspot_creates("meetings", "8001").expect(1).mount(&w.hubspot).await;
    new_deal_mocks(&w, "appointmentscheduled").await;
    let agent = w.create_agent("Booker", "Book demos.").await;
    // During the call, the agent books Wednesday 14:00 New York; then the call ends.
    let call = json!({"id": "vapi-crm-9", "type": "inboundPhoneCall",
        "metadata": {"voxreachOrganizationId": w.organization_id, "voxreachAgentId": agent["id"]},
        "customer": {"number": "+14155552671"}});
    let booking = json!({"message": {"type": "tool-calls", "call": call, "toolCallList": [{"id": "tc-1", "type": "function",
        "function": {"name": "book_appointment", "arguments": {"date": "2026-03-04", "time": "14:00", "duration": 30,
            "timezone": "America/New_York", "title": "Demo with Ann", "attendeeName": "Ann Lee"}}}]}});
    let (status, reply) = w.app.deliver_vapi(&booking).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["results"][0]["result"].as_str().unwrap().starts_with("Booked"),
        "{reply}"
    );
    let call_id = w.call_ends("vapi-crm-9", "+14155552671", None).await;
    w.app.drain_work().await;
    let meeting = &w.requests_to("POST", "/crm/v3/objects/meetings").await[0];
    assert_eq!(meeting["properties"]["hs_meeting_title"], "Demo with Ann");
    assert_eq!(
        meeting["properties"]["hs_meeting_start_time"],
        "2026-03-04T19:00:00.000Z"
    );
    assert_eq!(meeting["properties"]["hs_meeting_outcome"], "SCHEDULED");
    assert_eq!(meeting["associations"][0]["to"]["id"], "501");
    assert_eq!(meeting["associations"][0]["types"][0]["associationTypeId"], 200);
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    assert!(
        log.iter()
            .any(|l| l["action"] == "log_meeting" && l["externalId"] == "8001"),
        "{log:?}"
    );
}
