//! Vapi server messages in, call history and dashboard out.

use serde_json::{json, Value};
use voxreach_tests::{
    assert_every_stored_event_decodes, assert_live_apply_in_any_batches_equals_live, assert_read_models_equal_rebuilds,
    assert_replay_one_event_at_a_time_equals_live, TestApp, VapiWorld, TEST_VAPI_SECRET,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn world() -> VapiWorld {
    VapiWorld::start().await
}

async fn deliver(app: &TestApp, body: &Value) -> (u16, Value) {
    app.deliver_vapi(body).await
}

fn call(id: &str, assistant: &str) -> Value {
    json!({"id": id, "type": "inboundPhoneCall", "assistantId": assistant, "phoneNumberId": "pn_1", "customer": {"number": "+14155552671"}})
}

fn status_update(id: &str, status: &str, timestamp: i64) -> Value {
    json!({"message": {"type": "status-update", "status": status, "timestamp": timestamp, "call": call(id, "asst_123"),
                       "customer": {"number": "+14155552671"}}})
}

fn end_of_call_report(id: &str) -> Value {
    json!({"message": {
        "type": "end-of-call-report", "timestamp": 1764000300000i64, "endedReason": "customer-ended-call",
        "call": call(id, "asst_123"), "customer": {"number": "+14155552671"},
        "cost": 0.31, "startedAt": "2026-11-24T12:00:00.000Z", "endedAt": "2026-11-24T12:04:32.000Z",
        "artifact": {
            "transcript": "AI: Hi, this is Ava.\nUser: Hi, I need a quote.",
            "recordingUrl": "https://storage.vapi.ai/rec-1.wav",
            "stereoRecordingUrl": "https://storage.vapi.ai/rec-1-stereo.wav",
            "messages": [
                {"role": "bot", "message": "Hi, this is Ava.", "time": 1764000000500.0, "secondsFromStart": 0.5},
                {"role": "user", "message": "Hi, I need a quote.", "time": 1764000003000.0, "secondsFromStart": 3.0}
            ]
        },
        "analysis": {"summary": "Caller wants a quote.", "structuredData": {"interest": "Enterprise Plan"}, "successEvaluation": "true"}
    }})
}

async fn event_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_is_recorded_from_its_server_messages() {
    let w = world().await;
    for (status, at) in [("ringing", 1764000000000i64), ("in-progress", 1764000001000)] {
        let (code, reply) = deliver(&w.app, &status_update("call_1", status, at)).await;
        assert_eq!((code, reply), (200, json!({})));
    }
    assert_eq!(deliver(&w.app, &end_of_call_report("call_1")).await.0, 200);
    // Redelivered: nothing new.
    let before = event_count(&w.app).await;
    assert_eq!(deliver(&w.app, &end_of_call_report("call_1")).await.0, 200);
    assert_eq!(
        deliver(&w.app, &status_update("call_1", "ringing", 1764000000000))
            .await
            .0,
        200
    );
    assert_eq!(event_count(&w.app).await, before);

    w.app.settle().await;
    let (status, list) = w.app.get("/api/calls", Some(&w.token)).await;
    assert_eq!(status, 200);
    voxreach_tests::assert_answers_as_documented("CallList", &list);
    let calls = list["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    let summary = &calls[0];
    assert_eq!(summary["status"], "ended");
    assert_eq!(summary["direction"], "inbound");
    assert_eq!(summary["agentId"], w.agent_id.as_str());
    assert_eq!(summary["agentName"], "Closer");
    assert_eq!(summary["customerNumber"], "+14155552671");
    assert_eq!(summary["vapiCallId"], "call_1");

    let (status, detail) = w
        .app
        .get(
            &format!("/api/calls/{}", summary["id"].as_str().unwrap()),
            Some(&w.token),
        )
        .await;
    assert_eq!(status, 200);
    voxreach_tests::assert_answers_as_documented("CallDetail", &detail);
    assert_eq!(detail["durationSeconds"], 272.0);
    assert_eq!(detail["cost"], 0.31);
    assert_eq!(detail["endedReason"], "customer-ended-call");
    assert_eq!(detail["recordingUrl"], "https://storage.vapi.ai/rec-1.wav");
    assert_eq!(detail["stereoRecordingUrl"], "https://storage.vapi.ai/rec-1-stereo.wav");
    assert!(detail["transcript"].as_str().unwrap().contains("I need a quote"));
    assert_eq!(
        detail["messages"][1],
        json!({"role": "user", "message": "Hi, I need a quote.", "time": 1764000003000.0, "secondsFromStart": 3.0})
    );
    assert_eq!(detail["analysis"]["summary"], "Caller wants a quote.");
    assert_eq!(detail["analysis"]["structuredData"]["interest"], "Enterprise Plan");
    assert_eq!(detail["analysis"]["successEvaluation"], "true");
    let timeline: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, vec!["ringing", "in-progress", "ended"]);
    assert_eq!(detail["timeline"][0]["details"]["agentId"], w.agent_id.as_str());

    // The incremental read models equal a rebuild from the start of the log.
    assert_read_models_equal_rebuilds(&w.app).await;
    assert_replay_one_event_at_a_time_equals_live(&w.app, "calls").await;
    assert_live_apply_in_any_batches_equals_live(&w.app, "calls").await;
    assert_every_stored_event_decodes(&w.app.db.pool).await;

    let (_, stats) = w.app.get("/api/dashboard/stats", Some(&w.token)).await;
    assert_eq!(stats["totalCalls"], 1);
    assert_eq!(stats["totalMinutes"], 4.53);
    assert_eq!(stats["activeAgents"], 1);
    assert_eq!(stats["recentCalls"][0]["vapiCallId"], "call_1");
}

#[tokio::test]
async fn messages_out_of_order_still_end_in_the_right_state() {
    let w = world().await;
    assert_eq!(deliver(&w.app, &end_of_call_report("call_2")).await.0, 200);
    assert_eq!(
        deliver(&w.app, &status_update("call_2", "in-progress", 1764000001000))
            .await
            .0,
        200
    );
    // The legacy end-of-call-report layout too.
    let legacy = json!({"message": {"type": "end-of-call-report", "endedReason": "assistant-ended-call",
        "call": call("call_3", "asst_123"), "transcript": "AI: Bye", "summary": "Short call", "recordingUrl": "https://r/3.wav",
        "durationSeconds": 30, "messages": [{"role": "bot", "message": "Bye", "time": 1.0, "secondsFromStart": 0.1}]}});
    assert_eq!(deliver(&w.app, &legacy).await.0, 200);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls?status=ended", Some(&w.token)).await;
    let ids: Vec<&str> = list["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["vapiCallId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let (_, legacy_list) = w
        .app
        .get("/api/calls?phone=4155552671&status=ended", Some(&w.token))
        .await;
    let legacy_call = legacy_list["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["vapiCallId"] == "call_3")
        .unwrap()
        .clone();
    let (_, detail) = w
        .app
        .get(
            &format!("/api/calls/{}", legacy_call["id"].as_str().unwrap()),
            Some(&w.token),
        )
        .await;
    assert_eq!(
        (
            detail["durationSeconds"].as_f64(),
            detail["analysis"]["summary"].as_str()
        ),
        (Some(30.0), Some("Short call"))
    );
    assert_eq!(detail["recordingUrl"], "https://r/3.wav");
}

#[tokio::test]
async fn webhooks_are_authenticated_and_validated() {
    let w = world().await;
    let before = event_count(&w.app).await;
    let body = status_update("call_x", "ringing", 1);
    for secret in [Some("wrong"), None] {
        let mut request = w.app.client.post(w.app.url("/api/webhooks/vapi")).json(&body);
        if let Some(secret) = secret {
            request = request.header("x-vapi-secret", secret);
        }
        let (status, error) = voxreach_tests::into_parts(request.send().await.unwrap()).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (401, Some("invalid_webhook_signature"))
        );
    }
    let response = w
        .app
        .client
        .post(w.app.url("/api/webhooks/vapi"))
        .header("x-vapi-secret", TEST_VAPI_SECRET)
        .header("content-type", "application/json")
        .body("{\"message\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = voxreach_tests::into_parts(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("malformed_webhook"))
    );
    assert_eq!(
        deliver(&w.app, &json!({"message": {"type": "status-update", "call": {}}}))
            .await
            .0,
        400
    );
    assert_eq!(
        event_count(&w.app).await,
        before,
        "nothing appended for rejected requests"
    );
    // Other message types are acknowledged.
    assert_eq!(
        deliver(
            &w.app,
            &json!({"message": {"type": "speech-update", "call": {"id": "c"}}})
        )
        .await,
        (200, json!({}))
    );
}

#[tokio::test]
async fn only_the_configured_webhook_auth_modes_are_accepted() {
    let app = TestApp::spawn_with(|w| {
        w.vapi_webhook_auth = infrastructure::vapi_messages::WebhookAuthModes::parse("bearer").unwrap();
    })
    .await;
    let body = json!({"message": {"type": "speech-update", "call": {"id": "c"}}});
    let send = |header: (&'static str, String)| {
        let request = app
            .client
            .post(app.url("/api/webhooks/vapi"))
            .header(header.0, header.1)
            .json(&body);
        async move { voxreach_tests::into_parts(request.send().await.unwrap()).await.0 }
    };
    assert_eq!(send(("x-vapi-secret", TEST_VAPI_SECRET.to_owned())).await, 401);
    assert_eq!(send(("authorization", format!("Bearer {TEST_VAPI_SECRET}"))).await, 200);
}

#[tokio::test]
async fn tool_calls_are_dispatched_and_answered_in_vapis_format() {
    let w = world().await;
    let body = json!({"message": {"type": "tool-calls", "call": call("call_t", "asst_123"), "toolCallList": [
        {"id": "tc_1", "type": "function", "function": {"name": "set_call_outcome", "arguments": "{\"outcome\": \"qualified\", \"notes\": \"Budget approved\"}"}},
        {"id": "tc_2", "name": "launch_rocket", "parameters": {}},
        {"id": "tc_3", "name": "set_call_outcome", "parameters": {"outcome": "won-the-lottery"}}
    ]}});
    let (status, reply) = deliver(&w.app, &body).await;
    assert_eq!(status, 200);
    let results = reply["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"toolCallId": "tc_1", "name": "set_call_outcome", "result": "Outcome recorded: qualified."})
    );
    assert_eq!(results[1]["toolCallId"], "tc_2");
    assert!(results[1]["error"].as_str().unwrap().contains("unknown tool"));
    assert!(results[2]["error"].as_str().unwrap().contains("outcome"));
    // A redelivered tool call records nothing twice.
    let before = event_count(&w.app).await;
    deliver(&w.app, &body).await;
    assert_eq!(event_count(&w.app).await, before);

    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls?outcome=qualified", Some(&w.token)).await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["calls"][0]["status"], "in-progress");
}

#[tokio::test]
async fn unknown_calls_are_kept_as_unmatched() {
    let w = world().await;
    let mut body = status_update("call_ghost", "ringing", 1);
    body["message"]["call"]["assistantId"] = json!("asst_unknown");
    assert_eq!(deliver(&w.app, &body).await.0, 200);
    let unmatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'VapiMessageUnmatched' AND organization_id = '00000000-0000-0000-0000-000000000000'",
    )
    .fetch_one(&w.app.db.pool)
    .await
    .unwrap();
    assert_eq!(unmatched, 1);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls", Some(&w.token)).await;
    assert!(list["calls"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn call_lists_filter_and_page_and_stay_inside_the_organization() {
    let w = world().await;
    for n in 0..5 {
        let mut message = status_update(&format!("call_{n}"), "ringing", 1764000000000 + n);
        if n % 2 == 1 {
            message["message"]["call"]["type"] = json!("outboundPhoneCall");
        }
        deliver(&w.app, &message).await;
    }
    w.app.settle().await;
    let (_, outbound) = w.app.get("/api/calls?direction=outbound", Some(&w.token)).await;
    assert_eq!(outbound["calls"].as_array().unwrap().len(), 2);
    let (_, by_agent) = w
        .app
        .get(&format!("/api/calls?agentId={}", w.agent_id), Some(&w.token))
        .await;
    assert_eq!(by_agent["calls"].as_array().unwrap().len(), 5);

    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/calls?limit=2&cursor={c}"),
            None => "/api/calls?limit=2".to_owned(),
        };
        let (status, page) = w.app.get(&path, Some(&w.token)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no call twice across pages");

    for bad in [
        "status=exploded",
        "direction=sideways",
        "limit=0",
        "cursor=garbage",
        "from=yesterday",
    ] {
        let (status, _) = w.app.get(&format!("/api/calls?{bad}"), Some(&w.token)).await;
        assert_eq!(status, 400, "{bad}");
    }

    let (other, _) = w.app.register("owner@other.com", "Other").await;
    let (_, theirs) = w.app.get("/api/calls", Some(&other)).await;
    assert!(theirs["calls"].as_array().unwrap().is_empty());
    assert_eq!(w.app.get(&format!("/api/calls/{}", seen[0]), Some(&other)).await.0, 404);
    let (status, _) = w
        .app
        .post(
            &format!("/api/calls/{}/outcome", seen[0]),
            Some(&other),
            json!({"outcome": "sale"}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, stats) = w.app.get("/api/dashboard/stats", Some(&other)).await;
    assert_eq!(
        (stats["totalCalls"].as_i64(), stats["activeAgents"].as_i64()),
        (Some(0), Some(0))
    );

    let (status, _) = w
        .app
        .post(
            &format!("/api/calls/{}/outcome", seen[0]),
            Some(&w.token),
            json!({"outcome": "sale"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, error) = w
        .app
        .post(
            &format!("/api/calls/{}/outcome", seen[0]),
            Some(&w.token),
            json!({"outcome": "maybe"}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("outcome"))
    );
    w.app.settle().await;
    let (_, detail) = w.app.get(&format!("/api/calls/{}", seen[0]), Some(&w.token)).await;
    assert_eq!(detail["outcome"], "sale");
    assert_eq!(
        detail["timeline"].as_array().unwrap().last().unwrap()["details"]["source"],
        "api"
    );
    // Several calls, one of them given an outcome after the others: a rebuild
    // holding fewer calls than that writes some and reads them back.
    assert_replay_one_event_at_a_time_equals_live(&w.app, "calls").await;
    assert_live_apply_in_any_batches_equals_live(&w.app, "calls").await;
}

#[tokio::test]
async fn outbound_calls_are_placed_through_vapi_and_tracked() {
    let w = world().await;
    let number_id = w.add_number("pn_1", "+14155550123", false).await;

    let (status, requested) = w
        .post(
            "/api/calls",
            json!({"agentId": w.agent_id, "phoneNumberId": number_id, "customerNumber": "(415) 555-2671"}),
        )
        .await;
    assert_eq!(status, 202, "{requested}");
    let call_id = requested["id"].as_str().unwrap().to_owned();
    Mock::given(method("POST"))
        .and(path("/call"))
        .and(wiremock::matchers::body_partial_json(json!({
            "assistantId": "asst_123", "phoneNumberId": "pn_1", "customer": {"number": "+14155552671"},
            "metadata": {"voxreachCallId": call_id, "voxreachAgentId": w.agent_id}
        })))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "call_out_1", "status": "queued", "type": "outboundPhoneCall"})),
        )
        .expect(1)
        .mount(&w.vapi)
        .await;
    w.app.drain_work().await;
    let (_, placed) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(
        (placed["status"].as_str(), placed["vapiCallId"].as_str()),
        (Some("queued"), Some("call_out_1")),
        "{placed}"
    );
    assert_eq!(placed["direction"], "outbound");

    // Vapi's messages about it land on the same call, through the metadata it echoes.
    let mut update = status_update("call_out_1", "in-progress", 1764000001000);
    update["message"]["call"]["type"] = json!("outboundPhoneCall");
    update["message"]["call"]["metadata"] = json!({"voxreachCallId": call_id});
    assert_eq!(deliver(&w.app, &update).await.0, 200);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls?direction=outbound", Some(&w.token)).await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1);
    assert_eq!(list["calls"][0]["status"], "in-progress");
    let (_, detail) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    let steps: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["CallRequested", "CallPlacedWithVapi", "CallStatusUpdated"]);
}

#[tokio::test]
async fn outbound_call_failures_are_visible_and_never_dialled_twice() {
    let w = world().await;
    let number_id = w.add_number("pn_2", "+14155550124", false).await;
    // Vapi answers 502, yet the call went through: the retry finds it instead of dialling again.
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&w.vapi)
        .await;
    let body = json!({"agentId": w.agent_id, "phoneNumberId": number_id, "customerNumber": "+14155552671"});
    let (_, requested) = w.post("/api/calls", body.clone()).await;
    let call_id = requested["id"].as_str().unwrap().to_owned();
    w.app.drain_work().await;
    let (_, pending) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(
        pending["status"], "requested",
        "an ambiguous failure is not a failed call"
    );
    Mock::given(method("GET"))
        .and(path("/call"))
        .and(wiremock::matchers::query_param("assistantId", "asst_123"))
        .and(wiremock::matchers::query_param("phoneNumberId", "pn_2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "call_other", "status": "ended", "customer": {"number": "+14155559999"}, "metadata": {"voxreachCallId": "0199aa00-0000-7000-8000-00000000beef"}},
            {"id": "call_ghost", "status": "ringing", "customer": {"number": "+14155552671"}, "metadata": {"voxreachCallId": call_id}}
        ])))
        .expect(1)
        .mount(&w.vapi)
        .await;
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let (_, found) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(
        (found["status"].as_str(), found["vapiCallId"].as_str()),
        (Some("queued"), Some("call_ghost")),
        "{found}"
    );

    // A refusal is final, visible, and not retried.
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"message": "customer.number must be a valid phone number"})),
        )
        .expect(1)
        .mount(&w.vapi)
        .await;
    let (_, refused) = w.post("/api/calls", body.clone()).await;
    w.app.drain_work().await;
    let (_, failed) = w
        .app
        .get(
            &format!("/api/calls/{}", refused["id"].as_str().unwrap()),
            Some(&w.token),
        )
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    // The reason names the refusal; Vapi's own words stay in our logs.
    assert_eq!(
        failed["timeline"][1]["details"]["reason"],
        "the provider rejected the request (400)"
    );

    for (field, value) in [
        ("customerNumber", json!("555")),
        ("phoneNumberId", json!("0199aa00-0000-7000-8000-000000000001")),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let (status, error) = w.post("/api/calls", bad).await;
        assert_eq!(
            (status, error["error"]["details"]["field"].as_str()),
            (400, Some(field)),
            "{error}"
        );
    }
    let (other, _) = w.app.register("x@elsewhere.com", "Elsewhere").await;
    let (status, error) = w.app.post("/api/calls", Some(&other), body.clone()).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("agentId"))
    );
    w.app
        .post(
            &format!("/api/agents/{}/deactivate", w.agent_id),
            Some(&w.token),
            json!({}),
        )
        .await;
    let (status, error) = w.post("/api/calls", body).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("agent_inactive")));
}

#[tokio::test]
async fn inbound_calls_without_an_assistant_are_traced_through_the_number() {
    let w = world().await;
    w.add_number("pn_in", "+14155550125", true).await;
    let message = json!({"message": {"type": "status-update", "status": "ringing", "timestamp": 1764000000000i64,
        "call": {"id": "call_in", "type": "inboundPhoneCall", "phoneNumberId": "pn_in", "customer": {"number": "+14155552671"}}}});
    assert_eq!(deliver(&w.app, &message).await.0, 200);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls", Some(&w.token)).await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["calls"][0]["agentId"], w.agent_id.as_str());
}

#[tokio::test]
async fn the_agents_rule_turns_call_analysis_into_an_outcome() {
    let w = world().await;
    // Default rule: structuredData.outcome.
    let mut report = end_of_call_report("call_r1");
    report["message"]["analysis"]["structuredData"] = json!({"outcome": "appointment"});
    deliver(&w.app, &report).await;
    // The agent's own rule: the success evaluation decides.
    let (status, agent) = w
        .app
        .patch(
            &format!("/api/agents/{}", w.agent_id),
            Some(&w.token),
            json!({"outcomeRule": {"onSuccess": "qualified", "onFailure": "not_interested"}}),
        )
        .await;
    assert_eq!(status, 200, "{agent}");
    let mut passed = end_of_call_report("call_r2");
    passed["message"]["analysis"]["structuredData"] = json!({});
    deliver(&w.app, &passed).await;
    let mut failed = end_of_call_report("call_r3");
    failed["message"]["analysis"] = json!({"successEvaluation": "false"});
    deliver(&w.app, &failed).await;
    let (status, error) = w
        .app
        .patch(
            &format!("/api/agents/{}", w.agent_id),
            Some(&w.token),
            json!({"outcomeRule": {"onSuccess": "rich"}}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("outcomeRule"))
    );

    w.app.settle().await;
    let (_, list) = w.app.get("/api/calls", Some(&w.token)).await;
    let outcome_of = |vapi_id: &str| {
        list["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["vapiCallId"] == vapi_id)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome_of("call_r1"), "appointment");
    assert_eq!(outcome_of("call_r2"), "qualified");
    assert_eq!(outcome_of("call_r3"), "not_interested");
}

#[tokio::test]
async fn messages_about_a_placed_call_find_it_by_its_vapi_id_and_never_cross_organizations() {
    let w = world().await;
    let number_id = w.add_number("pn_trust", "+14155550170", false).await;
    let (_, requested) = w
        .post(
            "/api/calls",
            json!({"agentId": w.agent_id, "phoneNumberId": number_id, "customerNumber": "+14155552671"}),
        )
        .await;
    let call_id = requested["id"].as_str().unwrap().to_owned();
    Mock::given(method("POST"))
        .and(path("/call"))
        .and(wiremock::matchers::body_partial_json(json!({
            "assistantOverrides": {"metadata": {"voxreachCallId": call_id}}
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "call_trust", "status": "queued"})))
        .expect(1)
        .mount(&w.vapi)
        .await;
    w.app.drain_work().await;

    // No metadata at all: the Vapi id alone finds our call.
    assert_eq!(
        deliver(&w.app, &status_update("call_trust", "ringing", 1764000001000))
            .await
            .0,
        200
    );
    w.app.settle().await;
    let (_, call) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(call["status"], "ringing", "{call}");
    let (_, list) = w.app.get("/api/calls", Some(&w.token)).await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "no second call: {list}");

    // A message naming another organization for this call touches nothing.
    let (other, _) = w.app.register("mallory@elsewhere.test", "Elsewhere").await;
    let (_, me) = w.app.get("/api/auth/me", Some(&other)).await;
    let mut forged = status_update("call_trust", "ended", 1764000002000);
    forged["message"]["call"]["metadata"] =
        json!({"voxreachCallId": call_id, "voxreachOrganizationId": me["organizationId"]});
    assert_eq!(deliver(&w.app, &forged).await.0, 200);
    w.app.settle().await;
    let (_, call) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(call["status"], "ringing", "{call}");
    let (_, theirs) = w.app.get("/api/calls", Some(&other)).await;
    assert!(theirs["calls"].as_array().unwrap().is_empty(), "{theirs}");
    let unmatched: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'VapiMessageUnmatched'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert_eq!(unmatched, 1);
}

#[tokio::test]
async fn an_unmatched_message_is_kept_whole_encrypted_and_can_be_reattached() {
    let w = world().await;
    // A message for a call nobody can be traced to (an unknown assistant and number).
    let mut lost = end_of_call_report("call_lost");
    lost["message"]["call"]["assistantId"] = json!("asst_unknown");
    lost["message"]["call"]["phoneNumberId"] = json!("pn_unknown");
    assert_eq!(deliver(&w.app, &lost).await.0, 200);
    let payload: Value = sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'VapiMessageUnmatched'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert!(payload["sealedMessage"].is_string());
    assert!(
        !payload.to_string().contains("I need a quote"),
        "the transcript is encrypted at rest"
    );
    // An operator attaches it to the call it belongs to.
    let (_, requested) = w
        .post(
            "/api/calls",
            json!({"agentId": w.agent_id, "phoneNumberId": w.add_number("pn_att", "+14155550190", false).await, "customerNumber": "+14155552671"}),
        )
        .await;
    let call_id: uuid::Uuid = requested["id"].as_str().unwrap().parse().unwrap();
    let parse = |raw: &[u8]| infrastructure::vapi_messages::parse(raw, chrono::Utc::now()).map_err(|e| e.to_string());
    let attached = w
        .app
        .state
        .calls
        .attach_unmatched("call_lost", call_id, &parse)
        .await
        .unwrap();
    assert_eq!(attached, 1);
    w.app.settle().await;
    let (_, call) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
    assert_eq!(call["status"], "ended", "{call}");
    assert!(call["transcript"].as_str().unwrap().contains("I need a quote"));
}
