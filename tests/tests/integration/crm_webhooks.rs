//! HubSpot's webhooks: signed (v3) notifications of contact changes and
//! deletions land in the contact cache once, whatever the redeliveries; bad
//! or stale signatures and unknown portals change nothing; a contact deleted
//! in HubSpot gets no more writes from its call, while a new call from the
//! same number finds no contact and creates one again.

use base64::Engine;
use domain::crm::CrmProvider;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use voxreach_tests::crm::{hubspot_creates, hubspot_search_finds, world, World, CLIENT_SECRET};
use voxreach_tests::{assert_read_models_equal_rebuilds, into_parts, PUBLIC_URL};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

/// The world's clock (2026-03-02T13:00:00Z), in HubSpot's milliseconds.
const NOW_MS: i64 = 1_772_456_400_000;
const PORTAL: i64 = 62515;

/// Posts `body` to our HubSpot webhook as HubSpot does, signed with `secret` at `timestamp_ms`.
async fn deliver(w: &World, body: &Value, timestamp_ms: i64, secret: &str) -> (u16, Value) {
    let body = body.to_string();
    let timestamp = timestamp_ms.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("POST{PUBLIC_URL}/api/webhooks/hubspot{body}{timestamp}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let request = w
        .app
        .client
        .post(w.app.url("/api/webhooks/hubspot"))
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", timestamp)
        .body(body);
    into_parts(request.send().await.unwrap()).await
}

fn property_change(portal: i64, event_id: i64, contact: i64, name: &str, value: &str, occurred_ms: i64) -> Value {
    json!({"eventId": event_id, "subscriptionId": 1, "portalId": portal, "appId": 456, "occurredAt": occurred_ms,
        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": contact,
        "propertyName": name, "propertyValue": value, "changeSource": "CRM"})
}

fn deletion(event_id: i64, contact: i64, occurred_ms: i64) -> Value {
    json!({"eventId": event_id, "subscriptionId": 2, "portalId": PORTAL, "appId": 456, "occurredAt": occurred_ms,
        "subscriptionType": "contact.deletion", "attemptNumber": 0, "objectId": contact, "changeFlag": "DELETED",
        "changeSource": "CRM"})
}

async fn contact_events(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_type = 'crm-contact'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap()
}

fn organization(w: &World) -> uuid::Uuid {
    w.organization_id.parse().unwrap()
}

#[tokio::test]
async fn a_signed_property_change_lands_in_the_contact_cache_once() {
    let w = world().await;
    w.connect(1800).await;
    let minute_ago = NOW_MS - 60_000;
    let delivery = json!([
        property_change(PORTAL, 11, 501, "firstname", "Ann", minute_ago),
        property_change(PORTAL, 12, 501, "phone", "(415) 555-2671", minute_ago),
        property_change(PORTAL, 13, 501, "hubspot_owner_id", "77", minute_ago),
        {"eventId": 14, "portalId": PORTAL, "occurredAt": minute_ago, "subscriptionType": "deal.creation", "objectId": 9}
    ]);
    let (status, body) = deliver(&w, &delivery, NOW_MS, CLIENT_SECRET).await;
    assert_eq!((status, &body), (200, &json!({})));
    assert_eq!(contact_events(&w).await, 3, "one event per contact notification");
    // HubSpot redelivers (a later attempt, newly signed); an older edit arrives late.
    let (status, _) = deliver(&w, &delivery, NOW_MS + 1_000, CLIENT_SECRET).await;
    assert_eq!(status, 200);
    let stale = json!([property_change(PORTAL, 10, 501, "firstname", "Anne", minute_ago - 1)]);
    assert_eq!(deliver(&w, &stale, NOW_MS, CLIENT_SECRET).await.0, 200);
    assert_eq!(contact_events(&w).await, 3, "each change recorded once");
    w.app.settle().await;

    let directory = &w.app.state.crm.directory;
    let cached = directory
        .cached_contact(organization(&w), CrmProvider::Hubspot, "501")
        .await
        .unwrap()
        .expect("the contact is cached");
    assert_eq!(cached.properties["firstname"], "Ann");
    assert_eq!(cached.properties["hubspot_owner_id"], "77");
    assert!(!cached.deleted);
    // Found by its number in E.164, as an outbound call's preload looks it up.
    let phone = domain::phone::PhoneNumber::parse("+14155552671").unwrap();
    let by_phone = directory
        .cached_contact_by_phone(organization(&w), CrmProvider::Hubspot, &phone)
        .await
        .unwrap();
    assert_eq!(by_phone.map(|c| c.contact_id).as_deref(), Some("501"));
    // A newer edit in HubSpot replaces the cached value.
    let edited = json!([property_change(PORTAL, 15, 501, "firstname", "Annie", NOW_MS)]);
    assert_eq!(deliver(&w, &edited, NOW_MS, CLIENT_SECRET).await.0, 200);
    w.app.settle().await;
    let cached = directory
        .cached_contact(organization(&w), CrmProvider::Hubspot, "501")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.properties["firstname"], "Annie");
    assert_read_models_equal_rebuilds(&w.app).await;
}

#[tokio::test]
async fn a_wrong_missing_or_stale_signature_is_refused_and_records_nothing() {
    let w = world().await;
    w.connect(1800).await;
    let delivery = json!([property_change(PORTAL, 1, 501, "firstname", "Mallory", NOW_MS)]);
    let (status, body) = deliver(&w, &delivery, NOW_MS, "not-the-app-secret").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_webhook_signature");
    // Signed correctly, but more than five minutes old (or ahead).
    let six_minutes = 6 * 60 * 1000;
    assert_eq!(deliver(&w, &delivery, NOW_MS - six_minutes, CLIENT_SECRET).await.0, 401);
    assert_eq!(deliver(&w, &delivery, NOW_MS + six_minutes, CLIENT_SECRET).await.0, 401);
    let (status, _) = w.app.post("/api/webhooks/hubspot", None, delivery.clone()).await;
    assert_eq!(status, 401, "unsigned");
    // Signed, but not HubSpot's shape.
    let (status, body) = deliver(&w, &json!({"eventId": 1}), NOW_MS, CLIENT_SECRET).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_webhook"))
    );
    assert_eq!(contact_events(&w).await, 0);
}

#[tokio::test]
async fn a_portal_nobody_is_connected_to_is_acknowledged_and_ignored() {
    let w = world().await;
    w.connect(1800).await;
    let delivery = json!([property_change(999_999, 1, 501, "firstname", "Zed", NOW_MS)]);
    let (status, body) = deliver(&w, &delivery, NOW_MS, CLIENT_SECRET).await;
    assert_eq!((status, &body), (200, &json!({})));
    assert_eq!(contact_events(&w).await, 0);
}

#[tokio::test]
async fn a_contact_deleted_in_hubspot_gets_no_more_writes_until_a_new_call_creates_it_again() {
    let w = world().await;
    w.connect(1800).await;
    // HubSpot knows the caller as 501 until it is deleted; afterwards a search finds nobody.
    hubspot_search_finds(
        "contacts",
        json!([{"id": "501", "properties": {"phone": "+14155552671"}}]),
    )
    .up_to_n_times(1)
    .mount(&w.hubspot)
    .await;
    hubspot_search_finds("contacts", json!([])).mount(&w.hubspot).await;
    hubspot_creates("calls", "9001").expect(2).mount(&w.hubspot).await;
    hubspot_creates("notes", "7001").expect(2).mount(&w.hubspot).await;
    let first = w.call_ends("vapi-deleted-1", "+14155552671", None).await;
    w.app.drain_work().await;

    let (status, _) = deliver(&w, &json!([deletion(21, 501, NOW_MS)]), NOW_MS, CLIENT_SECRET).await;
    assert_eq!(status, 200);
    // The first call's later outcome would open a deal on 501: nothing is written to HubSpot.
    for (verb, route) in [("POST", "^/crm/v3/objects/deals.*"), ("PATCH", "^/crm/v3/objects/.*")] {
        Mock::given(method(verb))
            .and(path_regex(route))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&w.hubspot)
            .await;
    }
    let (status, body) = w
        .app
        .post(
            &format!("/api/calls/{first}/outcome"),
            Some(&w.token),
            json!({"outcome": "qualified"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={first}")).await;
    assert_eq!(log[0]["action"], "skip", "{log:?}");
    assert_eq!(log[0]["error"], "contact deleted in the CRM");
    let cached = w
        .app
        .state
        .crm
        .directory
        .cached_contact(organization(&w), CrmProvider::Hubspot, "501")
        .await
        .unwrap();
    assert!(cached.is_some_and(|c| c.deleted));

    // A new call from the same number searches, finds nobody, and creates the contact again.
    hubspot_creates("contacts", "502").expect(1).mount(&w.hubspot).await;
    let second = w.call_ends("vapi-deleted-2", "+14155552671", None).await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={second}")).await;
    assert!(
        log.iter()
            .any(|l| l["action"] == "create_contact" && l["externalId"] == "502"),
        "{log:?}"
    );
    let logged = w.requests_to("POST", "/crm/v3/objects/calls").await;
    assert_eq!(logged[1]["associations"][0]["to"]["id"], "502");
}

#[tokio::test]
async fn an_outbound_call_is_briefed_with_the_contact_as_edited_in_hubspot() {
    let w = world().await;
    w.connect(1800).await;
    // HubSpot tells us the contact's company changed; its search has not caught up yet.
    let changes = json!([
        property_change(PORTAL, 31, 501, "phone", "+14155552671", NOW_MS - 2_000),
        property_change(PORTAL, 32, 501, "company", "Acme Corp", NOW_MS - 1_000),
    ]);
    assert_eq!(deliver(&w, &changes, NOW_MS, CLIENT_SECRET).await.0, 200);
    w.app.settle().await;
    voxreach_tests::crm::known_contact(&w, "501").await;
    hubspot_search_finds(
        "deals",
        json!([{"id": "3001", "properties": {"dealstage": "qualifiedtobuy"}}]),
    )
    .mount(&w.hubspot)
    .await;
    hubspot_search_finds(
        "notes",
        json!([{"id": "7001", "properties": {"hs_note_body": "<p>Wants a demo in March.</p>"}}]),
    )
    .mount(&w.hubspot)
    .await;
    // Vapi: the agent's assistant, our number, and the call.
    Mock::given(method("POST"))
        .and(path("/phone-number"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "pn_1", "number": "+14155550100", "status": "active"})),
        )
        .mount(&w.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "vapi-out-1", "status": "queued"})))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    let agent = w.create_agent("Caller", "Call {{customerName}} of {{company}}.").await;
    let (status, number) = w
        .app
        .post(
            "/api/phone-numbers",
            Some(&w.token),
            json!({"provider": "vapi", "areaCode": "415"}),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    w.app.drain_work().await;
    let (status, call) = w
        .app
        .post(
            "/api/calls",
            Some(&w.token),
            json!({"agentId": agent["id"], "phoneNumberId": number["id"], "customerNumber": "+14155552671"}),
        )
        .await;
    assert_eq!(status, 202, "{call}");
    w.app.drain_work().await;
    let placed = w
        .hubspot
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/call")
        .expect("the call was placed");
    let body: Value = serde_json::from_slice(&placed.body).unwrap();
    assert_eq!(
        body["assistantOverrides"]["variableValues"],
        json!({"customerName": "Ann Lee", "company": "Acme Corp", "owner": "77", "crmContactId": "501", "hasOpenDeal": "true",
            "lastNote": "Wants a demo in March."})
    );
    assert_eq!(body["customer"]["name"], "Ann Lee");
}
