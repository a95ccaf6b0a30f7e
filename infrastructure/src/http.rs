//! What every outbound HTTP client shares: no redirects (a provider's answer
//! never sends our request, with its credentials, somewhere else), a timeout,
//! and a cap on how much of an answer is read.

use application::providers::{Cause, ProviderError};
use std::time::Duration;

/// The most of a provider's answer we read; longer answers are cut off.
pub const ANSWER_LIMIT_BYTES: usize = 1024 * 1024;

/// An HTTP client for one provider.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client with default TLS builds")
}

/// Reads at most `limit` bytes of an answer's body.
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// Why an answer could not be read. Its detail (possibly quoting the
/// provider's answer) is for operators, never for users.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableAnswer {
    #[error("reading the answer failed")]
    Transport(#[source] reqwest::Error),
    #[error("the answer is not the JSON expected")]
    Json(#[source] serde_json::Error),
}

/// Reads an answer's JSON, within [`ANSWER_LIMIT_BYTES`].
pub async fn read_json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, UnreadableAnswer> {
    let body = read_capped(response, ANSWER_LIMIT_BYTES)
        .await
        .map_err(|e| UnreadableAnswer::Transport(e.without_url()))?;
    serde_json::from_slice(&body).map_err(UnreadableAnswer::Json)
}

/// Reads a provider's answer as `T`: one that cannot be read is the provider
/// being unavailable, described to users as `unreadable`, with why kept as the source.
pub async fn read_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    unreadable: &str,
) -> Result<T, ProviderError> {
    read_json(response)
        .await
        .map_err(|error| ProviderError::Unavailable(Cause::with_source(unreadable, error)))
}

/// A request that got no answer (connection, timeout), without its URL,
/// which may carry secrets.
pub fn transport_cause(error: reqwest::Error) -> Cause {
    let error = error.without_url();
    Cause::with_source(error.to_string(), error)
}

/// A request that got no answer: the provider is unavailable.
pub fn no_answer(error: reqwest::Error) -> ProviderError {
    ProviderError::Unavailable(transport_cause(error))
}

/// Sends `request`: no answer at all is the provider being unavailable.
pub async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    request.send().await.map_err(no_answer)
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

/// How much of an error answer is read, and how much of a provider's own
/// message is logged.
pub const ERROR_BODY_BYTES: usize = 64 * 1024;
pub const LOGGED_MESSAGE_CHARS: usize = 300;

/// At most `limit` characters of `text`.
pub fn clipped(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// A provider's words as they are logged (never shown to users): at most
/// [`LOGGED_MESSAGE_CHARS`] of them.
pub fn logged(text: &str) -> String {
    clipped(text, LOGGED_MESSAGE_CHARS)
}

/// The wait an answer's `Retry-After` asks for, if it names one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after)
}

/// A failed answer's body, at most [`ERROR_BODY_BYTES`] of it (nothing when
/// it cannot be read), and that body as JSON (`Null` when it is not JSON).
pub async fn error_body(response: reqwest::Response) -> (Vec<u8>, serde_json::Value) {
    let body = read_capped(response, ERROR_BODY_BYTES).await.unwrap_or_default();
    let parsed = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (body, parsed)
}

/// A provider's failed answer as our error, the provider's words left out:
/// `limit` when the provider says a budget of its is spent (how it says so,
/// and what the wait is, is each provider's own), else 401 is our credentials
/// refused, 404 a resource the provider does not know, any other 4xx a
/// refused request, and anything else the provider being unavailable, as
/// `unavailable` describes it.
pub fn refused(status: u16, limit: Option<ProviderError>, unavailable: impl FnOnce() -> String) -> ProviderError {
    match (limit, status) {
        (Some(limit), _) => limit,
        (None, 401) => ProviderError::Unauthorized,
        (None, 404) => ProviderError::NotFound,
        (None, 400..=499) => ProviderError::Rejected { status },
        (None, _) => ProviderError::Unavailable(unavailable().into()),
    }
}

/// `base` with `segments` appended, each percent-encoded (`api` names the
/// base in the error when it cannot take a path).
pub fn with_segments<'a>(
    mut base: url::Url,
    api: &str,
    segments: impl IntoIterator<Item = &'a str>,
) -> Result<url::Url, ProviderError> {
    base.path_segments_mut()
        .map_err(|()| ProviderError::Unavailable(format!("the {api} cannot take a path").into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(base)
}

/// The hosts a provider may name as an account's API address in a token
/// response (Salesforce's `instance_url`, Pipedrive's `api_domain`): our
/// bearer token goes there, so only to hosts under these domains, over
/// HTTPS (plain HTTP only to a loopback address, for local fakes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHosts(Vec<String>);

impl ApiHosts {
    /// Hosts equal to, or under, one of `domains` (`my.salesforce.com`, `127.0.0.1`).
    pub fn new<S: AsRef<str>>(domains: &[S]) -> Self {
        Self(
            domains
                .iter()
                .map(|d| d.as_ref().trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        )
    }

    /// Parses a comma-separated list, as configuration gives it.
    pub fn parse_list(list: &str) -> Self {
        Self::new(&list.split(',').collect::<Vec<_>>())
    }

    /// The granted API address as a URL, if it is one of ours to call.
    pub fn admit(&self, granted: &str) -> Option<url::Url> {
        let url = url::Url::parse(granted.trim()).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let loopback = match url.host()? {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(_) => false,
        };
        let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        let listed = self
            .0
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
        (secure && listed && url.username().is_empty() && url.password().is_none()).then_some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn answers_are_capped_and_redirects_not_followed() {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::path("/big"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(10_000)))
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:9/elsewhere"))
            .mount(&server)
            .await;
        let http = client(Duration::from_secs(5));
        let big = http.get(format!("{}/big", server.uri())).send().await.unwrap();
        assert_eq!(read_capped(big, 1000).await.unwrap().len(), 1000);
        let moved = http.get(format!("{}/moved", server.uri())).send().await.unwrap();
        assert_eq!(moved.status(), 302, "the redirect is answered, not followed");
    }

    #[test]
    fn only_listed_hosts_over_https_are_admitted_as_api_addresses() {
        let hosts = ApiHosts::parse_list("my.salesforce.com, .pipedrive.com,127.0.0.1");
        assert!(hosts.admit("https://acme.my.salesforce.com").is_some());
        assert!(hosts.admit("https://my.salesforce.com").is_some());
        assert!(hosts.admit("https://acme.pipedrive.com/").is_some());
        assert!(hosts.admit("http://127.0.0.1:8080").is_some());
        assert!(hosts.admit("http://acme.my.salesforce.com").is_none(), "plain HTTP");
        assert!(hosts.admit("https://evilmy.salesforce.com.attacker.io").is_none());
        assert!(hosts.admit("https://notmy.salesforce.com").is_none());
        assert!(hosts.admit("https://user:pw@acme.pipedrive.com").is_none());
        assert!(hosts.admit("not a url").is_none());
    }
}
