//! The Vapi client against a fake that answers like Vapi, errors included.

use application::providers::ProviderError;
use application::voice::{AssistantDefinition, VoiceProvider};
use domain::agents::AgentSpec;
use infrastructure::vapi::{VapiClient, VapiConfig};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> VapiClient {
    VapiClient::new(VapiConfig {
        base_url: server.uri(),
        api_key: "sk_test".into(),
        webhook_url: "https://voxreach.example/api/webhooks/vapi".into(),
        webhook_secret: "whsec".into(),
    })
}

fn assistant() -> AssistantDefinition {
    AssistantDefinition {
        organization_id: Uuid::new_v4(),
        agent_id: Uuid::new_v4(),
        spec: AgentSpec {
            name: "A name that is much longer than Vapi's forty character limit".into(),
            ..voxreach_tests::load::agent_spec(0)
        },
        calendar_tools: false,
    }
}

#[tokio::test]
async fn errors_are_classified_as_vapi_answers_them() {
    let server = MockServer::start().await;
    let cases = [
        (ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.", "error": "Unauthorized", "statusCode": 401})), ProviderError::Unauthorized),
        (ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found", "statusCode": 404})), ProviderError::NotFound),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "17").set_body_json(json!({"message": "Too Many Requests"})),
            ProviderError::RateLimited { retry_after: Some(Duration::from_secs(17)) },
        ),
        (ResponseTemplate::new(429), ProviderError::RateLimited { retry_after: None }),
        (
            ResponseTemplate::new(400).set_body_json(json!({"message": ["name must be shorter than or equal to 40 characters"], "error": "Bad Request", "statusCode": 400})),
            ProviderError::Rejected { status: 400 },
        ),
    ];
    for (response, expected) in cases {
        server.reset().await;
        Mock::given(method("PATCH"))
            .and(path("/assistant/a1"))
            .respond_with(response)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).update_assistant("a1", &assistant()).await,
            Err(expected)
        );
    }
    server.reset().await;
    Mock::given(method("DELETE"))
        .and(path("/assistant/a1"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    assert!(
        matches!(client(&server).delete_assistant("a1").await, Err(ProviderError::Unavailable(m)) if m.description().contains("500"))
    );

    // Unreachable: transient.
    let gone = VapiClient::new(VapiConfig {
        base_url: "http://127.0.0.1:9".into(),
        api_key: "k".into(),
        webhook_url: String::new(),
        webhook_secret: String::new(),
    });
    assert!(matches!(
        gone.delete_assistant("a1").await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn requests_carry_the_key_and_respect_vapis_limits() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .and(header("authorization", "Bearer sk_test"))
        .and(wiremock::matchers::body_partial_json(
            json!({"name": "A name that is much longer than Vapi's f"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "asst_1"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(client(&server).create_assistant(&assistant()).await.unwrap(), "asst_1");
    Mock::given(method("GET"))
        .and(path("/phone-number/pn_1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "pn_1", "number": "+14155550123", "status": "active", "provider": "vapi"})),
        )
        .mount(&server)
        .await;
    let number = client(&server).get_phone_number("pn_1").await.unwrap();
    assert_eq!(
        (number.number.as_deref(), number.status.as_ref().map(|s| s.as_str())),
        (Some("+14155550123"), Some("active"))
    );
    assert_eq!(
        infrastructure::http::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        None,
        "past dates mean now"
    );
}

#[tokio::test]
async fn a_providers_answer_is_never_echoed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>internal proxy 10.0.0.7 secret page</html>"))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/assistant/a1"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"message": ["secret internal detail"], "error": "Bad Request", "statusCode": 400}),
            ),
        )
        .mount(&server)
        .await;
    let unavailable = client(&server).create_assistant(&assistant()).await.unwrap_err();
    assert!(matches!(unavailable, ProviderError::Unavailable(_)));
    let rejected = client(&server).update_assistant("a1", &assistant()).await.unwrap_err();
    for error in [unavailable, rejected] {
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
