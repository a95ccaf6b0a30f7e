//! The role matrix over HTTP: what a member may not do is refused with 403
//! `role_not_allowed` before anything happens; owners and admins pass.

use reqwest::Method;
use serde_json::{json, Value};
use voxreach_tests::{token_in, TestApp, VapiWorld};

/// A user with `role` in the world's organization, signed in.
async fn signed_in_as(w: &VapiWorld, email: &str, role: &str) -> String {
    let (status, body) = w
        .post("/api/users", json!({"email": email, "name": "Someone", "role": role}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, mail) = w.app.last_email_to(email).await.expect("an invitation");
    let password = "a long enough password";
    let (status, _) = w.app.confirm_password_reset(&token_in(&mail), password).await;
    assert_eq!(status, 204);
    let (_, login) = w.app.login(email, password).await;
    login["token"].as_str().expect("a session").to_owned()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request is sent");
    voxreach_tests::into_parts(response).await
}

#[tokio::test]
async fn the_role_matrix_holds_on_every_endpoint_that_changes_something() {
    let w = VapiWorld::start().await;
    let number_id = w.add_number("pn_roles", "+14155550160", false).await;
    let member = signed_in_as(&w, "member@world.test", "member").await;
    let admin = signed_in_as(&w, "admin@world.test", "admin").await;
    let agent = w.agent_id.clone();
    let some = uuid::Uuid::now_v7().to_string();
    let slack_url = "https://hooks.slack.com/services/T0/B0/secret";
    // (method, path, body, may a member do it?)
    let matrix: Vec<(Method, String, Value, bool)> = vec![
        (
            Method::POST,
            "/api/agents".into(),
            json!({"name": "M", "systemPrompt": "Hi.", "voice": {"provider": "openai", "voiceId": "nova"}}),
            true,
        ),
        (
            Method::PATCH,
            format!("/api/agents/{agent}"),
            json!({"name": "Renamed"}),
            true,
        ),
        (Method::POST, format!("/api/agents/{agent}/deactivate"), json!({}), true),
        (Method::POST, format!("/api/agents/{agent}/activate"), json!({}), true),
        (
            Method::POST,
            "/api/calls".into(),
            json!({"agentId": agent, "phoneNumberId": number_id, "customerNumber": "+14155552671"}),
            true,
        ),
        (
            Method::POST,
            format!("/api/calls/{some}/outcome"),
            json!({"outcome": "qualified"}),
            true,
        ),
        (Method::DELETE, format!("/api/agents/{some}"), json!({}), false),
        (
            Method::PUT,
            format!("/api/agents/{agent}/adherence-checklist"),
            json!([{"point": "Greeting", "phrases": ["hello"]}]),
            true,
        ),
        (
            Method::PATCH,
            "/api/organization".into(),
            json!({"timezone": "Europe/Berlin"}),
            false,
        ),
        (
            Method::POST,
            "/api/credentials".into(),
            json!({"provider": "telnyx", "name": "T", "apiKey": "KEY123"}),
            false,
        ),
        (Method::DELETE, format!("/api/credentials/{some}"), json!({}), false),
        (
            Method::POST,
            "/api/phone-numbers".into(),
            json!({"provider": "vapi", "areaCode": "415"}),
            false,
        ),
        (
            Method::PATCH,
            format!("/api/phone-numbers/{number_id}"),
            json!({"agentId": null}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/phone-numbers/{number_id}"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            format!("/api/agents/{agent}/variants"),
            json!({"name": "B", "prompt": "Bold.", "trafficPercent": 50}),
            false,
        ),
        (
            Method::PATCH,
            format!("/api/variants/{some}"),
            json!({"name": "C"}),
            false,
        ),
        (Method::DELETE, format!("/api/variants/{some}"), json!({}), false),
        (
            Method::POST,
            format!("/api/agents/{agent}/ab-tests"),
            json!({"name": "t", "variantIds": [some, some]}),
            false,
        ),
        (Method::POST, format!("/api/ab-tests/{some}/pause"), json!({}), false),
        (Method::POST, format!("/api/ab-tests/{some}/resume"), json!({}), false),
        (
            Method::POST,
            format!("/api/ab-tests/{some}/declare-winner"),
            json!({"variantId": some}),
            false,
        ),
        (
            Method::POST,
            "/api/integrations/slack".into(),
            json!({"workspaceName": "A", "channel": "#x", "webhookUrl": slack_url}),
            false,
        ),
        (
            Method::PATCH,
            format!("/api/integrations/slack/{some}"),
            json!({"routes": {}, "timezone": "UTC", "muteHours": null, "failuresBypassMute": true}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/integrations/slack/{some}"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            "/api/integrations/slack/test".into(),
            json!({"integrationId": some}),
            false,
        ),
        (
            Method::POST,
            "/api/users".into(),
            json!({"email": "x@world.test", "name": "X", "role": "member"}),
            false,
        ),
        (
            Method::POST,
            "/api/campaigns".into(),
            json!({"agentId": agent, "name": "C", "defaultPhoneNumberId": number_id}),
            true,
        ),
        (
            Method::PATCH,
            format!("/api/campaigns/{some}"),
            json!({"name": "D"}),
            true,
        ),
        (Method::POST, format!("/api/campaigns/{some}/start"), json!({}), true),
        (Method::POST, format!("/api/campaigns/{some}/pause"), json!({}), true),
        (Method::POST, format!("/api/campaigns/{some}/resume"), json!({}), true),
        (Method::POST, format!("/api/campaigns/{some}/cancel"), json!({}), true),
        (Method::DELETE, format!("/api/campaigns/{some}"), json!({}), false),
        (
            Method::POST,
            "/api/dnc".into(),
            json!({"phone": "+14155552671", "reason": "opt_out"}),
            true,
        ),
        (Method::DELETE, "/api/dnc/%2B14155552671".into(), json!({}), false),
        (
            Method::POST,
            "/api/integrations/calendars/connect".into(),
            json!({"provider": "google"}),
            false,
        ),
        (
            Method::PATCH,
            format!("/api/integrations/calendars/{some}"),
            json!({"bufferMinutes": 10}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/integrations/calendars/{some}"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            "/api/integrations/crm/connect".into(),
            json!({"provider": "hubspot"}),
            false,
        ),
        (
            Method::PATCH,
            "/api/integrations/crm?provider=hubspot".into(),
            json!({"syncEnabled": false}),
            false,
        ),
        (
            Method::DELETE,
            "/api/integrations/crm?provider=hubspot".into(),
            json!({}),
            false,
        ),
        (
            Method::POST,
            "/api/integrations/crm/sync-contact".into(),
            json!({"phone": "+14155552671", "provider": "hubspot"}),
            false,
        ),
        (
            Method::POST,
            "/api/calendar/book".into(),
            json!({"agentId": agent, "date": "2030-01-02", "time": "10:00", "attendeeName": "Ann"}),
            true,
        ),
    ];
    for (method, path, body, member_may) in &matrix {
        let (status, answer) = call(&w.app, method.clone(), path, &member, body).await;
        if *member_may {
            assert_ne!(status, 403, "a member may {method} {path}: {answer}");
        } else {
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (403, Some("role_not_allowed")),
                "a member may not {method} {path}"
            );
        }
    }
    // Managers pass the matrix everywhere (what happens next is each feature's business).
    for (method, path, body, _) in &matrix {
        for manager in [&admin, &w.token] {
            let (status, answer) = call(&w.app, method.clone(), path, manager, body).await;
            assert_ne!(status, 403, "a manager may {method} {path}: {answer}");
        }
    }
    // Reads are open to every member.
    for path in [
        "/api/agents",
        "/api/calls",
        "/api/phone-numbers",
        "/api/credentials",
        "/api/integrations/slack",
        "/api/campaigns",
        "/api/dnc",
        "/api/dnc?phone=%2B14155552671",
        "/api/integrations/calendars",
        "/api/appointments",
        "/api/integrations/crm",
        "/api/integrations/crm/sync-log",
    ] {
        assert_eq!(w.app.get(path, Some(&member)).await.0, 200, "{path}");
    }
}
