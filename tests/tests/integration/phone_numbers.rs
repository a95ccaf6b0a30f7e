//! Phone numbers and credentials over HTTP, mirrored to a fake Vapi.

use serde_json::{json, Value};
use voxreach_tests::VapiWorld;
use wiremock::matchers::{bearer_token, body_json, body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn world() -> VapiWorld {
    VapiWorld::start().await
}

/// Vapi answers one `POST /phone-number` whose body contains `body` with number `id` (`e164`), active.
async fn expect_number_created(w: &VapiWorld, body: serde_json::Value, id: &str, e164: &str) {
    Mock::given(method("POST"))
        .and(path("/phone-number"))
        .and(bearer_token("key"))
        .and(body_partial_json(body))
        .respond_with(vapi_number(id, e164, "active"))
        .expect(1)
        .mount(&w.vapi)
        .await;
}

fn vapi_number(id: &str, number: &str, status: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"id": id, "number": number, "status": status, "orgId": "org_1"}))
}

#[tokio::test]
async fn a_vapi_number_is_provisioned_assigned_monitored_and_released() {
    let w = world().await;
    expect_number_created(
        &w,
        json!({"provider": "vapi", "numberDesiredAreaCode": "415", "assistantId": "asst_123"}),
        "pn_1",
        "+14155550123",
    )
    .await;
    let (status, number) = w
        .post(
            "/api/phone-numbers",
            json!({"provider": "vapi", "areaCode": "415", "agentId": w.agent_id, "name": "Main line"}),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    assert_eq!(number["syncStatus"], "pending");
    let id = number["id"].as_str().unwrap().to_owned();
    w.app.drain_work().await;
    let (_, synced) = w.app.get(&format!("/api/phone-numbers/{id}"), Some(&w.token)).await;
    assert_eq!(synced["syncStatus"], "synced", "{synced}");
    assert_eq!(synced["number"], "+14155550123");
    assert_eq!(synced["areaCode"], "415");
    assert_eq!(synced["vapiPhoneNumberId"], "pn_1");

    Mock::given(method("PATCH"))
        .and(path("/phone-number/pn_1"))
        .and(body_json(json!({"assistantId": null})))
        .respond_with(vapi_number("pn_1", "+14155550123", "active"))
        .expect(1)
        .mount(&w.vapi)
        .await;
    let (status, _) = w
        .app
        .patch(
            &format!("/api/phone-numbers/{id}"),
            Some(&w.token),
            json!({"agentId": null}),
        )
        .await;
    assert_eq!(status, 200);
    w.app.drain_work().await;

    Mock::given(method("GET"))
        .and(path("/phone-number/pn_1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "pn_1", "number": "+14155550123", "status": "blocked"})),
        )
        .mount(&w.vapi)
        .await;
    assert_eq!(w.app.state.number_sync.check_statuses().await.unwrap(), 1);
    assert_eq!(
        w.app.state.number_sync.check_statuses().await.unwrap(),
        0,
        "unchanged status records nothing"
    );
    w.app.settle().await;
    let (_, checked) = w.app.get(&format!("/api/phone-numbers/{id}"), Some(&w.token)).await;
    assert_eq!(
        (checked["status"].as_str(), checked["agentId"].as_str()),
        (Some("blocked"), None)
    );
    let (_, stats) = w.app.get("/api/dashboard/stats", Some(&w.token)).await;
    assert_eq!(stats["phoneNumbers"], 1);

    Mock::given(method("DELETE"))
        .and(path("/phone-number/pn_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "pn_1"})))
        .expect(1)
        .mount(&w.vapi)
        .await;
    assert_eq!(
        w.app
            .delete(&format!("/api/phone-numbers/{id}"), Some(&w.token))
            .await
            .0,
        204
    );
    w.app.drain_work().await;
    let (_, list) = w.app.get("/api/phone-numbers", Some(&w.token)).await;
    assert!(list["phoneNumbers"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn imported_numbers_register_their_credentials_which_stay_secret() {
    let w = world().await;
    let (status, credential) = w
        .post(
            "/api/credentials",
            json!({"provider": "vonage", "name": "Vonage main", "apiKey": "vk_1", "apiSecret": "vonage-super-secret"}),
        )
        .await;
    assert_eq!(status, 201, "{credential}");
    assert_eq!(credential["hint"], "••••cret");
    let credential_id = credential["id"].as_str().unwrap().to_owned();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%vonage-super-secret%'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0, "secrets are encrypted at rest");

    Mock::given(method("POST"))
        .and(path("/credential"))
        .and(body_json(
            json!({"provider": "vonage", "apiKey": "vk_1", "apiSecret": "vonage-super-secret"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "cred_1", "provider": "vonage"})))
        .expect(1)
        .mount(&w.vapi)
        .await;
    expect_number_created(
        &w,
        json!({"provider": "vonage", "number": "+14155552671", "credentialId": "cred_1"}),
        "pn_v",
        "+14155552671",
    )
    .await;
    let (status, number) = w
        .post(
            "/api/phone-numbers",
            json!({"provider": "vonage", "number": "(415) 555-2671", "credentialId": credential_id}),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    assert_eq!(number["number"], "+14155552671");
    w.app.drain_work().await;

    // Twilio credentials may come inline with the number.
    expect_number_created(
        &w,
        json!({
            "provider": "twilio", "number": "+14155550199",
            "twilioAccountSid": "AC0123456789abcdef0123456789abcdef", "twilioAuthToken": "twilio-token-9876"
        }),
        "pn_t",
        "+14155550199",
    )
    .await;
    let (status, twilio) = w.post("/api/phone-numbers", json!({"provider": "twilio", "number": "+14155550199", "accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "twilio-token-9876"})).await;
    assert_eq!(status, 201, "{twilio}");
    w.app.drain_work().await;

    let (_, credentials) = w.app.get("/api/credentials", Some(&w.token)).await;
    let text = credentials.to_string();
    assert!(!text.contains("vonage-super-secret") && !text.contains("twilio-token-9876"));
    let listed = credentials["credentials"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["registeredWithVapi"], true);
    voxreach_tests::assert_answers_as_documented("CredentialList", &credentials);
    let (_, numbers) = w.app.get("/api/phone-numbers", Some(&w.token)).await;
    voxreach_tests::assert_answers_as_documented("PhoneNumberList", &numbers);
    voxreach_tests::assert_answers_as_documented("PhoneNumberView", &twilio);
    let statuses: Vec<&str> = numbers["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["syncStatus"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["synced", "synced"]);
}

#[tokio::test]
async fn number_and_credential_input_is_validated() {
    let w = world().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"provider": "vapi", "areaCode": "12"}), "areaCode"),
        (json!({"provider": "vapi"}), "areaCode"),
        (json!({"provider": "vonage", "number": "+14155552671"}), "credentialId"),
        (
            json!({"provider": "telnyx", "number": "555", "credentialId": "0199aa00-0000-7000-8000-000000000001"}),
            "number",
        ),
        (json!({"provider": "carrier-pigeon"}), "provider"),
        (
            json!({"provider": "vonage", "number": "+14155552671", "credentialId": "0199aa00-0000-7000-8000-000000000001"}),
            "credentialId",
        ),
        (
            json!({"provider": "vapi", "areaCode": "415", "agentId": "0199aa00-0000-7000-8000-000000000001"}),
            "agentId",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = w.post("/api/phone-numbers", body.clone()).await;
        assert_eq!(
            (status, error["error"]["details"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {error}"
        );
    }
    for (body, field) in [
        (
            json!({"provider": "twilio", "name": "T", "accountSid": "nope", "authToken": "x"}),
            "accountSid",
        ),
        (json!({"provider": "telnyx", "name": "T"}), "apiKey"),
        (
            json!({"provider": "byo-sip-trunk", "name": "T", "gateways": []}),
            "gateways",
        ),
        (json!({"provider": "fax", "name": "T"}), "provider"),
    ] {
        let (status, error) = w.post("/api/credentials", body.clone()).await;
        assert_eq!(
            (status, error["error"]["details"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {error}"
        );
    }
    // A telnyx credential cannot import a vonage number.
    let (_, telnyx) = w
        .post(
            "/api/credentials",
            json!({"provider": "telnyx", "name": "T", "apiKey": "KEY123"}),
        )
        .await;
    let (status, error) = w
        .post(
            "/api/phone-numbers",
            json!({"provider": "vonage", "number": "+14155552671", "credentialId": telnyx["id"]}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("credentialId"))
    );
}

#[tokio::test]
async fn another_organization_cannot_touch_numbers_or_credentials() {
    let w = world().await;
    let (_, credential) = w
        .post(
            "/api/credentials",
            json!({"provider": "telnyx", "name": "Mine", "apiKey": "KEY-abcdef"}),
        )
        .await;
    let (_, number) = w
        .post("/api/phone-numbers", json!({"provider": "vapi", "areaCode": "212"}))
        .await;
    w.app.settle().await;
    let (other, _) = w.app.register("b@other.com", "Other").await;
    let id = number["id"].as_str().unwrap();
    assert_eq!(
        w.app.get(&format!("/api/phone-numbers/{id}"), Some(&other)).await.0,
        404
    );
    assert_eq!(
        w.app
            .patch(
                &format!("/api/phone-numbers/{id}"),
                Some(&other),
                json!({"agentId": null})
            )
            .await
            .0,
        404
    );
    assert_eq!(
        w.app.delete(&format!("/api/phone-numbers/{id}"), Some(&other)).await.0,
        404
    );
    assert_eq!(
        w.app
            .delete(
                &format!("/api/credentials/{}", credential["id"].as_str().unwrap()),
                Some(&other)
            )
            .await
            .0,
        404
    );
    let (status, error) = w
        .app
        .post(
            "/api/phone-numbers",
            Some(&other),
            json!({"provider": "telnyx", "number": "+12125550100", "credentialId": credential["id"]}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("credentialId"))
    );
    let (status, error) = w
        .app
        .post(
            "/api/phone-numbers",
            Some(&other),
            json!({"provider": "vapi", "areaCode": "212", "agentId": w.agent_id}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("agentId"))
    );
    let (_, theirs) = w.app.get("/api/phone-numbers", Some(&other)).await;
    assert!(theirs["phoneNumbers"].as_array().unwrap().is_empty());
    let (_, creds) = w.app.get("/api/credentials", Some(&other)).await;
    assert!(creds["credentials"].as_array().unwrap().is_empty());
}
