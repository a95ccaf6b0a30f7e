//! Agents over HTTP, mirrored to a fake Vapi that answers like Vapi.

use application::providers::RetryPolicy;
use serde_json::{json, Value};
use std::time::Duration;
use voxreach_tests::{TestApp, TEST_VAPI_SECRET};
use wiremock::matchers::{bearer_token, body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const VAPI_KEY: &str = "vapi-private-key";

async fn app_with_vapi() -> (TestApp, MockServer) {
    let vapi = MockServer::start().await;
    let uri = vapi.uri();
    let app = TestApp::spawn_with(|w| {
        w.vapi_base_url = uri;
        w.vapi_api_key = VAPI_KEY.into();
        w.retry = RetryPolicy {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            max_attempts: 4,
        };
    })
    .await;
    (app, vapi)
}

fn agent_body() -> Value {
    json!({
        "name": "Sales Agent 1",
        "systemPrompt": "You qualify inbound leads for Acme.",
        "firstMessage": "Hi, this is Ava from Acme!",
        "voice": {"provider": "11labs", "voiceId": "21m00Tcm4TlvDq8ikWAM", "speed": 1.1, "stability": 0.4},
        "language": "en-US",
        "transferNumber": "(415) 555-2671",
        "model": {"provider": "openai", "model": "gpt-4o", "temperature": 0.5}
    })
}

fn vapi_assistant(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(
        json!({"id": id, "orgId": "org_1", "name": "Sales Agent 1", "createdAt": "2026-11-24T12:00:00.000Z"}),
    )
}

#[tokio::test]
async fn an_agent_is_created_synced_updated_and_deleted_at_vapi() {
    let (app, vapi) = app_with_vapi().await;
    let (token, registered) = app.register("owner@acme.com", "Acme").await;
    let organization_id = registered["user"]["organizationId"].as_str().unwrap().to_owned();

    let (status, agent) = app.post("/api/agents", Some(&token), agent_body()).await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["syncStatus"], "pending");
    assert_eq!(agent["transferNumber"], "+14155552671");
    assert_eq!(agent["active"], true);
    let id = agent["id"].as_str().unwrap().to_owned();

    Mock::given(method("POST"))
        .and(path("/assistant"))
        .and(bearer_token(VAPI_KEY))
        .and(body_partial_json(json!({
            "name": "Sales Agent 1",
            "firstMessage": "Hi, this is Ava from Acme!",
            "model": {
                "provider": "openai", "model": "gpt-4o", "temperature": 0.5,
                "messages": [{"role": "system", "content": "You qualify inbound leads for Acme."}],
                "tools": [{"type": "transferCall", "destinations": [{"type": "number", "number": "+14155552671"}]}]
            },
            "voice": {"provider": "11labs", "voiceId": "21m00Tcm4TlvDq8ikWAM", "speed": 1.1, "stability": 0.4},
            "transcriber": {"language": "en"},
            "server": {"url": "https://app.voxreach.test/api/webhooks/vapi", "secret": TEST_VAPI_SECRET},
            "metadata": {"voxreachOrganizationId": organization_id, "voxreachAgentId": id}
        })))
        .respond_with(vapi_assistant("asst_123"))
        .expect(1)
        .mount(&vapi)
        .await;
    app.drain_work().await;
    let (status, synced) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(synced["syncStatus"], "synced", "{synced}");
    assert_eq!(synced["vapiAssistantId"], "asst_123");

    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_123"))
        .and(bearer_token(VAPI_KEY))
        .and(body_partial_json(
            json!({"model": {"messages": [{"role": "system", "content": "A sharper prompt."}]}}),
        ))
        .respond_with(vapi_assistant("asst_123"))
        .expect(1)
        .mount(&vapi)
        .await;
    let (status, patched) = app
        .patch(
            &format!("/api/agents/{id}"),
            Some(&token),
            json!({"systemPrompt": "A sharper prompt.", "transferNumber": null}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["syncStatus"], "pending");
    assert_eq!(patched["transferNumber"], Value::Null);
    assert_eq!(patched["name"], "Sales Agent 1");
    app.drain_work().await;
    let (_, after) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(
        (after["syncStatus"].as_str(), after["systemPrompt"].as_str()),
        (Some("synced"), Some("A sharper prompt."))
    );

    let (status, off) = app
        .post(&format!("/api/agents/{id}/deactivate"), Some(&token), json!({}))
        .await;
    assert_eq!((status, off["active"].as_bool()), (200, Some(false)));
    app.settle().await;
    let (_, active_only) = app.get("/api/agents?active=true", Some(&token)).await;
    assert!(active_only["agents"].as_array().unwrap().is_empty());
    let (status, on) = app
        .post(&format!("/api/agents/{id}/activate"), Some(&token), json!({}))
        .await;
    assert_eq!((status, on["active"].as_bool()), (200, Some(true)));

    Mock::given(method("DELETE"))
        .and(path("/assistant/asst_123"))
        .and(bearer_token(VAPI_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_123"})))
        .expect(1)
        .mount(&vapi)
        .await;
    assert_eq!(app.delete(&format!("/api/agents/{id}"), Some(&token)).await.0, 204);
    app.drain_work().await;
    assert_eq!(app.get(&format!("/api/agents/{id}"), Some(&token)).await.0, 404);
    let (_, listed) = app.get("/api/agents", Some(&token)).await;
    assert!(listed["agents"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn failed_syncs_are_visible_retried_and_bounded() {
    let (app, vapi) = app_with_vapi().await;
    let (token, _) = app.register("owner@retry.com", "Retry").await;

    // A 503, then a 429 with Retry-After, then success. Before each retry the
    // sync asks Vapi whether the unconfirmed attempt created the assistant after all: it did not.
    Mock::given(method("GET"))
        .and(path("/assistant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(2)
        .mount(&vapi)
        .await;
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"message": "Service Unavailable", "statusCode": 503})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&vapi)
        .await;
    let (_, agent) = app.post("/api/agents", Some(&token), agent_body()).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    app.drain_work().await;
    let (_, failed) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(failed["syncStatus"], "failed", "{failed}");
    assert!(failed["lastSyncError"].as_str().unwrap().contains("503"));
    let next: chrono::DateTime<chrono::Utc> = failed["nextSyncAttemptAt"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(50),
        "backoff: {next}"
    );
    // Not retried before it is due.
    app.drain_work().await;

    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "900")
                .set_body_json(json!({"message": "Too Many Requests", "statusCode": 429})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&vapi)
        .await;
    app.make_work_due().await;
    app.drain_work().await;
    let (_, limited) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(limited["syncStatus"], "failed");
    let next: chrono::DateTime<chrono::Utc> = limited["nextSyncAttemptAt"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(800),
        "Retry-After honoured: {next}"
    );

    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(vapi_assistant("asst_9"))
        .mount(&vapi)
        .await;
    app.make_work_due().await;
    app.drain_work().await;
    let (_, synced) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(
        (synced["syncStatus"].as_str(), synced["vapiAssistantId"].as_str()),
        (Some("synced"), Some("asst_9"))
    );

    // A permanent rejection is not retried, and stays visible.
    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_9"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"message": ["voice.voiceId must be a string"], "error": "Bad Request", "statusCode": 400}),
        ))
        .expect(1)
        .mount(&vapi)
        .await;
    app.patch(&format!("/api/agents/{id}"), Some(&token), json!({"name": "Renamed"}))
        .await;
    app.drain_work().await;
    let (_, rejected) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!(rejected["syncStatus"], "failed");
    assert_eq!(rejected["nextSyncAttemptAt"], Value::Null);
    // Vapi's own words stay in our logs; users see the status.
    assert_eq!(rejected["lastSyncError"], "the provider rejected the request (400)");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM reactor_work")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "given up, not looping");
}

#[tokio::test]
async fn agent_input_is_validated_field_by_field() {
    let (app, _vapi) = app_with_vapi().await;
    let (token, _) = app.register("owner@valid.com", "Valid").await;
    for (field, value) in [
        ("voice", json!({"provider": "11labs", "voiceId": "not-a-voice"})),
        ("transferNumber", json!("12345")),
        ("name", json!("")),
        ("language", json!("english")),
    ] {
        let mut body = agent_body();
        body[field] = value;
        let (status, error) = app.post("/api/agents", Some(&token), body).await;
        assert_eq!(status, 400, "{field}: {error}");
        assert_eq!(error["error"]["details"]["field"], field);
    }
    let mut body = agent_body();
    body["voice"]["speed"] = json!("fast");
    assert_eq!(app.post("/api/agents", Some(&token), body).await.0, 422);
    let mut body = agent_body();
    body["voice"] = json!({"provider": "openai", "voiceId": "nova", "stability": 0.5});
    let (status, error) = app.post("/api/agents", Some(&token), body).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("voice.stability"))
    );
    assert_eq!(app.get("/api/agents/not-a-uuid", Some(&token)).await.0, 404);

    let (status, voices) = app.get("/api/voices", Some(&token)).await;
    assert_eq!(status, 200);
    let voices = voices["voices"].as_array().unwrap();
    assert!(voices.len() >= 23);
    assert!(voices
        .iter()
        .all(|v| ["provider", "voiceId", "name", "language", "gender"]
            .iter()
            .all(|k| v[k].is_string())));
}

#[tokio::test]
async fn another_organization_cannot_see_or_change_an_agent() {
    let (app, _vapi) = app_with_vapi().await;
    let (a, _) = app.register("a@alpha.com", "Alpha").await;
    let (b, _) = app.register("b@beta.com", "Beta").await;
    let (_, agent) = app.post("/api/agents", Some(&a), agent_body()).await;
    let id = agent["id"].as_str().unwrap();
    app.settle().await;
    assert_eq!(app.get(&format!("/api/agents/{id}"), Some(&b)).await.0, 404);
    assert_eq!(
        app.patch(&format!("/api/agents/{id}"), Some(&b), json!({"name": "Hijacked"}))
            .await
            .0,
        404
    );
    assert_eq!(
        app.post(&format!("/api/agents/{id}/deactivate"), Some(&b), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&format!("/api/agents/{id}"), Some(&b)).await.0, 404);
    let (_, listed) = app.get("/api/agents", Some(&b)).await;
    assert!(listed["agents"].as_array().unwrap().is_empty());
    let (_, mine) = app.get(&format!("/api/agents/{id}"), Some(&a)).await;
    assert_eq!(
        (mine["name"].as_str(), mine["active"].as_bool()),
        (Some("Sales Agent 1"), Some(true))
    );
}

#[tokio::test]
async fn a_change_answers_once_the_read_models_hold_it() {
    let app = TestApp::spawn_with(|w| w.read_your_writes = api::consistency::READ_YOUR_WRITES_WAIT).await;
    // Projections run in the background, as in `serve`; nobody calls `settle`.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let projections = tokio::spawn(app.state.runner.clone().run(stopped));
    let (token, _) = app.register("ryw@example.com", "Read Your Writes").await;
    for round in 0..5 {
        let agent = json!({"name": format!("Ava {round}"), "systemPrompt": "Be helpful.",
            "voice": {"provider": "openai", "voiceId": "nova"}});
        let (status, created) = app.post("/api/agents", Some(&token), agent).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        let (status, fetched) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
        assert_eq!((status, &fetched["name"]), (200, &created["name"]), "round {round}");
        let (_, listed) = app.get("/api/agents", Some(&token)).await;
        assert_eq!(listed["agents"].as_array().unwrap().len(), round + 1);
        let (status, _) = app.delete(&format!("/api/agents/{id}"), Some(&token)).await;
        assert_eq!(status, 204);
        assert_eq!(
            app.get(&format!("/api/agents/{id}"), Some(&token)).await.0,
            404,
            "round {round}"
        );
        // Keep one per round, so the list grows.
        let again = json!({"name": format!("Kept {round}"), "systemPrompt": "Be helpful.",
            "voice": {"provider": "openai", "voiceId": "nova"}});
        assert_eq!(app.post("/api/agents", Some(&token), again).await.0, 201);
    }
    stop.send(true).unwrap();
    projections.await.unwrap();
}
