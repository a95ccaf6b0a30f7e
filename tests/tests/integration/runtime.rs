//! Process roles and exactly-once effects: several processes of each role on
//! one database, a Vapi slower than a lease, and changes racing a creation.
//! "Processes" here are complete service instances (own state, own connection
//! pool) sharing nothing but PostgreSQL, exactly as separate `voxreach serve
//! --role …` processes do.

use api::roles::{spawn_background, Role, SchedulerConfig};
use api::server::{build_state, AppState, Wiring};
use infrastructure::work_queue::WorkerConfig;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use voxreach_tests::{
    assert_every_stored_event_decodes, assert_read_models_equal_rebuilds, test_keys, TestApp, VapiWorld,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Vapi's answer to `POST /call`, after `delay`: a call id derived from our metadata.
struct PlaceCall {
    delay: Duration,
}

impl Respond for PlaceCall {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let ours = body["metadata"]["voxreachCallId"].as_str().unwrap_or("unknown");
        ResponseTemplate::new(201)
            .set_body_json(json!({"id": format!("vapi-{ours}"), "status": "queued"}))
            .set_delay(self.delay)
    }
}

/// One more service process on the test's database, talking to `vapi`.
struct Process {
    state: Arc<AppState>,
    tasks: Vec<JoinHandle<()>>,
}

async fn start_process(app: &TestApp, vapi: &MockServer, roles: &[Role], stop: &watch::Receiver<bool>) -> Process {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with((*app.db.pool.connect_options()).clone())
        .await
        .expect("a pool of its own");
    let mut wiring = Wiring::new(test_keys(), "https://app.voxreach.test".into());
    wiring.vapi_base_url = vapi.uri();
    wiring.vapi_api_key = "key".into();
    let state = Arc::new(build_state(pool, wiring));
    state.runner.prepare().await.expect("projections prepare");
    // Leases far shorter than Vapi's answers: only renewal keeps them.
    let workers = WorkerConfig {
        poll_interval: Duration::from_millis(50),
        batch: 10,
        lease: Duration::from_millis(900),
    };
    let scheduler = SchedulerConfig {
        period_override: Some(Duration::from_millis(500)),
    };
    let tasks = spawn_background(&state, roles, workers, scheduler, stop);
    Process { state, tasks }
}

async fn stop_all(stop: watch::Sender<bool>, processes: Vec<Process>) {
    stop.send(true).expect("processes listen");
    for process in processes {
        for task in process.tasks {
            task.await.expect("a background task ends cleanly");
        }
    }
}

/// The API with a fake Vapi and no background work: tests drive the reactors.
async fn app_with_vapi() -> (TestApp, MockServer) {
    let vapi = MockServer::start().await;
    let uri = vapi.uri();
    let app = TestApp::spawn_with(|w| {
        w.vapi_base_url = uri;
        w.vapi_api_key = "key".into();
    })
    .await;
    (app, vapi)
}

/// Creates an agent through the API; returns its id.
async fn create_agent(app: &TestApp, token: &str, name: &str, prompt: &str) -> String {
    let (status, agent) = app
        .post(
            "/api/agents",
            Some(token),
            json!({"name": name, "systemPrompt": prompt, "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    agent["id"].as_str().expect("agent id").to_owned()
}

async fn assert_synced_to(app: &TestApp, token: &str, agent_id: &str, assistant: &str) {
    let (_, synced) = app.get(&format!("/api/agents/{agent_id}"), Some(token)).await;
    assert_eq!(
        (synced["vapiAssistantId"].as_str(), synced["syncStatus"].as_str()),
        (Some(assistant), Some("synced")),
        "{synced}"
    );
}

/// The JSON bodies Vapi received with `verb`.
async fn bodies_of(vapi: &MockServer, verb: &str) -> Vec<Value> {
    vapi.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb)
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect()
}

async fn count_events(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.db.pool)
        .await
        .expect("count events")
}

/// Waits until `event_type` has been recorded `n` times.
async fn wait_for(app: &TestApp, event_type: &str, n: i64) {
    for _ in 0..600 {
        if count_events(app, event_type).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{event_type} was not recorded {n} times");
}

async fn requests_to(vapi: &MockServer, verb: &str, to: &str) -> usize {
    vapi.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == to)
        .count()
}

async fn request_call(w: &VapiWorld, number_id: &str, customer: &str) -> String {
    let (status, body) = w
        .post(
            "/api/calls",
            json!({"agentId": w.agent_id, "phoneNumberId": number_id, "customerNumber": customer}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("call id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vapi_slower_than_the_lease_never_gets_a_call_twice_from_two_reactor_processes() {
    let w = VapiWorld::start().await;
    let number_id = w.add_number("pn_slow", "+14155550140", false).await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(PlaceCall {
            delay: Duration::from_millis(2500),
        })
        .mount(&w.vapi)
        .await;
    // While Vapi is still answering a POST, its call list does not show the call yet.
    Mock::given(method("GET"))
        .and(path("/call"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&w.vapi)
        .await;
    let mut calls = vec![];
    for customer in ["+14155552671", "+14155552672", "+14155552673"] {
        calls.push(request_call(&w, &number_id, customer).await);
    }
    w.app.settle().await;

    let (stop, stopped) = watch::channel(false);
    let processes = vec![
        start_process(&w.app, &w.vapi, &[Role::Reactors], &stopped).await,
        start_process(&w.app, &w.vapi, &[Role::Reactors], &stopped).await,
    ];
    wait_for(&w.app, "CallPlacedWithVapi", 3).await;
    // Give a second dial every chance to happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_all(stop, processes).await;

    assert_eq!(
        requests_to(&w.vapi, "POST", "/call").await,
        3,
        "each customer dialled once"
    );
    assert_eq!(count_events(&w.app, "CallPlacementStarted").await, 3);
    assert_eq!(count_events(&w.app, "CallPlacementFailed").await, 0);
    w.app.settle().await;
    for call_id in calls {
        let (_, call) = w.app.get(&format!("/api/calls/{call_id}"), Some(&w.token)).await;
        assert_eq!(call["vapiCallId"], format!("vapi-{call_id}"), "{call}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_of_each_role_apply_every_event_once_and_act_once() {
    let w = VapiWorld::start().await;
    let number_id = w.add_number("pn_roles", "+14155550150", false).await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(PlaceCall {
            delay: Duration::from_millis(300),
        })
        .mount(&w.vapi)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_123"})))
        .mount(&w.vapi)
        .await;
    Mock::given(method("GET"))
        .and(path("/phone-number/pn_roles"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "pn_roles", "status": "active"})))
        .mount(&w.vapi)
        .await;
    let assistants_before = requests_to(&w.vapi, "POST", "/assistant").await;
    let (stop, stopped) = watch::channel(false);
    let roles = [Role::Projectors, Role::Reactors, Role::Scheduler];
    let processes = vec![
        start_process(&w.app, &w.vapi, &roles, &stopped).await,
        start_process(&w.app, &w.vapi, &roles, &stopped).await,
    ];

    // The API (this test's own process) takes requests while the others work.
    for n in 0..3 {
        create_agent(&w.app, &w.token, &format!("Agent {n}"), "Sell.").await;
    }
    w.app
        .patch(
            &format!("/api/agents/{}", w.agent_id),
            Some(&w.token),
            json!({"name": "Closer 2"}),
        )
        .await;
    let mut calls = vec![];
    for n in 0..6 {
        calls.push(request_call(&w, &number_id, &format!("+1415555270{n}")).await);
    }
    wait_for(&w.app, "CallPlacedWithVapi", 6).await;
    wait_for(&w.app, "AgentSyncedToVapi", 1 + 3 + 1).await;
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    for (n, call_id) in calls.iter().enumerate() {
        // Vapi echoes the metadata the call was placed with.
        let metadata = json!({"voxreachCallId": call_id, "voxreachOrganizationId": me["organizationId"], "voxreachAgentId": w.agent_id});
        let report = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "call": {"id": format!("vapi-{call_id}"), "type": "outboundPhoneCall", "assistantId": "asst_123",
                     "phoneNumberId": "pn_roles", "metadata": metadata},
            "startedAt": "2026-11-24T12:00:00.000Z", "endedAt": "2026-11-24T12:01:00.000Z",
            "artifact": {"transcript": format!("AI: Hello {n}")}}});
        assert_eq!(w.app.deliver_vapi(&report).await.0, 200);
    }
    // The projector processes catch up by themselves.
    for _ in 0..600 {
        let statuses = processes[0].state.runner.status().await.expect("status");
        if statuses.iter().all(|s| s.lag_events == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop_all(stop, processes).await;

    assert_eq!(requests_to(&w.vapi, "POST", "/call").await, 6, "each call placed once");
    assert_eq!(
        requests_to(&w.vapi, "POST", "/assistant").await - assistants_before,
        3,
        "each new agent created once at Vapi"
    );
    assert_eq!(
        requests_to(&w.vapi, "POST", "/phone-number").await,
        1,
        "the number bought once"
    );
    assert_eq!(count_events(&w.app, "CallEnded").await, 6, "every report recorded");
    let (_, list) = w.app.get("/api/calls?direction=outbound", Some(&w.token)).await;
    assert_eq!(list["calls"].as_array().expect("calls").len(), 6, "{list}");
    assert!(
        list["calls"].as_array().unwrap().iter().all(|c| c["status"] == "ended"),
        "{list}"
    );
    assert_read_models_equal_rebuilds(&w.app).await;
    assert_every_stored_event_decodes(&w.app.db.pool).await;
}

#[tokio::test]
async fn an_agent_changed_while_its_assistant_is_created_ends_with_one_assistant() {
    let (app, vapi) = app_with_vapi().await;
    let (token, _) = app.register("owner@race.test", "Race").await;
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "asst_slow"}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&vapi)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_slow"})))
        .mount(&vapi)
        .await;
    let agent_id = create_agent(&app, &token, "Racer", "First.").await;
    app.settle().await;

    // The sync worker is creating the assistant when the agent is changed.
    let sync = app
        .state
        .workers
        .iter()
        .find(|w| w.reactor() == application::agents::AGENT_SYNC)
        .expect("the agent sync reactor")
        .clone();
    let items = app
        .state
        .work_queue
        .claim(application::agents::AGENT_SYNC, 10, Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(items.len(), 1);
    let item = items[0].clone();
    let creating = tokio::spawn(async move { sync.handle(&item).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = app
        .patch(
            &format!("/api/agents/{agent_id}"),
            Some(&token),
            json!({"systemPrompt": "Second."}),
        )
        .await;
    assert_eq!(status, 200);
    let outcome = creating.await.expect("the handler ends").expect("the sync succeeds");
    app.state
        .work_queue
        .finish(&[(items[0].clone(), outcome)])
        .await
        .expect("finish");
    app.drain_work().await;

    assert_eq!(
        requests_to(&vapi, "POST", "/assistant").await,
        1,
        "one assistant at Vapi"
    );
    let patched = bodies_of(&vapi, "PATCH").await;
    assert_eq!(patched.len(), 1, "the change reaches the assistant that was created");
    assert_eq!(patched[0]["model"]["messages"][0]["content"], "Second.");
    assert_synced_to(&app, &token, &agent_id, "asst_slow").await;
}

#[tokio::test]
async fn an_assistant_created_despite_an_error_answer_is_found_not_created_again() {
    let (app, vapi) = app_with_vapi().await;
    let (token, _) = app.register("owner@ghost.test", "Ghost").await;
    // Vapi created the assistant but the answer was lost (a 504 from a proxy).
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(ResponseTemplate::new(504).set_body_string("Gateway Timeout"))
        .mount(&vapi)
        .await;
    let agent_id = create_agent(&app, &token, "Ghost", "Boo.").await;
    app.drain_work().await;
    let (_, me) = app.get("/api/auth/me", Some(&token)).await;
    let organization_id = me["organizationId"].as_str().expect("organization id").to_owned();
    Mock::given(method("GET"))
        .and(path("/assistant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "asst_someone_else", "metadata": {"voxreachAgentId": "0199aa00-0000-7000-8000-000000000001", "voxreachOrganizationId": organization_id}},
            {"id": "asst_ghost", "metadata": {"voxreachAgentId": agent_id, "voxreachOrganizationId": organization_id}}
        ])))
        .mount(&vapi)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/assistant/asst_ghost"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_ghost"})))
        .expect(1)
        .mount(&vapi)
        .await;
    app.make_work_due().await;
    app.drain_work().await;
    assert_eq!(requests_to(&vapi, "POST", "/assistant").await, 1);
    assert_synced_to(&app, &token, &agent_id, "asst_ghost").await;
}

#[tokio::test]
async fn a_number_bought_despite_an_error_answer_is_found_not_bought_again() {
    let (app, vapi) = app_with_vapi().await;
    let (token, _) = app.register("owner@numbers.test", "Numbers").await;
    Mock::given(method("POST"))
        .and(path("/phone-number"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .mount(&vapi)
        .await;
    let (status, added) = app
        .post(
            "/api/phone-numbers",
            Some(&token),
            json!({"provider": "vapi", "areaCode": "415"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let number_id = added["id"].as_str().expect("number id").to_owned();
    app.drain_work().await;
    let posted = bodies_of(&vapi, "POST").await;
    let name = format!("vx-{}", number_id.replace('-', ""));
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["name"], name.as_str(), "our id names the number at Vapi");
    // Vapi bought it after all: the list shows it under our name.
    Mock::given(method("GET"))
        .and(path("/phone-number"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "pn_other", "name": "vx-0199aa0000007000800000000000beef", "number": "+14155550000", "status": "active"},
            {"id": "pn_ghost", "name": name, "number": "+14155550777", "status": "active"}
        ])))
        .mount(&vapi)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/phone-number/pn_ghost"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "pn_ghost"})))
        .expect(1)
        .mount(&vapi)
        .await;
    app.make_work_due().await;
    app.drain_work().await;
    assert_eq!(requests_to(&vapi, "POST", "/phone-number").await, 1, "bought once");
    let (_, number) = app.get(&format!("/api/phone-numbers/{number_id}"), Some(&token)).await;
    assert_eq!(
        (number["vapiPhoneNumberId"].as_str(), number["syncStatus"].as_str()),
        (Some("pn_ghost"), Some("synced")),
        "{number}"
    );
}
