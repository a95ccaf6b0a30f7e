//! Bad input gets a clear 4xx with the one error shape, never a 500.

use serde_json::json;
use voxreach_tests::TestApp;

async fn send(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(app.url("/api/auth/register"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    voxreach_tests::into_parts(response).await
}

#[tokio::test]
async fn malformed_incomplete_mistyped_and_oversized_bodies_are_4xx() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("application/json", "{\"email\": ".into(), 400, "malformed_json"),
        ("application/json", "not json".into(), 400, "malformed_json"),
        (
            "application/json",
            json!({"email": "a@b.co"}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "application/json",
            json!({"email": 5, "password": "0123456789", "name": "n", "organizationName": "o"}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "text/plain",
            json!({"email": "a@b.co"}).to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            json!({"email": "a@b.co", "password": "x".repeat(400_000), "name": "n", "organizationName": "o"})
                .to_string(),
            413,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let (got, error) = send(&app, content_type, body.clone()).await;
        assert_eq!(got, status, "{} -> {error}", &body[..body.len().min(60)]);
        assert_eq!(error["error"]["code"], code);
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn field_validation_names_the_field() {
    let app = TestApp::spawn().await;
    let base =
        json!({"email": "ok@example.com", "password": "long enough password", "name": "N", "organizationName": "O"});
    for (field, value) in [
        ("email", json!("not-an-email")),
        ("password", json!("short")),
        ("name", json!("   ")),
        ("organizationName", json!("")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, error) = app.post("/api/auth/register", None, body).await;
        assert_eq!(status, 400, "{field}: {error}");
        assert_eq!(error["error"]["code"], "validation_failed");
        assert_eq!(error["error"]["details"]["field"], field);
    }
    let (token, _) = app.register("ok@example.com", "O").await;
    let (status, error) = app
        .post(
            "/api/users",
            Some(&token),
            json!({"email": "u@example.com", "name": "U", "role": "emperor"}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("role"))
    );
    for query in ["limit=0", "limit=abc", "offset=-1", "limit=1000"] {
        let (status, error) = app.get(&format!("/api/users?{query}"), Some(&token)).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert!(error["error"]["code"].is_string());
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/nothing-here", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = app.get("/api/auth/register", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Every documented path answers an undocumented method with 405 and `Allow`.
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    for (path, allow) in [
        ("/health", "GET"),
        ("/health/ready", "GET"),
        ("/api/agents", "GET, POST"),
        ("/api/agents/0b5bd3a6-0000-4000-8000-000000000000", "GET, PATCH, DELETE"),
        ("/api/auth/register", "POST"),
        ("/api/integrations/slack/test", "POST"),
    ] {
        let response = app.client.request(trace.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        let mut allowed: Vec<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(", ")
            .map(str::to_owned)
            .collect();
        let mut expected: Vec<String> = allow.split(", ").map(str::to_owned).collect();
        allowed.sort();
        expected.sort();
        assert_eq!(allowed, expected, "{path}");
    }
}

#[tokio::test]
async fn a_nul_character_anywhere_in_a_body_is_a_400_not_a_500() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("nul@example.com", "Nul").await;
    for (path, body) in [
        (
            "/api/credentials",
            json!({"provider": "telnyx", "name": "bad\u{0}name", "apiKey": "KEY123"}),
        ),
        (
            "/api/agents",
            json!({"name": "A", "systemPrompt": "Hi\u{0}", "voice": {"provider": "openai", "voiceId": "nova"}}),
        ),
        (
            "/api/users",
            json!({"email": "x@example.com", "name": "X", "role": "member", "\u{0}": 1}),
        ),
    ] {
        let (status, error) = app.post(path, Some(&token), body).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("nul_character")),
            "{path}: {error}"
        );
    }
    let (status, _) = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "n@example.com", "password": "correct horse battery", "name": "N\u{0}", "organizationName": "O"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn paged_lists_take_a_limit() {
    let w = voxreach_tests::VapiWorld::start().await;
    let (status, _) = w
        .post(
            "/api/agents",
            json!({"name": "Second", "systemPrompt": "Hi.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(status, 201);
    let variants = format!("/api/agents/{}/variants", w.agent_id);
    let tests = format!("/api/agents/{}/ab-tests", w.agent_id);
    for (path, key) in [
        ("/api/agents", "agents"),
        ("/api/users", "users"),
        ("/api/calls", "calls"),
        ("/api/credentials", "credentials"),
        ("/api/phone-numbers", "phoneNumbers"),
        ("/api/integrations/slack", "integrations"),
        (variants.as_str(), "variants"),
        (tests.as_str(), "abTests"),
    ] {
        let (status, body) = w.app.get(&format!("{path}?limit=1"), Some(&w.token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body[key].as_array().unwrap().len() <= 1, "{path}: {body}");
        let (status, _) = w.app.get(&format!("{path}?limit=0"), Some(&w.token)).await;
        assert_eq!(status, 400, "{path}");
    }
    let (_, two) = w.app.get("/api/agents?limit=2&offset=0", Some(&w.token)).await;
    let (_, second) = w.app.get("/api/agents?limit=1&offset=1", Some(&w.token)).await;
    assert_eq!(two["agents"][1]["id"], second["agents"][0]["id"]);
}

#[tokio::test]
async fn text_has_limits() {
    let w = voxreach_tests::VapiWorld::start().await;
    let (status, error) = w
        .post(
            "/api/agents",
            json!({"name": "A", "systemPrompt": "x".repeat(20_001), "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("text_too_long")),
        "{error}"
    );
    let (status, error) = w
        .post(
            "/api/agents",
            json!({"name": "x".repeat(201), "systemPrompt": "Hi.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("name")),
        "{error}"
    );
    let (status, error) = w
        .post(
            "/api/credentials",
            json!({"provider": "telnyx", "name": "n".repeat(101), "apiKey": "KEY123"}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn bodies_hold_only_documented_fields_of_the_documented_kind() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("fields@example.com", "Fields").await;
    let registration = json!({"email": "extra@example.com", "password": "correct horse battery",
        "name": "E", "organizationName": "O", "isAdmin": true});
    let (status, error) = app.post("/api/auth/register", None, registration).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_body")),
        "unknown registration field"
    );
    let (status, error) = app
        .post(
            "/api/users",
            Some(&token),
            json!({"email": "m@example.com", "name": "M", "role": "member", "extra": 1}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_body")),
        "unknown invitation field"
    );
    let (status, _) = app.request_password_reset("not an address").await;
    assert_eq!(status, 400, "a malformed address is refused, whoever asks");
    let slack = json!({"workspaceName": "Acme", "webhookUrl": "https://hooks.slack.com/services/T1/B2/X3", "channel": "#sales",
        "preferences": {"routes": {}, "timezone": "UTC", "failuresBypassMute": false, "muteHours": {"start": "22:00", "end": "07:00", "days": 5}}});
    let (status, error) = app.post("/api/integrations/slack", Some(&token), slack).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("muteHours.days")),
        "{error}"
    );
    for secret in [
        json!({"provider": "byo-sip-trunk", "name": "Trunk", "gateways": [{"ip": "10.0.0.1"}], "username": {}}),
        json!({"provider": "telnyx", "name": "T", "apiKey": "KEY123", "accountSid": "AC1"}),
        json!({"provider": "telnyx", "name": "T", "apiKey": "K".repeat(1_001)}),
        json!({"provider": "byo-sip-trunk", "name": "Trunk", "gateways": [{"ip": "10.0.0.1", "port": "5060"}]}),
        json!({"provider": "byo-sip-trunk", "name": "Trunk", "gateways": [{"ip": "10.0.0.1", "port": 70000}]}),
    ] {
        let (status, error) = app.post("/api/credentials", Some(&token), secret.clone()).await;
        assert_eq!(
            (status, error["error"]["details"]["field"].as_str()),
            (
                400,
                Some(if secret["gateways"].is_array() && secret["username"].is_null() {
                    "gateways"
                } else {
                    "secret"
                })
            ),
            "{secret}"
        );
    }
}

#[tokio::test]
async fn a_whole_number_written_with_a_decimal_point_is_an_integer() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("numbers@example.com", "Numbers").await;
    let trunk = json!({"provider": "byo-sip-trunk", "name": "Trunk", "gateways": [{"ip": "10.0.0.1", "port": 5060.0}]});
    let (status, body) = app.post("/api/credentials", Some(&token), trunk).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "numbers@example.com", "password": 12.5}),
        )
        .await;
    assert_eq!(status, 422, "a fraction is still not text: {body}");
}
