//! Correlation ids from a request through its events to the reactor work they
//! cause, and the Prometheus metrics.

use serde_json::json;
use voxreach_tests::VapiWorld;

#[tokio::test]
async fn one_correlation_id_follows_a_request_through_its_events_and_reactors() {
    let w = VapiWorld::start().await;
    let correlation_id = uuid::Uuid::now_v7();
    let response = w
        .app
        .client
        .post(w.app.url("/api/agents"))
        .bearer_auth(&w.token)
        .header("x-request-id", correlation_id.to_string())
        .json(&json!({"name": "Traced", "systemPrompt": "Sell.", "voice": {"provider": "openai", "voiceId": "nova"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["x-request-id"].to_str().unwrap(),
        correlation_id.to_string(),
        "the id is echoed"
    );
    w.app.drain_work().await;
    let stories: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata->>'correlation_id' FROM events
         WHERE event_type IN ('AgentCreated', 'AgentAssistantCreationStarted', 'AgentSyncedToVapi')
           AND stream_id IN (SELECT stream_id FROM events WHERE event_type = 'AgentCreated' AND payload->'spec'->>'name' = 'Traced')
         ORDER BY global_position",
    )
    .fetch_all(&w.app.db.pool)
    .await
    .unwrap();
    let types: Vec<&str> = stories.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["AgentCreated", "AgentAssistantCreationStarted", "AgentSyncedToVapi"]
    );
    assert!(
        stories
            .iter()
            .all(|(_, id)| id.as_deref() == Some(correlation_id.to_string().as_str())),
        "the reactor's events continue the request's story: {stories:?}"
    );

    let metrics = w
        .app
        .client
        .get(w.app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    for series in [
        "voxreach_http_requests_total{",
        "route=\"/api/agents\"",
        "voxreach_events_appended_total",
        "voxreach_consumer_lag_events{consumer=\"calls\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
}
