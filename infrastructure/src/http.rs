//! What every outbound HTTP client shares: no redirects (a provider's answer
//! never sends our request, with its credentials, somewhere else), a timeout,
//! and a cap on how much of an answer is read.

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

/// Reads an answer's JSON, within [`ANSWER_LIMIT_BYTES`].
pub async fn read_json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, String> {
    let body = read_capped(response, ANSWER_LIMIT_BYTES)
        .await
        .map_err(|e| e.without_url().to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
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
}
