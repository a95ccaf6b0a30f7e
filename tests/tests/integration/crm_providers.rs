//! The same CRM sync against each provider's fake, through the one port:
//! a call ends → the call record, the transcript note and the deal at the
//! CRM → the sync log. Then what only Salesforce and Pipedrive do: an
//! expired Salesforce session refreshed and the write retried, budgets that
//! pause the sync, settings checked against each account.

use serde_json::json;
use voxreach_tests::crm::{sync_steps, world, Crm, World, PD_PERSON, SF, SF_CONTACT};
use voxreach_tests::OWNER_PASSWORD;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

/// A known caller's qualified call, synced to `crm`: one call record, one
/// note and one deal in the qualified stage, and a sync log that says so.
async fn a_known_callers_call_is_synced_through_the_port(crm: Crm) {
    let w = world().await;
    w.connect_crm(crm).await;
    crm.mount_known_contact(&w).await;
    let [call_record, note, deal] = crm.mount_writes(&w, crm.qualified_stage()).await;
    let call_id = w.call_ends("vapi-port-1", "+14155552671", Some("qualified")).await;
    w.app.drain_work().await;
    // Running the work again writes nothing more (the fakes expect one of each).
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    let contact = crm.contact_id();
    assert_eq!(
        sync_steps(&log, "externalId"),
        [
            ("search", "succeeded", Some(contact.as_str())),
            ("log_call", "succeeded", Some(call_record.as_str())),
            ("add_note", "succeeded", Some(note.as_str())),
            ("create_deal", "succeeded", Some(deal.as_str())),
        ]
    );
    assert!(log.iter().all(|l| l["provider"] == crm.name()), "{log:?}");
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    let integration = &listed["integrations"][0];
    assert_eq!(integration["provider"], crm.name());
    assert_eq!(integration["accountId"], crm.account_id());
    assert_eq!(integration["status"], "active");
    assert!(
        !listed.to_string().contains("-access-1"),
        "tokens never leave the server"
    );
}

#[tokio::test]
async fn hubspot_syncs_a_known_callers_call_through_the_port() {
    a_known_callers_call_is_synced_through_the_port(Crm::HubSpot).await;
}

#[tokio::test]
async fn salesforce_syncs_a_known_callers_call_through_the_port() {
    a_known_callers_call_is_synced_through_the_port(Crm::Salesforce).await;
}

#[tokio::test]
async fn pipedrive_syncs_a_known_callers_call_through_the_port() {
    a_known_callers_call_is_synced_through_the_port(Crm::Pipedrive).await;
}

#[tokio::test]
async fn salesforce_tasks_carry_the_call_and_a_stale_session_is_refreshed_once_then_retried() {
    let w = world().await;
    w.connect_crm(Crm::Salesforce).await;
    Crm::Salesforce.mount_known_contact(&w).await;
    // The session has expired: Salesforce refuses the first Task with INVALID_SESSION_ID.
    refuse_the_next_task(&w, 401, "INVALID_SESSION_ID", "Session expired or invalid").await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=sf-refresh-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "sf-access-2",
            "instance_url": w.hubspot.uri(), "token_type": "Bearer", "issued_at": "1772460000000",
            "id": "https://login.salesforce.com/id/00D5e000000PipEAA/0055e000001AbcdAAA", "signature": "c2ln"})),
        )
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Crm::Salesforce.mount_writes(&w, "Qualification").await;
    let call_id = w.call_ends("vapi-sf-1", "+14155552671", Some("qualified")).await;
    w.app.drain_work().await;
    let requests = w.hubspot.received_requests().await.unwrap();
    let tasks: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == format!("{SF}/sobjects/Task"))
        .collect();
    assert_eq!(tasks.len(), 2, "refused once, then sent again with the fresh session");
    assert_eq!(tasks[0].headers["authorization"], "Bearer sf-access-1");
    assert_eq!(tasks[1].headers["authorization"], "Bearer sf-access-2");
    let task: serde_json::Value = serde_json::from_slice(&tasks[1].body).unwrap();
    assert_eq!(task["WhoId"], SF_CONTACT);
    assert_eq!(task["TaskSubtype"], "Call");
    assert_eq!(task["CallType"], "Inbound");
    assert_eq!(task["CallDurationInSeconds"], 272);
    assert_eq!(task["CallObject"], call_id);
    assert!(task["Description"].as_str().unwrap().contains("I'd like a demo."));
    // The deal's composite files the call's Task under the new Opportunity.
    let composite = requests
        .iter()
        .find(|r| r.url.path() == format!("{SF}/composite"))
        .unwrap();
    let composite: serde_json::Value = serde_json::from_slice(&composite.body).unwrap();
    assert_eq!(
        composite["compositeRequest"][2]["url"],
        format!("{SF}/sobjects/Task/00T5e00000CallAAAQ")
    );
}

#[tokio::test]
async fn salesforce_stops_at_its_budget_share_and_the_integration_shows_throttled() {
    let w = world().await;
    w.connect_crm(Crm::Salesforce).await;
    // Salesforce reports 85% of the day's API requests used: above the 80% share.
    Mock::given(method("GET"))
        .and(path(format!("{SF}/search")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Sforce-Limit-Info", "api-usage=85000/100000")
                .set_body_json(json!({"searchRecords": [{"attributes": {"type": "Contact"}, "Id": SF_CONTACT}]})),
        )
        .mount(&w.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{SF}/sobjects/Task")))
        .respond_with(sf_created("00T5e00000CallAAAQ"))
        .expect(0)
        .mount(&w.hubspot)
        .await;
    w.call_ends("vapi-sf-budget", "+14155552671", None).await;
    w.app.drain_work().await;
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    let integration = &listed["integrations"][0];
    assert_eq!(integration["status"], "throttled", "{listed}");
    assert!(integration["throttledUntil"].is_string());
    let failed = w.sync_log("?status=failed").await;
    assert_eq!(failed[0]["error"], "daily_limit");
}

#[tokio::test]
async fn salesforce_settings_name_only_stages_and_fields_the_org_has() {
    let w = world().await;
    w.connect_crm(Crm::Salesforce).await;
    describe_standard_objects(
        &w,
        json!([{"name": "Status", "updateable": true}, {"name": "Call_Sentiment__c", "updateable": true}]),
    )
    .await;
    assert_settings_refused(
        &w,
        "salesforce",
        json!({"stageMapping": {"qualified": "Qualification",
            "appointment": "Demo Booked", "sale": "Closed Won"}}),
        "stageMapping.appointment",
    )
    .await;
    let (status, body) = patch_settings(
        &w,
        "salesforce",
        json!({"fieldMappings": {"sentiment": "Call_Sentiment__c"},
            "newContactKind": "contact"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fieldMappings"]["sentiment"], "Call_Sentiment__c");
    assert_eq!(body["newContactKind"], "contact");
    assert_eq!(body["stageMapping"]["appointment"], "Needs Analysis");
}

#[tokio::test]
async fn pipedrive_waits_out_a_burst_and_stops_for_the_day_when_its_budget_is_gone() {
    let w = world().await;
    w.connect_crm(Crm::Pipedrive).await;
    // The first search meets the two-second burst limit, the second is answered.
    Mock::given(method("GET"))
        .and(path("/api/v2/persons/search"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-limit", "80")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1")
                .insert_header("x-daily-requests-left", "5000")
                .set_body_json(json!({"success": false, "error": "Request over limit"})),
        )
        .up_to_n_times(1)
        .mount(&w.hubspot)
        .await;
    Crm::Pipedrive.mount_known_contact(&w).await;
    Mock::given(method("POST"))
        .and(path("/api/v2/activities"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1")
                .insert_header("x-daily-requests-left", "0")
                .set_body_json(json!({"success": false, "error": "Daily limit reached"})),
        )
        .mount(&w.hubspot)
        .await;
    let call_id = w.call_ends("vapi-pd-1", "+14155552671", None).await;
    w.app.drain_work().await;
    // The burst's wait has passed.
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    let seen = sync_steps(&log, "error");
    let person = PD_PERSON.to_string();
    assert_eq!(
        seen[0],
        ("create_contact", "failed", Some("rate_limited")),
        "the contact step failed"
    );
    assert_eq!(seen[1].0, "search");
    assert_eq!(log.iter().rev().nth(1).unwrap()["externalId"], person.as_str());
    assert_eq!(seen[2], ("log_call", "failed", Some("daily_limit")));
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["status"], "throttled", "{listed}");
    // Nothing more is sent while throttled.
    let activities =
        |requests: &[wiremock::Request]| requests.iter().filter(|r| r.url.path() == "/api/v2/activities").count();
    let before = activities(&w.hubspot.received_requests().await.unwrap());
    w.app.make_work_due().await;
    w.app.drain_work().await;
    assert_eq!(activities(&w.hubspot.received_requests().await.unwrap()), before);
}

#[tokio::test]
async fn pipedrive_settings_name_only_stages_the_account_has() {
    let w = world().await;
    w.connect_crm(Crm::Pipedrive).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/stages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": [
            {"id": 1, "name": "Qualified", "pipeline_id": 1}, {"id": 2, "name": "Contact made", "pipeline_id": 1},
            {"id": 3, "name": "Demo scheduled", "pipeline_id": 1}], "additional_data": {"next_cursor": null}})),
        )
        .mount(&w.hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/personFields"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": [
            {"key": "name", "name": "Name", "field_type": "varchar"},
            {"key": "label", "name": "Label", "field_type": "enum", "options": [{"id": 5, "label": "not_interested"}]}],
            "additional_data": {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": false}}})),
        )
        .mount(&w.hubspot)
        .await;
    assert_settings_refused(
        &w,
        "pipedrive",
        json!({"stageMapping": {"qualified": "1", "appointment": "9", "sale": "won"}}),
        "stageMapping.appointment",
    )
    .await;
    let (status, body) = patch_settings(
        &w,
        "pipedrive",
        json!({"stageMapping": {"qualified": "1", "appointment": "3", "sale": "won"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `count` calls from Ann Lee end at `ended_at` (the end-of-call report's time).
async fn calls_end(w: &World, prefix: &str, count: usize, ended_at: &str) {
    for n in 0..count {
        let report = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "call": {"id": format!("vapi-{prefix}-{n}"), "type": "inboundPhoneCall",
                "metadata": {"voxreachOrganizationId": w.organization_id}},
            "customer": {"number": "+14155552671"},
            "startedAt": "2026-03-02T12:00:00.000Z", "endedAt": ended_at, "durationSeconds": 180,
            "artifact": {"transcript": "AI: Hi.\nUser: Call me later."},
            "analysis": {"summary": "Call back later."}}});
        let (status, body) = w.app.deliver_vapi(&report).await;
        assert_eq!(status, 200, "{body}");
    }
    w.app.drain_work().await;
}

/// The fake takes one bulk ingest job `job` (created, uploaded, closed; still
/// running at the first look) and notes.
async fn mount_bulk_job(w: &World, job: &str) {
    Mock::given(method("POST"))
        .and(path(format!("{SF}/jobs/ingest")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": job, "state": "Open", "object": "Task",
            "operation": "insert", "contentType": "CSV"})),
        )
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{SF}/jobs/ingest/{job}/batches")))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{SF}/jobs/ingest/{job}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": job, "state": "UploadComplete"})))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{SF}/jobs/ingest/{job}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": job, "state": "InProgress"})))
        .up_to_n_times(1)
        .mount(&w.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{SF}/sobjects/Note")))
        .respond_with(sf_created("0025e00000NoteAAAQ"))
        .mount(&w.hubspot)
        .await;
}

/// The rows the job's CSV upload held (its header first).
async fn uploaded_rows(w: &World) -> (Vec<String>, Vec<csv::StringRecord>) {
    let requests = w.hubspot.received_requests().await.unwrap();
    let upload = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .expect("the CSV was uploaded");
    let mut uploaded = csv::Reader::from_reader(upload.body.as_slice());
    let columns = uploaded.headers().unwrap().iter().map(str::to_owned).collect();
    (columns, uploaded.records().map(Result::unwrap).collect())
}

/// The job completes: its first `refused` rows refused, the others logged as `00T5e0000<n>AAAQ`.
async fn complete_bulk_job(w: &World, job: &str, refused: usize) {
    let (columns, rows) = uploaded_rows(w).await;
    let header = |first: &str| {
        std::iter::once(format!("\"sf__Id\",\"{first}\""))
            .chain(columns.iter().map(|c| format!("\"{c}\"")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let line = |prefix: String, row: &csv::StringRecord| {
        let cells: Vec<String> = row.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect();
        format!("{prefix},{}", cells.join(","))
    };
    let succeeded: Vec<String> = rows[refused..]
        .iter()
        .enumerate()
        .map(|(n, row)| line(format!("\"00T5e0000{n:05}AAAQ\",\"true\""), row))
        .collect();
    let failed: Vec<String> = rows[..refused]
        .iter()
        .map(|row| {
            line(
                "\"\",\"FIELD_INTEGRITY_EXCEPTION:Related To ID: id value of incorrect type:WhatId --\"".into(),
                row,
            )
        })
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("{SF}/jobs/ingest/{job}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": job, "state": "JobComplete",
            "numberRecordsProcessed": rows.len(), "numberRecordsFailed": refused})),
        )
        .mount(&w.hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{SF}/jobs/ingest/{job}/successfulResults/")))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "{}\n{}\n",
            header("sf__Created"),
            succeeded.join("\n")
        )))
        .mount(&w.hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{SF}/jobs/ingest/{job}/failedResults/")))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "{}\n{}\n",
            header("sf__Error"),
            failed.join("\n")
        )))
        .mount(&w.hubspot)
        .await;
}

/// Lets every reactor run `rounds` times, whatever their retry times.
async fn run_work(w: &World, rounds: usize) {
    for _ in 0..rounds {
        w.app.make_work_due().await;
        w.app.drain_work().await;
    }
}

fn task_posts(requests: &[wiremock::Request]) -> usize {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == format!("{SF}/sobjects/Task"))
        .count()
}

#[tokio::test]
async fn a_salesforce_backfill_of_many_calls_goes_in_one_bulk_job_and_refused_rows_go_one_by_one() {
    let w = world().await;
    calls_end(&w, "backfill", 200, "2026-03-02T12:03:00.000Z").await;
    w.clock.set("2026-03-02T15:00:00Z");
    w.connect_crm(Crm::Salesforce).await;
    Crm::Salesforce.mount_known_contact(&w).await;
    const JOB: &str = "7505e00000BackAAA";
    mount_bulk_job(&w, JOB).await;

    // Members of another organization cannot start it; the owner can, once at a time.
    let (stranger, _) = w.app.register("stranger@elsewhere.test", "Elsewhere").await;
    let app = &w.app;
    let start = |token: String| async move {
        app.post(
            "/api/integrations/crm/backfill",
            Some(&token),
            json!({"provider": "salesforce"}),
        )
        .await
    };
    assert_eq!(start(stranger).await.0, 404);
    let (status, body) = start(w.token.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["since"], "2025-12-02T15:00:00Z");
    let (status, body) = start(w.token.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("backfill_running"))
    );

    // Contacts are resolved call by call; then the job is created, uploaded and closed.
    w.app.drain_work().await;
    run_work(&w, 2).await;
    let (_, rows) = uploaded_rows(&w).await;
    assert_eq!(rows.len(), 200, "every call's Task in the one job");
    assert!(rows.iter().all(|row| &row[3] == SF_CONTACT && &row[5] == "Call"));
    assert_eq!(
        task_posts(&w.hubspot.received_requests().await.unwrap()),
        0,
        "no Task went call by call while the job was due"
    );

    // The job completes with the first row refused, which is logged on its own through the REST API.
    complete_bulk_job(&w, JOB, 1).await;
    Mock::given(method("POST"))
        .and(path(format!("{SF}/sobjects/Task")))
        .respond_with(sf_created("00T5e00000RestAAAQ"))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    run_work(&w, 3).await;
    let refused_call = &rows[0][8];
    let log = w.sync_log(&format!("?callId={refused_call}")).await;
    let seen = sync_steps(&log, "externalId");
    assert_eq!(seen[0], ("search", "succeeded", Some(SF_CONTACT)));
    assert_eq!(seen[1], ("log_call", "failed", None));
    assert_eq!(
        log.iter().rev().nth(1).unwrap()["error"],
        "bulk_refused:FIELD_INTEGRITY_EXCEPTION"
    );
    assert_eq!(seen[2], ("log_call", "succeeded", Some("00T5e00000RestAAAQ")));
    let bulk_logged = w.sync_log(&format!("?callId={}", &rows[1][8])).await;
    assert!(bulk_logged
        .iter()
        .any(|l| l["action"] == "log_call" && l["externalId"] == "00T5e000000000AAAQ"));
    assert!(bulk_logged
        .iter()
        .any(|l| l["action"] == "add_note" && l["status"] == "succeeded"));
    // Over: another backfill may start.
    assert_eq!(start(w.token.clone()).await.0, 202);
}

#[tokio::test]
async fn a_bulk_interface_that_refuses_the_job_sends_the_backfill_call_by_call() {
    let w = world().await;
    calls_end(&w, "refused", 200, "2026-03-02T12:03:00.000Z").await;
    w.clock.set("2026-03-02T15:00:00Z");
    w.connect_crm(Crm::Salesforce).await;
    Crm::Salesforce.mount_known_contact(&w).await;
    // This org's user may not use the Bulk API.
    Mock::given(method("POST"))
        .and(path(format!("{SF}/jobs/ingest")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([
            {"errorCode": "API_DISABLED_FOR_ORG", "message": "Bulk API is not enabled for this Organization"}])))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    accept_tasks_and_notes(&w, "00T5e00000RestAAAQ").await;
    let (status, body) = w
        .app
        .post(
            "/api/integrations/crm/backfill",
            Some(&w.token),
            json!({"provider": "salesforce"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    w.app.drain_work().await;
    run_work(&w, 4).await;
    let requests = w.hubspot.received_requests().await.unwrap();
    assert!(
        !requests.iter().any(|r| r.method.as_str() == "PUT"),
        "no upload to a refused job"
    );
    assert_eq!(task_posts(&requests), 200, "every call logged on its own instead");
}

#[tokio::test]
async fn calls_held_while_salesforces_daily_limit_is_spent_catch_up_in_one_bulk_job() {
    let w = world().await;
    w.connect_crm(Crm::Salesforce).await;
    Crm::Salesforce.mount_known_contact(&w).await;
    // The first call's Task meets the org's spent daily limit: the integration is throttled.
    refuse_the_next_task(&w, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").await;
    calls_end(&w, "held", 1, "2026-03-02T13:30:00.000Z").await;
    let (_, listed) = w.app.get("/api/integrations/crm", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["status"], "throttled", "{listed}");
    // More calls end while it is: they are held.
    calls_end(&w, "more", 199, "2026-03-02T13:40:00.000Z").await;
    assert_eq!(task_posts(&w.hubspot.received_requests().await.unwrap()), 1);

    // The next day the budget is back: the 200 held calls go in one bulk job, none call by call.
    const JOB: &str = "7505e00000CatchAAA";
    mount_bulk_job(&w, JOB).await;
    w.clock.set("2026-03-03T13:00:00Z");
    run_work(&w, 3).await;
    let (_, rows) = uploaded_rows(&w).await;
    assert_eq!(rows.len(), 200, "the held calls' Tasks in one job");
    complete_bulk_job(&w, JOB, 0).await;
    run_work(&w, 3).await;
    assert_eq!(
        task_posts(&w.hubspot.received_requests().await.unwrap()),
        1,
        "only the Task the limit refused went call by call"
    );
    // A day on, the owner signs in again to look.
    let (status, signed_in) = w.app.login("owner@crm.test", OWNER_PASSWORD).await;
    assert_eq!(status, 200, "{signed_in}");
    let token = signed_in["token"].as_str().unwrap();
    let (status, page) = w
        .app
        .get("/api/integrations/crm/sync-log?status=succeeded", Some(token))
        .await;
    assert_eq!(status, 200, "{page}");
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm_sync_log WHERE action = 'log_call' AND status = 'succeeded'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    assert_eq!(logged, 200, "every held call is logged once");
    let (_, listed) = w.app.get("/api/integrations/crm", Some(token)).await;
    assert_eq!(listed["integrations"][0]["status"], "active", "{listed}");
}

#[tokio::test]
async fn salesforce_writes_each_call_to_a_custom_object_named_in_settings_and_hubspot_has_none() {
    let w = world().await;
    w.connect_crm(Crm::Salesforce).await;
    describe_standard_objects(&w, json!([{"name": "Status", "updateable": true}])).await;
    describe(
        &w,
        "VoxReach_Call__c",
        json!([{"name": "Caller_Name__c", "updateable": true},
        {"name": "Summary__c", "updateable": true}]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{SF}/sobjects/No_Such__c/describe")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!([
            {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])))
        .mount(&w.hubspot)
        .await;
    let mapping = |object: &str, field: &str| json!({"customRecord": {"object": object, "fields": {"contactName": field, "summary": "Summary__c"}}});
    assert_settings_refused(
        &w,
        "salesforce",
        mapping("No_Such__c", "Caller_Name__c"),
        "customRecord.object",
    )
    .await;
    assert_settings_refused(
        &w,
        "salesforce",
        mapping("VoxReach_Call__c", "Nope__c"),
        "customRecord.fields.contactName",
    )
    .await;
    let (status, body) = patch_settings(&w, "salesforce", mapping("VoxReach_Call__c", "Caller_Name__c")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customRecord"]["object"], "VoxReach_Call__c");

    Crm::Salesforce.mount_known_contact(&w).await;
    accept_tasks_and_notes(&w, "00T5e00000CallAAAQ").await;
    Mock::given(method("POST"))
        .and(path(format!("{SF}/sobjects/VoxReach_Call__c")))
        .and(wiremock::matchers::body_json(
            json!({"Caller_Name__c": "Ann Lee", "Summary__c": "Wants a demo."}),
        ))
        .respond_with(sf_created("a005e00000CallAAQ"))
        .expect(1)
        .mount(&w.hubspot)
        .await;
    let call_id = w.call_ends("vapi-sf-custom", "+14155552671", None).await;
    w.app.drain_work().await;
    let log = w.sync_log(&format!("?callId={call_id}")).await;
    assert!(log
        .iter()
        .any(|l| l["action"] == "create_record" && l["externalId"] == "a005e00000CallAAQ"));

    // HubSpot has no custom records here: the setting is refused by name.
    w.connect_crm(Crm::HubSpot).await;
    assert_settings_refused(
        &w,
        "hubspot",
        mapping("VoxReach_Call__c", "Caller_Name__c"),
        "customRecord",
    )
    .await;
}

/// Salesforce's answer to a created record: its id.
fn sf_created(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"id": id, "success": true}))
}

/// Salesforce refuses the next Task with `status` and `error_code`.
async fn refuse_the_next_task(w: &World, status: u16, error_code: &str, message: &str) {
    Mock::given(method("POST"))
        .and(path(format!("{SF}/sobjects/Task")))
        .respond_with(
            ResponseTemplate::new(status).set_body_json(json!([{"message": message, "errorCode": error_code}])),
        )
        .up_to_n_times(1)
        .mount(&w.hubspot)
        .await;
}

/// Salesforce takes every Task (as `task_id`) and Note.
async fn accept_tasks_and_notes(w: &World, task_id: &str) {
    for (object, id) in [("Task", task_id), ("Note", "0025e00000NoteAAAQ")] {
        Mock::given(method("POST"))
            .and(path(format!("{SF}/sobjects/{object}")))
            .respond_with(sf_created(id))
            .mount(&w.hubspot)
            .await;
    }
}

/// Salesforce describes `object` with `fields`.
async fn describe(w: &World, object: &str, fields: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(format!("{SF}/sobjects/{object}/describe")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": object, "fields": fields})))
        .mount(&w.hubspot)
        .await;
}

/// Salesforce describes Lead with `lead_fields`, Contact with a Title and
/// Opportunity with four stages (Qualification, Needs Analysis, Closed Won among them).
async fn describe_standard_objects(w: &World, lead_fields: serde_json::Value) {
    describe(w, "Lead", lead_fields).await;
    describe(w, "Contact", json!([{"name": "Title", "updateable": true}])).await;
    describe(
        w,
        "Opportunity",
        json!([{"name": "StageName", "updateable": true, "picklistValues": [
        {"value": "Prospecting", "active": true}, {"value": "Qualification", "active": true},
        {"value": "Needs Analysis", "active": true}, {"value": "Closed Won", "active": true}]}]),
    )
    .await;
}

/// Patches `provider`'s sync settings with `settings` as the owner.
async fn patch_settings(w: &World, provider: &str, settings: serde_json::Value) -> (u16, serde_json::Value) {
    w.app
        .patch(
            &format!("/api/integrations/crm?provider={provider}"),
            Some(&w.token),
            settings,
        )
        .await
}

/// Patching `provider`'s sync settings with `settings` is refused, naming `field`.
async fn assert_settings_refused(w: &World, provider: &str, settings: serde_json::Value, field: &str) {
    let (status, body) = patch_settings(w, provider, settings).await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (400, Some(field)),
        "{body}"
    );
}
