//! The OpenAPI document lists exactly the routes the server answers, with the right auth.

use api::openapi::OPERATIONS;
use voxreach_tests::TestApp;

#[tokio::test]
async fn every_documented_operation_exists_with_the_documented_auth() {
    let app = TestApp::spawn().await;
    for operation in OPERATIONS {
        let path = operation.path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let method = reqwest::Method::from_bytes(operation.method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let (status, body) = voxreach_tests::into_parts(response).await;
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let label = format!("{} {}", operation.method, operation.path);
        assert_ne!(status, 405, "{label}: method not routed");
        assert!(
            !(status == 404 && body["error"]["message"] == "no such route"),
            "{label}: path not routed"
        );
        if operation.authenticated {
            assert_eq!((status, code), (401, "unauthorized"), "{label}: must require a token");
        } else {
            assert_ne!(code, "unauthorized", "{label}: must be public");
        }
    }
    let (status, document) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, OPERATIONS.len());
    // Every schema a request refers to exists.
    for operation in OPERATIONS.iter().filter_map(|o| o.body) {
        assert!(document["components"]["schemas"][operation].is_object(), "{operation}");
    }
}
