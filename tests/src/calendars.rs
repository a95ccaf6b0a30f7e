//! Calendar providers faked with wiremock (OAuth endpoints and API on one
//! server, answering as Google and Microsoft Graph do), and connecting one
//! through our OAuth flow the way a user does.

use crate::TestApp;
use infrastructure::config::OAuthAppSettings;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The settings of a provider faked at `uri`, signing in at `auth_path`.
fn provider_settings(uri: &str, auth_path: &str) -> OAuthAppSettings {
    OAuthAppSettings {
        client_id: "client-1".into(),
        client_secret: "secret-1".into(),
        auth_url: format!("{uri}{auth_path}"),
        token_url: format!("{uri}/token"),
        api_base: uri.to_owned(),
        revoke_url: Some(format!("{uri}/revoke")),
    }
}

/// Google's sign-in, faked at `uri`.
pub fn google_settings(uri: &str) -> OAuthAppSettings {
    provider_settings(uri, "/o/oauth2/v2/auth")
}

/// Microsoft's sign-in, faked at `uri`.
pub fn microsoft_settings(uri: &str) -> OAuthAppSettings {
    provider_settings(uri, "/common/oauth2/v2.0/authorize")
}

/// A token endpoint's answer: an access token, maybe a refresh token, and its lifetime in seconds.
pub fn token_answer(access: &str, refresh: Option<&str>, expires_in: i64) -> ResponseTemplate {
    let mut body = json!({"access_token": access, "expires_in": expires_in, "token_type": "Bearer",
        "scope": "https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy"});
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

/// The provider at `server` refuses a refresh (the grant was revoked); exactly one is expected.
pub async fn refuse_the_refresh(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
        .expect(1)
        .mount(server)
        .await;
}

/// Disconnects calendar integration `id` as the holder of `token`.
pub async fn disconnect(app: &TestApp, token: &str, id: &str) {
    let (status, body) = app
        .delete(&format!("/api/integrations/calendars/{id}"), Some(token))
        .await;
    assert_eq!(status, 204, "{body}");
}

/// The value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Starts connecting `provider` as the holder of `token`: the authorization
/// URL's `state`, and the URL.
pub async fn start_connect(app: &TestApp, token: &str, provider: &str) -> (String, String) {
    let (status, body) = app
        .post(
            "/api/integrations/calendars/connect",
            Some(token),
            json!({"provider": provider}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["authorizationUrl"].as_str().unwrap().to_owned();
    (query_param(&url, "state").expect("a state"), url)
}

/// Connects `provider` (`google` or `outlook`, faked by `server`) as the holder
/// of `token`, with tokens that expire in `expires_in` seconds; the account is
/// `owner@calendar.test` at Google, `owner@contoso.test` at Microsoft. Returns
/// the integration id, once the read models hold it.
pub async fn connect(
    app: &TestApp,
    token: &str,
    server: &MockServer,
    provider: &str,
    access: &str,
    refresh: &str,
    expires_in: i64,
) -> String {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(token_answer(access, Some(refresh), expires_in))
        .up_to_n_times(1)
        .mount(server)
        .await;
    if provider == "google" {
        Mock::given(method("GET"))
            .and(path("/calendar/v3/calendars/primary"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"kind": "calendar#calendar", "id": "owner@calendar.test", "timeZone": "America/New_York"}),
            ))
            .mount(server)
            .await;
    } else {
        Mock::given(method("GET"))
            .and(path("/me"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"mail": "owner@contoso.test", "userPrincipalName": "owner@contoso.test"})),
            )
            .mount(server)
            .await;
    }
    let (state, _) = start_connect(app, token, provider).await;
    let (status, body) = app
        .get(
            &format!("/api/integrations/calendars/callback?code=code-1&state={state}&format=json"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], true, "{body}");
    app.settle().await;
    body["integrationId"].as_str().unwrap().to_owned()
}
