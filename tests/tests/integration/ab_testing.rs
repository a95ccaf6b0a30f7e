//! Script A/B tests end to end: variants, tests, assignment through Vapi's
//! assistant-request, outcomes through tool calls, results and winners.

use serde_json::{json, Value};
use voxreach_tests::{assert_every_stored_event_decodes, assert_read_models_equal_rebuilds, TestApp, VapiWorld};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const CONTROL_PROMPT: &str = "Soft open: ask how their week is going.";
const BOLD_PROMPT: &str = "Bold open: lead with the discount.";

async fn deliver(app: &TestApp, body: &Value) -> (u16, Value) {
    app.deliver_vapi(body).await
}

/// The world plus an inbound number `pn_in` ringing the agent.
async fn world() -> VapiWorld {
    let w = VapiWorld::start().await;
    // Auto-promotion updates the assistant.
    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_123"})))
        .mount(&w.vapi)
        .await;
    w.add_number("pn_in", "+14155550125", true).await;
    w
}

async fn variant(w: &VapiWorld, name: &str, prompt: &str, control: bool, percent: u32) -> String {
    let (status, body) = w
        .app
        .post(
            &format!("/api/agents/{}/variants", w.agent_id),
            Some(&w.token),
            json!({"name": name, "prompt": prompt, "isControl": control, "trafficPercent": percent}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn start(w: &VapiWorld, variants: &[&str], auto_promote: bool) -> (u16, Value) {
    w.app
        .post(
            &format!("/api/agents/{}/ab-tests", w.agent_id),
            Some(&w.token),
            json!({"name": "Opening line", "variantIds": variants, "successOutcome": "qualified", "minSampleSize": 100, "autoPromote": auto_promote}),
        )
        .await
}

fn call(id: &str, customer: &str) -> Value {
    json!({"id": id, "type": "inboundPhoneCall", "phoneNumberId": "pn_in", "customer": {"number": customer}})
}

/// Vapi asks which assistant takes the call; returns the prompt override, if any.
async fn ring(app: &TestApp, id: &str, customer: &str) -> Option<String> {
    let (status, reply) = deliver(
        app,
        &json!({"message": {"type": "assistant-request", "call": call(id, customer)}}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["assistantId"], "asst_123", "{reply}");
    reply["assistantOverrides"]["model"]["messages"][0]["content"]
        .as_str()
        .map(str::to_owned)
}

/// The call runs: the agent records its outcome with the tool, then Vapi reports the end.
async fn finish(app: &TestApp, id: &str, customer: &str, outcome: &str) {
    let mut message = json!({"message": {"type": "tool-calls", "call": call(id, customer), "toolCallList": [
        {"id": format!("tc-{id}"), "name": "set_call_outcome", "parameters": {"outcome": outcome}}]}});
    message["message"]["call"]["assistantId"] = json!("asst_123");
    let (_, reply) = deliver(app, &message).await;
    assert!(reply["results"][0]["result"].is_string(), "{reply}");
    let end = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call", "call": call(id, customer),
        "durationSeconds": 60, "artifact": {"transcript": "…", "messages": []}}});
    assert_eq!(deliver(app, &end).await.0, 200);
}

#[tokio::test]
async fn a_test_finds_the_better_script_and_promotes_it() {
    let w = world().await;
    let control = variant(&w, "Soft", CONTROL_PROMPT, true, 50).await;
    let bold = variant(&w, "Bold", BOLD_PROMPT, false, 50).await;
    let (status, test) = start(&w, &[&control, &bold], true).await;
    assert_eq!(status, 201, "{test}");
    let test_id = test["id"].as_str().unwrap().to_owned();

    // True rates: the control qualifies 10% of calls, the bold script 40%.
    let (mut soft_calls, mut bold_calls) = (0usize, 0usize);
    let mut completed_after = None;
    for i in 0..240 {
        let (id, customer) = (format!("ab_{i}"), format!("+1415555{:04}", 1000 + i));
        let prompt = ring(&w.app, &id, &customer).await;
        let outcome = match prompt.as_deref() {
            Some(CONTROL_PROMPT) => {
                soft_calls += 1;
                if soft_calls % 10 == 0 {
                    "qualified"
                } else {
                    "not_interested"
                }
            }
            Some(BOLD_PROMPT) => {
                bold_calls += 1;
                if bold_calls % 5 < 2 {
                    "qualified"
                } else {
                    "not_interested"
                }
            }
            _ => {
                completed_after.get_or_insert(i);
                "not_interested"
            }
        };
        // The split stays within one call of 50/50 at every step.
        assert!(soft_calls.abs_diff(bold_calls) <= 1, "{soft_calls} vs {bold_calls}");
        finish(&w.app, &id, &customer, outcome).await;
        if i % 20 == 19 {
            w.app.drain_work().await;
        }
    }
    w.app.drain_work().await;

    let (status, results) = w.app.get(&format!("/api/ab-tests/{test_id}"), Some(&w.token)).await;
    assert_eq!(status, 200);
    assert_eq!(results["status"], "completed", "{results}");
    assert_eq!(results["winnerId"], bold.as_str());
    assert_eq!(results["decidedBy"], "sequential-test");
    assert_eq!(results["decision"]["state"], "winner");
    let variants = results["variants"].as_array().unwrap();
    let (soft, winner) = (&variants[0], &variants[1]);
    assert_eq!(soft["isControl"], true);
    let finished = soft["finishedCalls"].as_u64().unwrap() + winner["finishedCalls"].as_u64().unwrap();
    assert!((100..=120).contains(&finished), "decided at the first look: {finished}");
    assert!(winner["conversionRate"].as_f64().unwrap() > soft["conversionRate"].as_f64().unwrap());
    assert!(winner["pValue"].as_f64().unwrap() < 0.025);
    assert!(winner["probabilityToBeatControl"].as_f64().unwrap() > 0.99);
    assert!(winner["liftOverControl"].as_f64().unwrap() > 1.0);
    let interval = winner["conversionRateInterval"].as_array().unwrap();
    assert!(interval[0].as_f64().unwrap() < winner["conversionRate"].as_f64().unwrap());
    assert!(!winner["daily"].as_array().unwrap().is_empty());

    // Auto-promote: later calls get the agent's own prompt, which is now the winner's.
    assert!(
        completed_after.is_some(),
        "calls after the decision ran without a variant"
    );
    let (_, agent) = w.app.get(&format!("/api/agents/{}", w.agent_id), Some(&w.token)).await;
    assert_eq!(agent["systemPrompt"], BOLD_PROMPT);
    let (_, history) = w
        .app
        .get(&format!("/api/agents/{}/ab-tests", w.agent_id), Some(&w.token))
        .await;
    assert_eq!(history["abTests"][0]["id"], test_id.as_str());
    // Every read model equals a rebuild from the start of the log.
    assert_read_models_equal_rebuilds(&w.app).await;
    assert_every_stored_event_decodes(&w.app.db.pool).await;
    // Variants are free to change again.
    let (status, _) = w
        .app
        .patch(
            &format!("/api/variants/{control}"),
            Some(&w.token),
            json!({"prompt": "New idea"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn paused_tests_assign_nothing_and_resume() {
    let w = world().await;
    let a = variant(&w, "A", CONTROL_PROMPT, true, 50).await;
    let b = variant(&w, "B", BOLD_PROMPT, false, 50).await;
    let (_, test) = start(&w, &[&a, &b], false).await;
    let id = test["id"].as_str().unwrap();
    assert!(ring(&w.app, "p_1", "+14155550001").await.is_some());
    assert_eq!(w.post(&format!("/api/ab-tests/{id}/pause"), json!({})).await.0, 200);
    assert_eq!(ring(&w.app, "p_2", "+14155550002").await, None);
    assert_eq!(w.post(&format!("/api/ab-tests/{id}/resume"), json!({})).await.0, 200);
    // Sticky: the first customer calls again and hears the same script.
    let first = ring(&w.app, "p_1", "+14155550001").await;
    assert_eq!(ring(&w.app, "p_3", "+14155550001").await, first);
    w.app.settle().await;
    let (_, results) = w.app.get(&format!("/api/ab-tests/{id}"), Some(&w.token)).await;
    let calls: u64 = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 2, "p_1 once, p_3; nothing while paused");

    // A manual winner ends the test without promoting.
    let (status, _) = w
        .post(&format!("/api/ab-tests/{id}/declare-winner"), json!({"variantId": a}))
        .await;
    assert_eq!(status, 200);
    w.app.settle().await;
    let (_, done) = w.app.get(&format!("/api/ab-tests/{id}"), Some(&w.token)).await;
    assert_eq!(
        (done["status"].as_str(), done["decidedBy"].as_str()),
        (Some("completed"), Some("manual"))
    );
    let (_, agent) = w.app.get(&format!("/api/agents/{}", w.agent_id), Some(&w.token)).await;
    assert_eq!(agent["systemPrompt"], "Sell.");
}

#[tokio::test]
async fn many_calls_at_once_never_over_assign_a_side() {
    let w = world().await;
    let a = variant(&w, "A", CONTROL_PROMPT, true, 50).await;
    let b = variant(&w, "B", BOLD_PROMPT, false, 50).await;
    let (_, test) = start(&w, &[&a, &b], false).await;
    let rings = (0..40).map(|i| {
        let app = &w.app;
        async move { ring(app, &format!("c_{i}"), &format!("+1415556{:04}", 1000 + i)).await }
    });
    let prompts = futures::future::join_all(rings).await;
    let controls = prompts.iter().filter(|p| p.as_deref() == Some(CONTROL_PROMPT)).count();
    assert_eq!(controls, 20, "exactly half of 40 concurrent calls");
    w.app.settle().await;
    let (_, results) = w
        .app
        .get(
            &format!("/api/ab-tests/{}", test["id"].as_str().unwrap()),
            Some(&w.token),
        )
        .await;
    let calls: Vec<u64> = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["calls"].as_u64().unwrap())
        .collect();
    assert_eq!(calls, vec![20, 20]);
}

#[tokio::test]
async fn bad_tests_are_refused_with_clear_codes() {
    let w = world().await;
    let a = variant(&w, "A", CONTROL_PROMPT, true, 60).await;
    let b = variant(&w, "B", BOLD_PROMPT, false, 30).await;
    let c = variant(&w, "C", "Another control", true, 40).await;
    let (status, error) = start(&w, &[&a, &b], false).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("traffic_not_100"))
    );
    let (status, error) = start(&w, &[&a, &c], false).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("control_count")));
    let (status, error) = w
        .app
        .post(
            &format!("/api/agents/{}/variants", w.agent_id),
            Some(&w.token),
            json!({"name": "X", "prompt": "p", "trafficPercent": 140}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("trafficPercent"))
    );

    w.app
        .patch(
            &format!("/api/variants/{b}"),
            Some(&w.token),
            json!({"trafficPercent": 40}),
        )
        .await;
    // Two starts at once: one wins, the other is decided again and names the winner.
    let both = [a.as_str(), b.as_str()];
    let (first, second) = tokio::join!(start(&w, &both, false), start(&w, &both, false));
    let (started, refused) = if first.0 == 201 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(started.0, 201, "{}", started.1);
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (409, Some("test_already_running")),
        "{}",
        refused.1
    );
    assert_eq!(refused.1["error"]["details"]["runningTestId"], started.1["id"]);
    let (status, error) = w
        .app
        .patch(
            &format!("/api/variants/{a}"),
            Some(&w.token),
            json!({"prompt": "Sneaky change"}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("variant_in_running_test"))
    );
    assert_eq!(
        w.app
            .patch(
                &format!("/api/variants/{a}"),
                Some(&w.token),
                json!({"name": "Renamed"})
            )
            .await
            .0,
        200
    );

    // An inactive agent runs no test.
    let (_, other_agent) = w
        .post(
            "/api/agents",
            json!({"name": "Idle", "systemPrompt": "x", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    let other = other_agent["id"].as_str().unwrap();
    w.post(&format!("/api/agents/{other}/deactivate"), json!({})).await;
    let (_, v1) = w
        .post(
            &format!("/api/agents/{other}/variants"),
            json!({"name": "1", "prompt": "p", "isControl": true, "trafficPercent": 50}),
        )
        .await;
    let (_, v2) = w
        .post(
            &format!("/api/agents/{other}/variants"),
            json!({"name": "2", "prompt": "q", "trafficPercent": 50}),
        )
        .await;
    let (status, error) = w
        .post(
            &format!("/api/agents/{other}/ab-tests"),
            json!({"name": "t", "variantIds": [v1["id"], v2["id"]]}),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("agent_inactive")));
    // Variants of another agent cannot join, whatever else is going on.
    let (status, error) = start(&w, &[&a, v2["id"].as_str().unwrap()], false).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("variantIds")),
        "{error}"
    );
}

#[tokio::test]
async fn another_organization_sees_and_changes_nothing() {
    let w = world().await;
    let a = variant(&w, "A", CONTROL_PROMPT, true, 50).await;
    let b = variant(&w, "B", BOLD_PROMPT, false, 50).await;
    let (_, test) = start(&w, &[&a, &b], false).await;
    let id = test["id"].as_str().unwrap();
    w.app.settle().await;
    let (other, _) = w.app.register("intruder@else.com", "Else").await;
    assert_eq!(w.app.get(&format!("/api/ab-tests/{id}"), Some(&other)).await.0, 404);
    assert_eq!(
        w.app
            .get(&format!("/api/agents/{}/variants", w.agent_id), Some(&other))
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .get(&format!("/api/agents/{}/ab-tests", w.agent_id), Some(&other))
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .post(&format!("/api/ab-tests/{id}/pause"), Some(&other), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .post(
                &format!("/api/ab-tests/{id}/declare-winner"),
                Some(&other),
                json!({"variantId": a})
            )
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .patch(&format!("/api/variants/{a}"), Some(&other), json!({"name": "x"}))
            .await
            .0,
        404
    );
    assert_eq!(w.app.delete(&format!("/api/variants/{b}"), Some(&other)).await.0, 404);
    let (_, results) = w.app.get(&format!("/api/ab-tests/{id}"), Some(&w.token)).await;
    assert_eq!(results["status"], "running");
}
