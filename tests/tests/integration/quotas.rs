//! Per-organization limits on costly actions.

use serde_json::json;
use voxreach_tests::{ManualClock, TestApp};

#[tokio::test]
async fn calls_per_minute_and_numbers_per_day_are_limited_per_organization() {
    let clock = ManualClock::at("2026-03-02T15:00:10Z");
    let app_clock = clock.clone();
    let app = TestApp::spawn_with(|w| {
        w.clock = app_clock;
        w.quotas = application::quotas::QuotaPolicy {
            calls_per_minute: 2,
            numbers_per_day: 1,
        };
    })
    .await;
    let (token, _) = app.register("owner@quota.test", "Quota").await;
    let (_, agent) = app
        .post(
            "/api/agents",
            Some(&token),
            json!({"name": "Q", "systemPrompt": "Hi.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    let (status, number) = app
        .post(
            "/api/phone-numbers",
            Some(&token),
            json!({"provider": "vapi", "areaCode": "415"}),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    let (status, refused) = app
        .post(
            "/api/phone-numbers",
            Some(&token),
            json!({"provider": "vapi", "areaCode": "212"}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (429, Some("quota_exceeded"))
    );
    // Importing one's own number buys nothing.
    let (status, _) = app
        .post(
            "/api/phone-numbers",
            Some(&token),
            json!({"provider": "twilio", "number": "+14155550180", "accountSid": format!("AC{}", "0".repeat(32)), "authToken": "token"}),
        )
        .await;
    assert_eq!(status, 201);

    let call = json!({"agentId": agent["id"], "phoneNumberId": number["id"], "customerNumber": "+14155552671"});
    for _ in 0..2 {
        assert_eq!(app.post("/api/calls", Some(&token), call.clone()).await.0, 202);
    }
    let response = app
        .client
        .post(app.url("/api/calls"))
        .bearer_auth(&token)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "50", "until the minute is over");
    // Another organization has its own allowance.
    let (other, _) = app.register("other@quota.test", "Other").await;
    let (status, _) = app
        .post(
            "/api/phone-numbers",
            Some(&other),
            json!({"provider": "vapi", "areaCode": "415"}),
        )
        .await;
    assert_eq!(status, 201);
    // The next minute, calls go out again.
    clock.set("2026-03-02T15:01:00Z");
    assert_eq!(app.post("/api/calls", Some(&token), call).await.0, 202);
}
