//! The OAuth 2.0 authorization-code flow with PKCE against one provider
//! (Google, Microsoft, HubSpot, Salesforce, Pipedrive), through the `oauth2` crate.

use application::oauth::{AuthorizationStart, OAuthClient, OAuthError, Tokens};
use application::providers::Cause;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest provider text (an error description) written to the log.
const LOGGED_TEXT_CHARS: usize = 300;

/// One provider's OAuth application as registered with it.
#[derive(Clone)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    /// Our callback, exactly as registered with the provider.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// Provider-specific authorization parameters, e.g. Google's `access_type=offline`.
    pub extra_authorize_params: Vec<(String, String)>,
    /// How the token endpoint wants our client credentials.
    pub client_authentication: ClientAuthentication,
}

/// Our app's credentials at a provider, and our callback as registered with it.
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_url: String,
}

impl AppCredentials {
    pub fn new(client_id: &str, client_secret: &str, redirect_url: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_url: redirect_url.to_owned(),
        }
    }
}

/// Where the client id and secret go in token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// Form fields (Google, Microsoft, HubSpot, Salesforce).
    RequestBody,
    /// HTTP Basic (Pipedrive).
    BasicHeader,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("client_id", &self.client_id)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("extra_authorize_params", &self.extra_authorize_params)
            .field("client_authentication", &self.client_authentication)
            .finish_non_exhaustive()
    }
}

/// A setting of [`OAuthSettings`] that is not a URL.
#[derive(Debug, thiserror::Error)]
#[error("the OAuth {setting} is not a valid URL: {source}")]
pub struct InvalidOAuthUrl {
    pub setting: &'static str,
    pub source: url::ParseError,
}

/// What some providers add to a token response: the address their API serves
/// this grant at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ApiAddressFields {
    /// Salesforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_url: Option<String>,
    /// Pipedrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_domain: Option<String>,
}

impl ExtraTokenFields for ApiAddressFields {}

type ProviderTokenResponse = StandardTokenResponse<ApiAddressFields, BasicTokenType>;

type UnconfiguredClient = oauth2::Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// The `oauth2` client with its authorization and token endpoints set.
type ConfiguredClient = oauth2::Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

type TokenRequestError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;

/// [`OAuthClient`] for one provider: client credentials where it wants them,
/// PKCE S256, and a random `state`.
pub struct OAuth2Client {
    client: ConfiguredClient,
    scopes: Vec<String>,
    extra_authorize_params: Vec<(String, String)>,
    http: reqwest::Client,
}

impl OAuth2Client {
    pub fn new(settings: OAuthSettings) -> Result<Self, InvalidOAuthUrl> {
        let invalid = |setting| move |source| InvalidOAuthUrl { setting, source };
        let client = UnconfiguredClient::new(ClientId::new(settings.client_id))
            .set_client_secret(ClientSecret::new(settings.client_secret))
            .set_auth_uri(AuthUrl::new(settings.auth_url).map_err(invalid("authorization URL"))?)
            .set_token_uri(TokenUrl::new(settings.token_url).map_err(invalid("token URL"))?)
            .set_redirect_uri(RedirectUrl::new(settings.redirect_url).map_err(invalid("redirect URL"))?)
            .set_auth_type(match settings.client_authentication {
                ClientAuthentication::RequestBody => AuthType::RequestBody,
                ClientAuthentication::BasicHeader => AuthType::BasicAuth,
            });
        Ok(Self {
            client,
            scopes: settings.scopes,
            extra_authorize_params: settings.extra_authorize_params,
            // No redirects: a token endpoint's redirect must not carry our secret elsewhere.
            http: crate::http::client(Duration::from_secs(20)),
        })
    }
}

#[async_trait]
impl OAuthClient for OAuth2Client {
    fn start(&self) -> AuthorizationStart {
        let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(pkce_challenge);
        for (name, value) in &self.extra_authorize_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, state) = request.url();
        AuthorizationStart {
            url: url.to_string(),
            state: state.into_secret(),
            pkce_verifier: pkce_verifier.into_secret(),
        }
    }

    async fn exchange(&self, code: &str, pkce_verifier: &str, now: DateTime<Utc>) -> Result<Tokens, OAuthError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&response, now))
    }

    async fn refresh(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<Tokens, OAuthError> {
        let refresh_token = RefreshToken::new(refresh_token.to_owned());
        let response = self
            .client
            .exchange_refresh_token(&refresh_token)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&response, now))
    }
}

fn tokens(response: &ProviderTokenResponse, now: DateTime<Utc>) -> Tokens {
    let extra = response.extra_fields();
    Tokens {
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|token| token.secret().clone()),
        expires_at: response
            .expires_in()
            .and_then(|lifetime| chrono::Duration::from_std(lifetime).ok())
            .map(|lifetime| now + lifetime),
        api_base: extra.instance_url.clone().or_else(|| extra.api_domain.clone()),
    }
}

/// Error codes of RFC 6749 §4.1.2.1 that some token endpoints answer too
/// (Microsoft): the provider is down, not refusing us.
const UNAVAILABLE_CODES: &[&str] = &["server_error", "temporarily_unavailable"];

/// A failed token request as our error: the provider's OAuth error code,
/// never its response body.
fn token_error(error: TokenRequestError) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let code = response.error().as_ref();
            let description: String = response
                .error_description()
                .map(|text| text.chars().take(LOGGED_TEXT_CHARS).collect())
                .unwrap_or_default();
            tracing::warn!(%code, %description, "the token endpoint refused the request");
            match response.error() {
                BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant("invalid_grant".into()),
                _ if UNAVAILABLE_CODES.contains(&code) => OAuthError::Unavailable(code.into()),
                _ => OAuthError::Rejected(error_code(code)),
            }
        }
        RequestTokenError::Request(HttpClientError::Reqwest(error)) => {
            OAuthError::Unavailable(crate::http::transport_cause(*error))
        }
        RequestTokenError::Request(_) => OAuthError::Unavailable("the token request failed".into()),
        RequestTokenError::Parse(error, _body) => {
            OAuthError::Unavailable(Cause::with_source("unreadable token response", error))
        }
        RequestTokenError::Other(reason) => {
            let reason: String = reason.chars().take(LOGGED_TEXT_CHARS).collect();
            tracing::warn!(%reason, "the token request failed");
            OAuthError::Unavailable("unexpected token response".into())
        }
    }
}

/// An error code as RFC 6749 shapes them (`invalid_client`); anything else a
/// provider invents is not passed on.
fn error_code(code: &str) -> String {
    let well_formed = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if well_formed {
        code.to_owned()
    } else {
        "unrecognized_error".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::collections::HashMap;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn now() -> DateTime<Utc> {
        "2026-03-04T12:00:00Z".parse().unwrap()
    }

    fn settings(server: &MockServer) -> OAuthSettings {
        OAuthSettings {
            client_id: "client-1".into(),
            client_secret: "s3cret-value".into(),
            auth_url: "https://accounts.example.com/o/oauth2/v2/auth".into(),
            token_url: format!("{}/token", server.uri()),
            redirect_url: "https://app.voxreach.io/api/calendar/callback".into(),
            scopes: vec!["scope.one".into(), "scope.two".into()],
            extra_authorize_params: vec![
                ("access_type".into(), "offline".into()),
                ("prompt".into(), "consent".into()),
            ],
            client_authentication: ClientAuthentication::RequestBody,
        }
    }

    async fn sent_form(server: &MockServer) -> HashMap<String, String> {
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        url::form_urlencoded::parse(&requests[0].body).into_owned().collect()
    }

    #[tokio::test]
    async fn start_builds_an_authorization_url_with_pkce_state_scopes_and_extra_params() {
        let server = MockServer::start().await;
        let client = OAuth2Client::new(settings(&server)).unwrap();
        let start = client.start();
        let url = url::Url::parse(&start.url).unwrap();
        assert!(start.url.starts_with("https://accounts.example.com/o/oauth2/v2/auth?"));
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "client-1");
        assert_eq!(query["redirect_uri"], "https://app.voxreach.io/api/calendar/callback");
        assert_eq!(query["scope"], "scope.one scope.two");
        assert_eq!(query["state"], start.state);
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["access_type"], "offline");
        assert_eq!(query["prompt"], "consent");
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(start.pkce_verifier.clone()));
        assert_eq!(&query["code_challenge"], challenge.as_str());
        assert!(!query.contains_key("client_secret"));
        assert_ne!(client.start().state, start.state, "every start has its own state");
    }

    #[tokio::test]
    async fn exchange_sends_the_code_verifier_and_client_credentials_in_the_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "ya29.access",
                "expires_in": 3599,
                "refresh_token": "1//refresh",
                "scope": "scope.one scope.two",
                "token_type": "Bearer"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = OAuth2Client::new(settings(&server)).unwrap();
        let tokens = client.exchange("4/code", "verifier-123", now()).await.unwrap();
        assert_eq!(
            tokens,
            Tokens {
                access_token: "ya29.access".into(),
                refresh_token: Some("1//refresh".into()),
                expires_at: Some(now() + chrono::Duration::seconds(3599)),
                api_base: None,
            }
        );
        let form = sent_form(&server).await;
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "4/code");
        assert_eq!(form["code_verifier"], "verifier-123");
        assert_eq!(form["client_id"], "client-1");
        assert_eq!(form["client_secret"], "s3cret-value");
        assert_eq!(form["redirect_uri"], "https://app.voxreach.io/api/calendar/callback");
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get("authorization").is_none(), "no Basic auth");
    }

    #[tokio::test]
    async fn refresh_sends_the_refresh_token_and_keeps_an_absent_one_absent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "ya29.fresh",
                "expires_in": 3600,
                "token_type": "Bearer"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = OAuth2Client::new(settings(&server)).unwrap();
        let tokens = client.refresh("1//refresh", now()).await.unwrap();
        assert_eq!(tokens.access_token, "ya29.fresh");
        assert_eq!(tokens.refresh_token, None);
        assert_eq!(tokens.expires_at, Some(now() + chrono::Duration::seconds(3600)));
        let form = sent_form(&server).await;
        assert_eq!(form["refresh_token"], "1//refresh");
        assert_eq!(form["client_id"], "client-1");
        assert_eq!(form["client_secret"], "s3cret-value");
    }

    #[tokio::test]
    async fn invalid_grant_is_told_apart_from_other_refusals() {
        let server = MockServer::start().await;
        Mock::given(body_string_contains("code=used"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_grant",
                "error_description": "Bad Request"
            })))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("code=other"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "The OAuth client was not found."
            })))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("code=odd"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "Something <b>odd</b> happened"
            })))
            .mount(&server)
            .await;
        let client = OAuth2Client::new(settings(&server)).unwrap();
        assert_eq!(
            client.exchange("used", "v", now()).await,
            Err(OAuthError::InvalidGrant("invalid_grant".into()))
        );
        assert_eq!(
            client.exchange("other", "v", now()).await,
            Err(OAuthError::Rejected("invalid_client".into()))
        );
        assert_eq!(
            client.exchange("odd", "v", now()).await,
            Err(OAuthError::Rejected("unrecognized_error".into()))
        );
    }

    #[tokio::test]
    async fn a_salesforce_grant_keeps_its_instance_url_and_has_no_expiry() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "00Dxx!AQ0AQ",
                "refresh_token": "5Aep861",
                "instance_url": "https://acme.my.salesforce.com",
                "id": "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6A",
                "token_type": "Bearer",
                "issued_at": "1764158400000",
                "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ="
            })))
            .mount(&server)
            .await;
        let tokens = OAuth2Client::new(settings(&server))
            .unwrap()
            .exchange("code", "v", now())
            .await
            .unwrap();
        assert_eq!(tokens.api_base.as_deref(), Some("https://acme.my.salesforce.com"));
        assert_eq!(
            tokens.expires_at, None,
            "Salesforce sessions are refreshed when refused"
        );
    }

    #[tokio::test]
    async fn basic_client_authentication_sends_the_credentials_in_the_header_and_reads_api_domain() {
        let server = MockServer::start().await;
        let credentials = base64::engine::general_purpose::STANDARD.encode("client-1:s3cret-value");
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("authorization", format!("Basic {credentials}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "v1u:AQIBAHj",
                "refresh_token": "10201:rt",
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "deals:full,contacts:full",
                "api_domain": "https://acme.pipedrive.com"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = OAuth2Client::new(OAuthSettings {
            client_authentication: ClientAuthentication::BasicHeader,
            ..settings(&server)
        })
        .unwrap();
        let tokens = client.refresh("10201:rt", now()).await.unwrap();
        assert_eq!(tokens.api_base.as_deref(), Some("https://acme.pipedrive.com"));
        assert_eq!(tokens.expires_at, Some(now() + chrono::Duration::seconds(3599)));
        let form = sent_form(&server).await;
        assert!(
            !form.contains_key("client_secret"),
            "the secret goes in the header only"
        );
    }

    #[tokio::test]
    async fn an_unreadable_or_failing_token_endpoint_is_unavailable_without_its_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>upstream secret-ish page</html>"))
            .mount(&server)
            .await;
        let client = OAuth2Client::new(settings(&server)).unwrap();
        let error = client.refresh("r", now()).await.unwrap_err();
        assert_eq!(error, OAuthError::Unavailable("unreadable token response".into()));
        assert!(!error.to_string().contains("upstream"));
    }

    #[test]
    fn settings_never_show_the_client_secret() {
        let settings = OAuthSettings {
            client_id: "client-1".into(),
            client_secret: "s3cret-value".into(),
            auth_url: "https://a.example.com".into(),
            token_url: "https://t.example.com".into(),
            redirect_url: "https://r.example.com".into(),
            scopes: vec![],
            extra_authorize_params: vec![],
            client_authentication: ClientAuthentication::RequestBody,
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("client-1"));
        assert!(!shown.contains("s3cret"));
        let error = OAuth2Client::new(OAuthSettings {
            token_url: "not a url".into(),
            ..settings
        })
        .err()
        .unwrap();
        assert_eq!(error.setting, "token URL");
    }
}
