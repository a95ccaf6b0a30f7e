//! What calendars change elsewhere: the agents' Vapi assistants gain and lose
//! the `check_availability` and `book_appointment` tools, and a calendar that
//! needs a new sign-in is alerted once in Slack. Fake Vapi, Google and Slack.

use infrastructure::config::calendar_providers;
use serde_json::{json, Value};
use voxreach_tests::calendars::{self, google_settings};
use voxreach_tests::{ManualClock, VapiWorld, PUBLIC_URL};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    vapi: VapiWorld,
    google: MockServer,
    slack: MockServer,
}

/// Monday 2026-03-02, 08:00 in New York; the agent "Closer" is synced as `asst_123`.
async fn world() -> World {
    let google = MockServer::start().await;
    let slack = MockServer::start().await;
    let providers = calendar_providers(
        Some(&google_settings(&google.uri())),
        None,
        infrastructure::calendly::DEFAULT_API_BASE,
        PUBLIC_URL,
    )
    .expect("providers");
    let slack_origin = url::Url::parse(&slack.uri()).unwrap().origin();
    let vapi = VapiWorld::start_with(|w| {
        w.clock = ManualClock::at("2026-03-02T13:00:00Z");
        w.calendar_providers = providers;
        w.slack_origins = vec![slack_origin];
    })
    .await;
    Mock::given(method("PATCH"))
        .and(path_regex("^/assistant/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "asst_123"})))
        .mount(&vapi.vapi)
        .await;
    World { vapi, google, slack }
}

impl World {
    async fn connect_google(&self, access: &str, refresh: &str) -> String {
        let app = &self.vapi.app;
        calendars::connect(app, &self.vapi.token, &self.google, "google", access, refresh, 3600).await
    }

    async fn change_calendar(&self, id: &str, settings: Value) {
        let (status, body) = self
            .vapi
            .app
            .patch(
                &format!("/api/integrations/calendars/{id}"),
                Some(&self.vapi.token),
                settings,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// The body of the last assistant creation or update Vapi received for `agent_id`.
    async fn last_assistant(&self, agent_id: &str) -> Value {
        self.vapi
            .vapi
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().starts_with("/assistant") && ["POST", "PATCH"].contains(&r.method.as_str()))
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .rfind(|body| body["metadata"]["voxreachAgentId"] == agent_id)
            .expect("an assistant pushed for the agent")
    }

    async fn slack_posts(&self) -> Vec<Value> {
        self.slack
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// The function tools of an assistant, by name.
fn functions(assistant: &Value) -> Vec<(String, Value)> {
    assistant["model"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|tool| tool["type"] == "function")
        .map(|tool| (tool["function"]["name"].as_str().unwrap().to_owned(), tool.clone()))
        .collect()
}

/// A function's parameters as (name, JSON type), sorted, and its required ones.
fn parameters(function: &Value) -> (Vec<(String, String)>, Value) {
    let schema = &function["function"]["parameters"];
    assert_eq!(schema["type"], "object");
    let mut properties: Vec<(String, String)> = schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, property)| (name.clone(), property["type"].as_str().unwrap().to_owned()))
        .collect();
    properties.sort();
    (properties, schema["required"].clone())
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn connecting_a_calendar_gives_the_assistant_the_tools_and_disconnecting_takes_them_away() {
    let w = world().await;
    let agent = w.vapi.agent_id.clone();
    assert!(functions(&w.last_assistant(&agent).await).is_empty());

    let id = w.connect_google("ya29.a", "1//r").await;
    w.vapi.app.drain_work().await;
    let assistant = w.last_assistant(&agent).await;
    // Tool calls come back to the assistant's server: our webhook.
    assert_eq!(assistant["server"]["url"], format!("{PUBLIC_URL}/api/webhooks/vapi"));
    let tools = functions(&assistant);
    let names: Vec<&str> = tools.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["check_availability", "book_appointment"], "{assistant}");
    let (check, book) = (&tools[0].1, &tools[1].1);
    assert!(check.get("server").is_none() && book.get("server").is_none());
    assert_eq!(
        parameters(check),
        (
            owned(&[("date", "string"), ("duration", "integer"), ("time", "string")]),
            json!(["date", "time"])
        )
    );
    let properties = &check["function"]["parameters"]["properties"];
    for (name, format) in [("date", "YYYY-MM-DD"), ("time", "HH:MM"), ("duration", "minutes")] {
        assert!(
            properties[name]["description"].as_str().unwrap().contains(format),
            "{name}"
        );
    }
    assert_eq!(
        parameters(book),
        (
            owned(&[
                ("addVideoLink", "boolean"),
                ("attendeeEmail", "string"),
                ("attendeeName", "string"),
                ("attendeePhone", "string"),
                ("date", "string"),
                ("duration", "integer"),
                ("time", "string"),
                ("title", "string"),
            ]),
            json!(["date", "time", "attendeeName"])
        )
    );
    let (_, listed) = w
        .vapi
        .app
        .get(&format!("/api/agents/{agent}"), Some(&w.vapi.token))
        .await;
    assert_eq!(listed["syncStatus"], "synced", "{listed}");

    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&w.google)
        .await;
    let (status, _) = w
        .vapi
        .app
        .delete(&format!("/api/integrations/calendars/{id}"), Some(&w.vapi.token))
        .await;
    assert_eq!(status, 204);
    w.vapi.app.drain_work().await;
    assert!(functions(&w.last_assistant(&agent).await).is_empty());
}

#[tokio::test]
async fn an_agent_no_calendar_is_for_gets_no_tools() {
    let w = world().await;
    let closer = w.vapi.agent_id.clone();
    let (status, other) = w
        .vapi
        .post(
            "/api/agents",
            json!({"name": "Other", "systemPrompt": "Book demos.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().unwrap().to_owned();
    // Two calendars, both for the other agent, neither the default.
    let first = w.connect_google("ya29.a", "1//a").await;
    w.change_calendar(&first, json!({"isDefault": false, "agentIds": [other]}))
        .await;
    let second = w.connect_google("ya29.b", "1//b").await;
    w.change_calendar(&second, json!({"isDefault": false, "agentIds": [other]}))
        .await;
    w.vapi.app.drain_work().await;
    assert!(functions(&w.last_assistant(&closer).await).is_empty());
    assert_eq!(functions(&w.last_assistant(&other).await).len(), 2);
}

#[tokio::test]
async fn a_calendar_that_needs_a_new_sign_in_is_alerted_in_slack_once() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path("/services/T1/B1/X"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&w.slack)
        .await;
    let (status, body) = w
        .vapi
        .post(
            "/api/integrations/slack",
            json!({"workspaceName": "Acme", "channel": "#sales", "webhookUrl": format!("{}/services/T1/B1/X", w.slack.uri())}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    w.connect_google("ya29.revoked", "1//gone").await;
    // Google revoked the grant: the 401 is met with a refresh, which Google refuses.
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401, "message": "Invalid Credentials",
            "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials"}]}})),
        )
        .mount(&w.google)
        .await;
    calendars::refuse_the_refresh(&w.google).await;
    let check = json!({"agentId": w.vapi.agent_id, "date": "2026-03-04", "time": "10:00"});
    let (status, answer) = w.vapi.post("/api/calendar/check-availability", check.clone()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("calendar_needs_reauth"))
    );
    w.vapi.app.drain_work().await;

    let posts = w.slack_posts().await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = posts[0].to_string();
    for expected in [
        "Google Calendar",
        "owner@calendar.test",
        "https://app.voxreach.test/settings/integrations",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(
        !text.contains("Token has been expired"),
        "the provider's words stay ours"
    );

    // Failing again alerts nobody again.
    let (status, _) = w.vapi.post("/api/calendar/check-availability", check).await;
    assert_eq!(status, 409);
    w.vapi.app.drain_work().await;
    assert_eq!(w.slack_posts().await.len(), 1);
    // The assistant lost its tools with the calendar's access.
    assert!(functions(&w.last_assistant(&w.vapi.agent_id).await).is_empty());
}
