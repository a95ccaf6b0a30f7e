//! Sign-up, sign-in, sessions, invitations, password resets and tenancy, over HTTP.

use application::auth::{Session, SessionTokens};
use chrono::{Duration, Utc};
use domain::auth::Role;
use infrastructure::sessions::JwtSessions;
use serde_json::{json, Value};
use uuid::Uuid;
use voxreach_tests::{token_in, TestApp, OWNER_PASSWORD, TEST_JWT_SECRET};

#[tokio::test]
async fn register_then_me_then_login() {
    let app = TestApp::spawn().await;
    let (token, body) = app.register("Ada@Example.com", "Acme").await;
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["user"]["organizationName"], "Acme");
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));

    let (status, me) = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["organizationId"], body["user"]["organizationId"]);

    let (status, login) = app.login("ada@example.com", OWNER_PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["user"]["id"], body["user"]["id"]);
    assert!(login["token"].is_string() && login["expiresAt"].is_string());

    let (status, again) = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "ADA@example.com", "password": "another password", "name": "Imposter", "organizationName": "Other"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(again["error"]["code"], "email_taken");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same_and_repeated_failures_lock() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com", "Bobs").await;
    let (status, wrong) = app.login("bob@example.com", "not the password").await;
    let (status2, unknown) = app.login("nobody@example.com", "not the password").await;
    assert_eq!((status, status2), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");

    for _ in 0..4 {
        app.login("bob@example.com", "still wrong").await;
    }
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "bob@example.com", "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429, "locked even with the right password");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_outrun_the_limit() {
    let app = TestApp::spawn().await;
    app.register("eve@example.com", "Eves").await;
    let guesses = (0..40).map(|n| {
        app.post(
            "/api/auth/login",
            None,
            json!({"email": "eve@example.com", "password": format!("guess number {n}")}),
        )
    });
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, refused),
        (5, 35),
        "only five guesses are ever checked: {statuses:?}"
    );
}

#[tokio::test]
async fn expired_forged_and_missing_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let (token, body) = app.register("carol@example.com", "Carols").await;
    let session = Session {
        user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        organization_id: body["user"]["organizationId"].as_str().unwrap().parse().unwrap(),
        role: Role::Owner,
    };
    let expired = JwtSessions::new(TEST_JWT_SECRET, Duration::hours(1))
        .issue(&session, Utc::now() - Duration::hours(3))
        .unwrap();
    let forged = JwtSessions::new(b"an-attacker-secret-an-attacker-secret!!", Duration::hours(1))
        .issue(&session, Utc::now())
        .unwrap();
    let mut tampered = token.clone();
    tampered.insert(tampered.len() / 2, 'x');
    for bad in [
        expired.token.as_str(),
        forged.token.as_str(),
        tampered.as_str(),
        "garbage",
    ] {
        let (status, body) = app.get("/api/auth/me", Some(bad)).await;
        assert_eq!(status, 401, "{bad}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(app.get("/api/auth/me", None).await.0, 401);
    assert_eq!(app.get("/api/users", None).await.0, 401);
    let basic = app
        .client
        .get(app.url("/api/users"))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    assert_eq!(app.get("/api/auth/me", Some(&token)).await.0, 200);
}

#[tokio::test]
async fn owners_invite_users_who_accept_by_setting_a_password() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Invite Co").await;
    let (status, invited) = invite(&app, &owner, "dev@example.com", "Dev", "admin").await;
    assert_eq!(status, 201, "{invited}");
    assert_eq!(invited["status"], "invited");
    assert_eq!(invited["role"], "admin");

    // Not yet able to sign in: no password.
    let (status, _) = app.login("dev@example.com", OWNER_PASSWORD).await;
    assert_eq!(status, 401);

    let (subject, mail) = app.last_email_to("dev@example.com").await.expect("invitation e-mail");
    assert!(subject.contains("Invite Co"));
    assert!(mail.contains("https://app.voxreach.test/accept-invitation?token="));
    let (status, _) = app
        .confirm_password_reset(&token_in(&mail), "a brand new password")
        .await;
    assert_eq!(status, 204);
    let (status, login) = app.login("dev@example.com", "a brand new password").await;
    assert_eq!(status, 200);
    assert_eq!(login["user"]["role"], "admin");
    let admin = login["token"].as_str().unwrap().to_owned();

    // Admins invite members but not owners; members invite nobody.
    let (status, body) = invite(&app, &admin, "boss@example.com", "Boss", "owner").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("role_not_allowed"))
    );
    let (status, _) = invite(&app, &admin, "m@example.com", "M", "member").await;
    assert_eq!(status, 201);
    let member = accept_invitation(&app, "m@example.com").await;
    let (status, body) = invite(&app, &member, "x@example.com", "X", "member").await;
    // The role matrix answers for members (README: roles).
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("role_not_allowed"))
    );

    // An address already in use, in any organization, cannot be invited.
    let (status, body) = invite(&app, &owner, "DEV@example.com", "Again", "member").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("email_taken")));

    app.settle().await;
    let (status, list) = app.get("/api/users", Some(&owner)).await;
    assert_eq!(status, 200);
    let users = list["users"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = users
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap(),
                u["role"].as_str().unwrap(),
                u["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("owner@example.com", "owner", "active"),
            ("dev@example.com", "admin", "active"),
            ("m@example.com", "member", "active")
        ]
    );
    let (_, page) = app.get("/api/users?limit=1&offset=1", Some(&owner)).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    assert_eq!(page["users"][0]["email"], "dev@example.com");
}

/// Invites `email` to `token`'s organization with `role`; the answer, whatever it is.
async fn invite(app: &TestApp, token: &str, email: &str, name: &str, role: &str) -> (u16, Value) {
    app.post(
        "/api/users",
        Some(token),
        json!({"email": email, "name": name, "role": role}),
    )
    .await
}

async fn accept_invitation(app: &TestApp, email: &str) -> String {
    let (_, mail) = app.last_email_to(email).await.expect("invitation e-mail");
    let (status, _) = app.confirm_password_reset(&token_in(&mail), "member password 1").await;
    assert_eq!(status, 204);
    let (_, login) = app.login(email, "member password 1").await;
    login["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn password_reset_is_single_use_and_reveals_nothing() {
    let app = TestApp::spawn().await;
    app.register("dana@example.com", "Danas").await;

    let (status, unknown) = app.request_password_reset("ghost@example.com").await;
    let (status2, known) = app.request_password_reset("dana@example.com").await;
    assert_eq!((status, status2), (202, 202));
    assert_eq!(unknown, known);
    let (_, mail) = app.last_email_to("dana@example.com").await.expect("reset e-mail");
    assert!(app.last_email_to("ghost@example.com").await.is_none());
    let token = token_in(&mail);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
        .bind(token.split('.').nth(1).unwrap())
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "only the token's digest is stored");

    let (status, body) = app.confirm_password_reset(&token, "short").await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (400, Some("password"))
    );
    let (status, _) = app.confirm_password_reset(&token, "my new password!").await;
    assert_eq!(status, 204);
    let (status, body) = app.confirm_password_reset(&token, "another password!").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_reset_token"))
    );
    let (status, _) = app
        .confirm_password_reset(&format!("{}.forged", Uuid::new_v4()), "another password!")
        .await;
    assert_eq!(status, 400);

    let old = app.login("dana@example.com", OWNER_PASSWORD).await;
    let new = app.login("dana@example.com", "my new password!").await;
    assert_eq!((old.0, new.0), (401, 200));
}

#[tokio::test]
async fn users_of_one_organization_never_see_another() {
    let app = TestApp::spawn().await;
    let (a, _) = app.register("a@alpha.com", "Alpha").await;
    let (b, _) = app.register("b@beta.com", "Beta").await;
    invite(&app, &a, "a2@alpha.com", "A2", "member").await;
    app.settle().await;
    let (_, alpha) = app.get("/api/users", Some(&a)).await;
    let (_, beta) = app.get("/api/users", Some(&b)).await;
    let emails = |v: &Value| -> Vec<String> {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(emails(&alpha), vec!["a@alpha.com", "a2@alpha.com"]);
    assert_eq!(emails(&beta), vec!["b@beta.com"]);
    // The organization comes from the token; a body naming another is ignored.
    let (_, me) = app.get("/api/auth/me", Some(&b)).await;
    assert_eq!(me["organizationName"], "Beta");
}

#[tokio::test]
async fn a_password_reset_ends_every_earlier_session() {
    let app = TestApp::spawn().await;
    let (before, _) = app.register("frank@example.com", "Franks").await;
    assert_eq!(app.get("/api/auth/me", Some(&before)).await.0, 200);
    // Tokens carry whole seconds: the reset happens in a later one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.request_password_reset("frank@example.com").await;
    let (_, mail) = app.last_email_to("frank@example.com").await.expect("a reset e-mail");
    let (status, _) = app
        .confirm_password_reset(&token_in(&mail), "a brand new password")
        .await;
    assert_eq!(status, 204);
    app.settle().await;
    let (status, body) = app.get("/api/auth/me", Some(&before)).await;
    assert_eq!(status, 401, "{body}");
    let (status, login) = app.login("frank@example.com", "a brand new password").await;
    assert_eq!(status, 200);
    let after = login["token"].as_str().unwrap();
    assert_eq!(app.get("/api/auth/me", Some(after)).await.0, 200);
}

#[tokio::test]
async fn sign_ups_and_reset_requests_are_throttled() {
    let app = TestApp::spawn().await;
    let mut statuses = vec![];
    for n in 0..22 {
        let (status, _) = app
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("s{n}@example.com"), "password": "correct horse battery", "name": "S", "organizationName": "S"}),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
    let mut resets = vec![];
    for _ in 0..6 {
        let (status, _) = app.request_password_reset("s1@example.com").await;
        resets.push(status);
    }
    assert_eq!(
        resets,
        [202, 202, 202, 202, 202, 429],
        "five reset mails per address per window"
    );
}
