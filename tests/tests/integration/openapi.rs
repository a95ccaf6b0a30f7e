//! The OpenAPI document lists exactly the routes the server answers, with the right auth.

use api::openapi::operations;
use voxreach_tests::TestApp;

#[tokio::test]
async fn every_documented_operation_exists_with_the_documented_auth() {
    let app = TestApp::spawn().await;
    let operations = operations();
    for operation in &operations {
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
    assert_eq!(documented, operations.len());
    // Every schema a request refers to exists.
    for schema in operations.iter().filter_map(|o| o.body.as_deref()) {
        assert!(document["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn creates_link_to_the_operations_on_what_they_created() {
    let app = TestApp::spawn().await;
    let (_, document) = app.get("/api/openapi.json", None).await;
    let mut operations = std::collections::HashMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(
                operations.insert(id.clone(), (method.clone(), path.clone())).is_none(),
                "{id} is not unique"
            );
        }
    }
    let success = |method: &str, path: &str| {
        let responses = document["paths"][path][method]["responses"].as_object().unwrap();
        let (_, answer) = responses.iter().find(|(status, _)| status.starts_with('2')).unwrap();
        answer.clone()
    };
    let links = |method: &str, path: &str| success(method, path)["links"].clone();
    for (method, path) in [
        ("post", "/api/agents"),
        ("post", "/api/agents/{id}/variants"),
        ("post", "/api/calls"),
        ("post", "/api/integrations/slack"),
    ] {
        let links = links(method, path);
        assert!(!links.as_object().unwrap().is_empty(), "{method} {path} links nowhere");
        for link in links.as_object().unwrap().values() {
            let (_, target) = &operations[link["operationId"].as_str().unwrap()];
            if target.contains("{id}") {
                assert_eq!(link["parameters"]["id"], "$response.body#/id");
            } else {
                // The id goes in the target's body instead (`integrationId` of a Slack test).
                let body = link["requestBody"].as_object().expect("an id in the path or the body");
                assert!(body.values().any(|v| v == "$response.body#/id"), "{target}");
            }
        }
    }
    assert_eq!(
        links("post", "/api/agents/{id}/variants")["get_api_variants_id"],
        serde_json::Value::Null,
        "only documented operations are linked"
    );
    assert!(links("post", "/api/agents/{id}/variants")["patch_api_variants_id"].is_object());

    // Following a link with the created id reaches the created resource.
    let (token, _) = app.register("links@example.com", "Links").await;
    let agent = serde_json::json!({"name": "Ava", "systemPrompt": "Be helpful.",
        "voice": {"provider": "openai", "voiceId": "nova"}});
    let (status, created) = app.post("/api/agents", Some(&token), agent).await;
    assert_eq!(status, 201, "{created}");
    voxreach_tests::assert_answers_as_documented("AgentView", &created);
    assert_eq!(
        success("post", "/api/agents")["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/AgentView"
    );
    app.settle().await;
    let link = &links("post", "/api/agents")["get_api_agents_id"];
    let (_, target) = &operations[link["operationId"].as_str().unwrap()];
    let (status, fetched) = app
        .get(&target.replace("{id}", created["id"].as_str().unwrap()), Some(&token))
        .await;
    assert_eq!((status, &fetched["id"]), (200, &created["id"]));
    let (_, listed) = app.get("/api/agents", Some(&token)).await;
    voxreach_tests::assert_answers_as_documented("AgentList", &listed);
}
