//! Outbound campaigns over HTTP: settings, the status machine, archiving,
//! tenancy; and the organization's do-not-call list.

use serde_json::{json, Value};
use voxreach_tests::{VapiWorld, OWNER_PASSWORD};

async fn world_with_number() -> (VapiWorld, String) {
    let w = VapiWorld::start().await;
    let number = w.add_number("pn_campaign", "+14155550170", false).await;
    (w, number)
}

fn campaign(w: &VapiWorld, number: &str) -> Value {
    json!({"agentId": w.agent_id, "name": "Spring outreach", "defaultPhoneNumberId": number})
}

async fn create(w: &VapiWorld, body: Value) -> Value {
    let (status, created) = w.post("/api/campaigns", body).await;
    assert_eq!(status, 201, "{created}");
    w.app.settle().await;
    created
}

async fn steer(w: &VapiWorld, id: &str, action: &str) -> (u16, Value) {
    w.post(&format!("/api/campaigns/{id}/{action}"), json!({})).await
}

#[tokio::test]
async fn a_campaign_moves_through_its_status_machine_and_keeps_its_settings_in_step() {
    let (w, number) = world_with_number().await;
    let created = create(&w, campaign(&w, &number)).await;
    voxreach_tests::assert_answers_as_documented("CampaignView", &created);
    // SPEC's defaults.
    assert_eq!(created["status"], "draft");
    assert_eq!(created["maxRetries"], 3);
    assert_eq!(created["callerIdStrategy"], "fixed");
    assert_eq!(created["timezone"], "America/New_York");
    assert_eq!(created["maxConcurrentCalls"], 5);
    assert_eq!(
        (&created["callingWindow"]["start"], &created["callingWindow"]["end"]),
        (&json!("08:00"), &json!("21:00"))
    );
    assert_eq!(created["callingWindow"]["skipUsFederalHolidays"], false);
    assert_eq!(
        (&created["totalContacts"], &created["callsMade"]),
        (&json!(0), &json!(0))
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/campaigns/{id}");

    let (status, fetched) = w.app.get(&path, Some(&w.token)).await;
    assert_eq!((status, &fetched["name"]), (200, &created["name"]));
    let (_, listed) = w.app.get("/api/campaigns", Some(&w.token)).await;
    voxreach_tests::assert_answers_as_documented("CampaignList", &listed);
    assert_eq!(listed["campaigns"][0]["id"], json!(id));

    // Draft: everything may change; null clears an optional setting.
    let (status, changed) = w
        .app
        .patch(
            &path,
            Some(&w.token),
            json!({"maxRetries": 5, "description": "Leads from March"}),
        )
        .await;
    assert_eq!(
        (status, &changed["maxRetries"], &changed["description"]),
        (200, &json!(5), &json!("Leads from March"))
    );
    let (_, changed) = w.app.patch(&path, Some(&w.token), json!({"description": null})).await;
    assert_eq!(changed["description"], Value::Null);

    let (status, started) = steer(&w, &id, "start").await;
    assert_eq!((status, &started["status"]), (200, &json!("running")), "{started}");
    // Running: only the name and the description.
    let (status, refused) = w.app.patch(&path, Some(&w.token), json!({"maxRetries": 2})).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("campaign_not_editable")),
        "{refused}"
    );
    let (status, renamed) = w
        .app
        .patch(&path, Some(&w.token), json!({"name": "Spring, renamed"}))
        .await;
    assert_eq!((status, &renamed["name"]), (200, &json!("Spring, renamed")));
    for action in ["start", "resume"] {
        let (status, refused) = steer(&w, &id, action).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("campaign_invalid_transition")),
            "{action}"
        );
    }
    let (status, refused) = w.app.delete(&path, Some(&w.token)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("campaign_running"))
    );

    let (status, paused) = steer(&w, &id, "pause").await;
    assert_eq!((status, &paused["status"]), (200, &json!("paused")));
    let (status, _) = w.app.patch(&path, Some(&w.token), json!({"maxRetries": 2})).await;
    assert_eq!(status, 200, "paused campaigns take any setting");
    let (status, resumed) = steer(&w, &id, "resume").await;
    assert_eq!((status, &resumed["status"]), (200, &json!("running")));
    let (status, cancelled) = steer(&w, &id, "cancel").await;
    assert_eq!((status, &cancelled["status"]), (200, &json!("cancelled")));
    for action in ["pause", "resume", "start", "cancel"] {
        assert_eq!(steer(&w, &id, action).await.0, 409, "{action} after cancel");
    }
    let (status, _) = w.app.patch(&path, Some(&w.token), json!({"name": "Too late"})).await;
    assert_eq!(status, 409);
    w.app.settle().await;
    let (_, fetched) = w.app.get(&path, Some(&w.token)).await;
    assert_eq!(
        (&fetched["status"], &fetched["maxRetries"]),
        (&json!("cancelled"), &json!(2))
    );

    // Archiving hides it; its history stays in the log.
    assert_eq!(w.app.delete(&path, Some(&w.token)).await.0, 204);
    w.app.settle().await;
    assert_eq!(w.app.get(&path, Some(&w.token)).await.0, 404);
    let (_, listed) = w.app.get("/api/campaigns", Some(&w.token)).await;
    assert!(listed["campaigns"].as_array().unwrap().is_empty());
    assert_eq!(steer(&w, &id, "start").await.0, 404);

    // A start time in the future schedules it.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let mut later = campaign(&w, &number);
    later["scheduledStart"] = json!(tomorrow);
    let later = create(&w, later).await;
    let (status, scheduled) = steer(&w, later["id"].as_str().unwrap(), "start").await;
    assert_eq!((status, &scheduled["status"]), (200, &json!("scheduled")));
    w.app.settle().await;
    let (_, listed) = w
        .app
        .get("/api/campaigns?status=scheduled&limit=10", Some(&w.token))
        .await;
    assert_eq!(listed["campaigns"].as_array().unwrap().len(), 1);
    let (_, listed) = w.app.get("/api/campaigns?status=running", Some(&w.token)).await;
    assert!(listed["campaigns"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn campaign_settings_are_checked_field_by_field_and_stay_in_their_organization() {
    let (w, number) = world_with_number().await;
    let (other, _) = w.app.register("owner@elsewhere.test", "Elsewhere").await;
    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"name": ""}), 400, "name"),
        (json!({"agentId": uuid::Uuid::now_v7()}), 400, "agentId"),
        (
            json!({"defaultPhoneNumberId": uuid::Uuid::now_v7()}),
            400,
            "defaultPhoneNumberId",
        ),
        (
            json!({"phoneNumberIds": [uuid::Uuid::now_v7()], "callerIdStrategy": "rotating"}),
            400,
            "phoneNumberIds",
        ),
        (json!({"maxRetries": 11}), 400, "maxRetries"),
        (json!({"timezone": "Mars/Olympus"}), 422, ""),
        (
            json!({"callingWindow": {"start": "07:00", "end": "21:00", "days": ["mon"]}}),
            400,
            "callingWindow",
        ),
        (
            json!({"scheduledStart": "2030-01-02T00:00:00Z", "scheduledEnd": "2030-01-01T00:00:00Z"}),
            400,
            "scheduledEnd",
        ),
        (json!({"dialsPerMinute": 0}), 400, "dialsPerMinute"),
        (json!({"surprise": true}), 422, ""),
    ];
    for (change, expected, field) in bad {
        let mut body = campaign(&w, &number);
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, error) = w.post("/api/campaigns", body.clone()).await;
        assert_eq!(status, expected, "{body}: {error}");
        if !field.is_empty() {
            assert!(
                error["error"]["details"]["field"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(field),
                "{body}: {error}"
            );
        }
    }
    // Another organization's agent is not this organization's.
    let (_, theirs) = w
        .app
        .post(
            "/api/agents",
            Some(&other),
            json!({"name": "Theirs", "systemPrompt": "Hi.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    let mut body = campaign(&w, &number);
    body["agentId"] = theirs["id"].clone();
    assert_eq!(w.post("/api/campaigns", body).await.0, 400);

    let created = create(&w, campaign(&w, &number)).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/campaigns/{id}");
    // PATCH checks the same way, and an unknown field is refused.
    let (status, error) = w
        .app
        .patch(&path, Some(&w.token), json!({"maxConcurrentCalls": 0}))
        .await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("maxConcurrentCalls"))
    );
    assert_eq!(w.app.patch(&path, Some(&w.token), json!({"surprise": 1})).await.0, 400);
    assert_eq!(w.app.patch(&path, Some(&w.token), json!([1])).await.0, 400);

    // Another organization sees nothing and changes nothing.
    assert_eq!(w.app.get(&path, Some(&other)).await.0, 404);
    assert_eq!(w.app.patch(&path, Some(&other), json!({"name": "Mine"})).await.0, 404);
    for action in ["start", "pause", "resume", "cancel"] {
        let (status, _) = w.app.post(&format!("{path}/{action}"), Some(&other), json!({})).await;
        assert_eq!(status, 404, "{action}");
    }
    assert_eq!(w.app.delete(&path, Some(&other)).await.0, 404);
    let (_, listed) = w.app.get("/api/campaigns", Some(&other)).await;
    assert!(listed["campaigns"].as_array().unwrap().is_empty());
    w.app.settle().await;
    let (_, mine) = w.app.get(&path, Some(&w.token)).await;
    assert_eq!(
        (&mine["name"], &mine["status"]),
        (&json!("Spring outreach"), &json!("draft"))
    );
    // Lists are paged.
    assert_eq!(w.app.get("/api/campaigns?limit=0", Some(&w.token)).await.0, 400);
    assert_eq!(w.app.get("/api/campaigns?status=exploded", Some(&w.token)).await.0, 400);
}

#[tokio::test]
async fn the_dnc_list_answers_for_any_number_and_removals_are_for_managers() {
    let w = VapiWorld::start().await;
    let (status, listed) = w
        .post("/api/dnc", json!({"phone": "(415) 555-2671", "reason": "opt_out"}))
        .await;
    assert_eq!(status, 201, "{listed}");
    voxreach_tests::assert_answers_as_documented("DncStatus", &listed);
    assert_eq!(
        (
            &listed["phone"],
            &listed["listed"],
            &listed["reason"],
            &listed["source"]
        ),
        (
            &json!("+14155552671"),
            &json!(true),
            &json!("opt_out"),
            &json!("user_added")
        )
    );
    // Listing again keeps the first listing.
    let (status, again) = w
        .post("/api/dnc", json!({"phone": "+14155552671", "reason": "manual_add"}))
        .await;
    assert_eq!((status, &again["reason"]), (201, &json!("opt_out")));
    w.app.settle().await;

    let check = |phone: &str| format!("/api/dnc?phone={}", phone.replace('+', "%2B"));
    let (status, found) = w.app.get(&check("+14155552671"), Some(&w.token)).await;
    assert_eq!(
        (status, &found["listed"], &found["reason"]),
        (200, &json!(true), &json!("opt_out"))
    );
    assert!(found["addedAt"].is_string());
    let (status, absent) = w.app.get(&check("+14155550000"), Some(&w.token)).await;
    assert_eq!(
        (status, &absent),
        (
            200,
            &json!({"phone": "+14155550000", "listed": false, "reason": null, "source": null, "addedAt": null})
        )
    );
    let (status, error) = w.app.get(&check("not a number"), Some(&w.token)).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("phone"))
    );
    let (_, page) = w.app.get("/api/dnc?limit=10", Some(&w.token)).await;
    voxreach_tests::assert_answers_as_documented("DncList", &page);
    assert_eq!(page["numbers"].as_array().unwrap().len(), 1);
    assert_eq!(
        w.post("/api/dnc", json!({"phone": "+14155552671", "reason": "because"}))
            .await
            .0,
        422
    );

    // Another organization's list is its own.
    let (other, _) = w.app.register("owner@other-dnc.test", "Other").await;
    let (_, theirs) = w.app.get(&check("+14155552671"), Some(&other)).await;
    assert_eq!(theirs["listed"], false);
    assert_eq!(w.app.delete("/api/dnc/%2B14155552671", Some(&other)).await.0, 404);

    let (status, _) = w.app.delete("/api/dnc/%2B14155552671", Some(&w.token)).await;
    assert_eq!(status, 204);
    w.app.settle().await;
    let (_, gone) = w.app.get(&check("+14155552671"), Some(&w.token)).await;
    assert_eq!(gone["listed"], false);
    let (status, error) = w.app.delete("/api/dnc/%2B14155552671", Some(&w.token)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("dnc_not_listed")));
    let (_, page) = w.app.get("/api/dnc", Some(&w.token)).await;
    assert!(page["numbers"].as_array().unwrap().is_empty());

    // Many at once: the National DNC Registry's download format…
    let registry = "4155550111\r\n4155550112\n\n12345\n4155550111\n";
    let (status, result) = post_raw(&w, "/api/dnc/upload?reason=bounced", "text/plain", registry.into()).await;
    assert_eq!(status, 200, "{result}");
    voxreach_tests::assert_answers_as_documented("DncUploadResult", &result);
    assert_eq!(
        (
            &result["listed"],
            &result["alreadyListed"],
            &result["invalid"],
            &result["errors"][0]["line"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(4))
    );
    // …or a CSV file with a phone column.
    let csv = "Name,Phone\nA,(415) 555-0113\nB,+14155550111\nC,nope\n";
    let (_, result) = post_raw(&w, "/api/dnc/upload", "text/csv", csv.into()).await;
    assert_eq!(
        (&result["listed"], &result["alreadyListed"], &result["invalid"]),
        (&json!(1), &json!(1), &json!(1))
    );
    let (status, _) = post_raw(&w, "/api/dnc/upload", "text/csv", "Name\nA\n".into()).await;
    assert_eq!(status, 422, "no phone column");
    w.app.settle().await;
    let (_, bounced) = w.app.get(&check("+14155550112"), Some(&w.token)).await;
    assert_eq!(
        (&bounced["listed"], &bounced["reason"]),
        (&json!(true), &json!("bounced"))
    );
    let (_, manual) = w.app.get(&check("+14155550113"), Some(&w.token)).await;
    assert_eq!(manual["reason"], "manual_add");
}

/// Posts a raw body to our API as the world's owner.
async fn post_raw(w: &VapiWorld, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = w
        .app
        .client
        .post(w.app.url(path))
        .bearer_auth(&w.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request is sent");
    voxreach_tests::into_parts(response).await
}

const CONTACTS_CSV: &str = "\u{feff}First Name;Last Name;Phone;Company;Notes;Industry\n\
Ada;Lovelace;(415) 555-2671;Analytical;\"likes\nengines\";Computing\n\
;;;;;\n\
Bob;Builder;415.555.0100;Bob Co;;Construction\n\
Dup;Licate;+1 415 555 2671;;;\n\
Eve;Nope;12345;;;\n\
Dee;NoCall;+14155550199;;;\n\
Zed;Zone;+14155550101;;;Retail\n";

#[tokio::test]
async fn a_contact_file_is_uploaded_mapped_imported_scrubbed_and_listed() {
    let (w, number) = world_with_number().await;
    assert_eq!(
        w.post("/api/dnc", json!({"phone": "+14155550199", "reason": "opt_out"}))
            .await
            .0,
        201
    );
    let created = create(&w, campaign(&w, &number)).await;
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, upload) = post_raw(
        &w,
        &format!("/api/campaigns/{id}/upload"),
        "text/csv",
        CONTACTS_CSV.into(),
    )
    .await;
    assert_eq!(status, 201, "{upload}");
    voxreach_tests::assert_answers_as_documented("UploadSummary", &upload);
    assert_eq!(
        upload["columns"],
        json!(["First Name", "Last Name", "Phone", "Company", "Notes", "Industry"])
    );
    assert_eq!(
        upload["mapping"],
        json!({"firstName": "First Name", "lastName": "Last Name", "phone": "Phone", "email": null,
            "company": "Company", "notes": "Notes", "timezone": null, "customData": ["Industry"]})
    );
    assert_eq!((&upload["rows"], &upload["invalid"]), (&json!(6), &json!(1)));
    let preview = upload["preview"].as_array().unwrap();
    assert_eq!(preview.len(), 5);
    assert_eq!(
        (&preview[0]["line"], &preview[0]["phone"]),
        (&json!(2), &json!("+14155552671"))
    );
    assert_eq!(preview[0]["notes"], "likes\nengines");
    assert_eq!(preview[0]["customData"], json!({"Industry": "Computing"}));
    assert_eq!(
        (&preview[3]["line"], preview[3]["error"].is_string()),
        (&json!(7), true)
    );
    let upload_id = upload["uploadId"].as_str().unwrap().to_owned();
    let import_path = format!("/api/campaigns/{id}/upload/{upload_id}/import");

    // The mapping must name a phone column, and only columns the file has.
    let mut mapping = upload["mapping"].clone();
    mapping["phone"] = Value::Null;
    let (status, error) = w.post(&import_path, json!({"mapping": mapping})).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("mapping_without_phone"))
    );
    mapping["phone"] = json!("Telephone");
    let (status, error) = w.post(&import_path, json!({"mapping": mapping})).await;
    assert_eq!(
        (status, error["error"]["details"]["field"].as_str()),
        (400, Some("mapping.phone"))
    );

    let (status, result) = w.post(&import_path, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(status, 200, "{result}");
    voxreach_tests::assert_answers_as_documented("ImportResult", &result);
    assert_eq!(
        (
            &result["imported"],
            &result["duplicates"],
            &result["dnc"],
            &result["invalid"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1)),
        "{result}"
    );
    assert_eq!(result["errors"][0]["line"], 7);
    w.app.settle().await;

    let (status, page) = w
        .app
        .get(&format!("/api/campaigns/{id}/contacts"), Some(&w.token))
        .await;
    assert_eq!(status, 200, "{page}");
    voxreach_tests::assert_answers_as_documented("ContactPage", &page);
    let contacts = page["contacts"].as_array().unwrap();
    let phones: Vec<&str> = contacts.iter().map(|c| c["phone"].as_str().unwrap()).collect();
    assert_eq!(phones, ["+14155552671", "+14155550100", "+14155550199", "+14155550101"]);
    assert_eq!(
        (&contacts[0]["firstName"], &contacts[0]["notes"]),
        (&json!("Ada"), &json!("likes\nengines"))
    );
    assert_eq!(contacts[0]["customData"], json!({"Industry": "Computing"}));
    assert_eq!(
        (&contacts[0]["status"], &contacts[0]["attemptCount"]),
        (&json!("pending"), &json!(0))
    );
    assert_eq!(contacts[2]["status"], "dnc");
    let (_, dnc_only) = w
        .app
        .get(&format!("/api/campaigns/{id}/contacts?status=dnc"), Some(&w.token))
        .await;
    assert_eq!(dnc_only["contacts"].as_array().unwrap().len(), 1);
    let (_, first) = w
        .app
        .get(&format!("/api/campaigns/{id}/contacts?limit=3"), Some(&w.token))
        .await;
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let (_, rest) = w
        .app
        .get(
            &format!("/api/campaigns/{id}/contacts?limit=3&cursor={cursor}"),
            Some(&w.token),
        )
        .await;
    assert_eq!(rest["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(rest["nextCursor"], Value::Null);
    let (_, campaign) = w.app.get(&format!("/api/campaigns/{id}"), Some(&w.token)).await;
    assert_eq!(campaign["totalContacts"], 4);
    let (_, kept) = w
        .app
        .get(&format!("/api/campaigns/{id}/upload/{upload_id}"), Some(&w.token))
        .await;
    assert_eq!(kept["result"], result);

    // The same import again (a retried request) answers what it did the first time.
    let (_, again) = w.post(&import_path, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(again, result);
    // The same file uploaded again adds nothing: every number is in the campaign already.
    let (_, second) = post_raw(
        &w,
        &format!("/api/campaigns/{id}/upload"),
        "text/csv",
        CONTACTS_CSV.into(),
    )
    .await;
    let second_import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        second["uploadId"].as_str().unwrap()
    );
    let (_, again) = w.post(&second_import, json!({"mapping": second["mapping"]})).await;
    assert_eq!(
        (&again["imported"], &again["duplicates"], &again["dnc"]),
        (&json!(0), &json!(5), &json!(0))
    );

    // Windows-1252, tabs, and a file sent as a multipart form.
    let latin = b"First Name\tPhone\nRen\xe9e\t4155550102\n".to_vec();
    let boundary = "voxreach-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"contacts.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&latin);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, latin_upload) = post_raw(
        &w,
        &format!("/api/campaigns/{id}/upload"),
        &format!("multipart/form-data; boundary={boundary}"),
        form,
    )
    .await;
    assert_eq!(status, 201, "{latin_upload}");
    assert_eq!(latin_upload["preview"][0]["firstName"], "Renée");

    // Files that cannot be imported say why.
    let upload_path = format!("/api/campaigns/{id}/upload");
    let (status, error) = post_raw(&w, &upload_path, "text/csv", vec![]).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("csv_unreadable")));
    assert_eq!(
        post_raw(&w, &upload_path, "application/json", b"{}".to_vec()).await.0,
        415
    );
    let (_, hopeless) = post_raw(&w, &upload_path, "text/csv", b"Phone\nnope\n12\n".to_vec()).await;
    let hopeless_import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        hopeless["uploadId"].as_str().unwrap()
    );
    let (status, nothing) = w.post(&hopeless_import, json!({"mapping": hopeless["mapping"]})).await;
    assert_eq!(
        (status, &nothing["imported"], &nothing["invalid"]),
        (200, &json!(0), &json!(2))
    );
    let (status, error) = post_raw(&w, &upload_path, "text/csv", vec![b'x'; 60 * 1024 * 1024]).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (413, Some("upload_too_large"))
    );

    // Another organization reaches none of it.
    let (other, _) = w.app.register("owner@other-upload.test", "Other").await;
    assert_eq!(
        w.app
            .get(&format!("/api/campaigns/{id}/contacts"), Some(&other))
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .get(&format!("/api/campaigns/{id}/upload/{upload_id}"), Some(&other))
            .await
            .0,
        404
    );
    let (status, _) = w
        .app
        .post(&import_path, Some(&other), json!({"mapping": upload["mapping"]}))
        .await;
    assert_eq!(status, 404);
}

/// Vapi's `POST /call`, answering each call with an id of its own.
struct NumberedCalls(std::sync::atomic::AtomicUsize);

impl wiremock::Respond for NumberedCalls {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        wiremock::ResponseTemplate::new(201).set_body_json(json!({"id": format!("vapi_call_{n}"), "status": "queued"}))
    }
}

/// A world whose clock stands at `now` (RFC 3339) until the test moves it, and whose
/// Vapi accepts every call, numbering them `vapi_call_0`, `vapi_call_1`…
async fn dialing_world(now: &str) -> (VapiWorld, std::sync::Arc<voxreach_tests::ManualClock>) {
    let clock = voxreach_tests::ManualClock::at(now);
    let shared = clock.clone();
    let w = VapiWorld::start_with(move |wiring| wiring.clock = shared).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/call"))
        .respond_with(NumberedCalls(Default::default()))
        .mount(&w.vapi)
        .await;
    (w, clock)
}

/// The app's campaign runner, to tick by hand.
fn campaign_runner(w: &VapiWorld) -> std::sync::Arc<dyn application::work::ScheduledJob> {
    w.app
        .state
        .scheduled
        .iter()
        .find(|job| job.name() == "campaign-runner")
        .expect("the campaign runner is a scheduled job")
        .clone()
}

async fn run_campaigns(w: &VapiWorld) -> usize {
    let runner = campaign_runner(w);
    let done = runner.run().await.expect("a runner tick");
    w.app.drain_work().await;
    done
}

/// The contacts of a campaign by phone number.
async fn contacts_by_phone(w: &VapiWorld, campaign: &str) -> std::collections::HashMap<String, Value> {
    let (_, page) = w
        .app
        .get(&format!("/api/campaigns/{campaign}/contacts"), Some(&w.token))
        .await;
    page["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["phone"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// Our outbound calls by the number they called: (our id, Vapi's id).
async fn calls_to(w: &VapiWorld, phone: &str) -> Vec<(String, String)> {
    let (_, list) = w
        .app
        .get("/api/calls?direction=outbound&limit=200", Some(&w.token))
        .await;
    list["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["customerNumber"] == phone)
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["vapiCallId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn call_ends(w: &VapiWorld, vapi_id: &str, phone: &str, reason: &str, structured: Value) {
    report_end(w, vapi_id, phone, reason, structured).await;
    w.app.drain_work().await;
}

/// Vapi's end-of-call report for one of our campaign calls.
async fn report_end(w: &VapiWorld, vapi_id: &str, phone: &str, reason: &str, structured: Value) {
    let report = json!({"message": {
        "type": "end-of-call-report", "endedReason": reason,
        "call": {"id": vapi_id, "type": "outboundPhoneCall", "assistantId": "asst_123", "phoneNumberId": "pn_runner",
                 "customer": {"number": phone}},
        "customer": {"number": phone},
        "analysis": {"structuredData": structured}
    }});
    let (status, _) = w.app.deliver_vapi(&report).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_runner_dials_each_contact_once_in_its_own_window_retries_by_the_rules_and_records_results() {
    // 17:00 UTC: noon in New York, 09:00 in California, 07:00 in Hawaii.
    let (w, clock) = dialing_world("2026-11-10T17:00:00Z").await;
    let number = w.add_number("pn_runner", "+14155550170", false).await;
    let created = create(&w, campaign(&w, &number)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let file = "Phone\n+14155552671\n+12125550123\n+18085550123\n";
    let (_, upload) = post_raw(&w, &format!("/api/campaigns/{id}/upload"), "text/csv", file.into()).await;
    let import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        upload["uploadId"].as_str().unwrap()
    );
    let (_, imported) = w.post(&import, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(imported["imported"], 3, "{imported}");
    assert_eq!(steer(&w, &id, "start").await.0, 200);
    w.app.settle().await;

    // California and New York are called now; Hawaii waits for 08:00 there (18:00 UTC).
    run_campaigns(&w).await;
    let contacts = contacts_by_phone(&w, &id).await;
    for phone in ["+14155552671", "+12125550123"] {
        assert_eq!(
            (&contacts[phone]["status"], &contacts[phone]["attemptCount"]),
            (&json!("calling"), &json!(1)),
            "{phone}"
        );
        assert_eq!(calls_to(&w, phone).await.len(), 1, "{phone} is called once");
    }
    assert_eq!(contacts["+18085550123"]["status"], "pending");
    assert_eq!(contacts["+18085550123"]["nextAttemptAt"], "2026-11-10T18:00:00Z");
    assert!(
        calls_to(&w, "+18085550123").await.is_empty(),
        "no call in Hawaii at 07:00"
    );

    // Nothing is dialled twice while its call is in flight.
    run_campaigns(&w).await;
    assert_eq!(calls_to(&w, "+14155552671").await.len(), 1);

    // Busy: again in 30 minutes. Connected, but the person opted out: never again, anywhere in the organization.
    let california = calls_to(&w, "+14155552671").await[0].1.clone();
    let new_york = calls_to(&w, "+12125550123").await[0].1.clone();
    call_ends(&w, &california, "+14155552671", "customer-busy", json!({})).await;
    call_ends(
        &w,
        &new_york,
        "+12125550123",
        "customer-ended-call",
        json!({"optOut": true}),
    )
    .await;
    w.app.settle().await;
    let contacts = contacts_by_phone(&w, &id).await;
    let ca = &contacts["+14155552671"];
    assert_eq!(
        (&ca["status"], &ca["lastResult"], &ca["nextAttemptAt"]),
        (&json!("pending"), &json!("busy"), &json!("2026-11-10T17:30:00Z"))
    );
    assert_eq!(
        (
            &contacts["+12125550123"]["status"],
            &contacts["+12125550123"]["lastResult"]
        ),
        (&json!("dnc"), &json!("connected"))
    );
    let (_, listed) = w.app.get("/api/dnc?phone=%2B12125550123", Some(&w.token)).await;
    assert_eq!(
        (&listed["listed"], &listed["source"]),
        (&json!(true), &json!("auto_detected"))
    );
    let (_, figures) = w.app.get(&format!("/api/campaigns/{id}"), Some(&w.token)).await;
    assert_eq!(
        (&figures["callsMade"], &figures["callsConnected"]),
        (&json!(2), &json!(1))
    );

    // Before 17:30 California waits; after, it is called again.
    clock.set("2026-11-10T17:20:00Z");
    run_campaigns(&w).await;
    assert_eq!(calls_to(&w, "+14155552671").await.len(), 1);
    clock.set("2026-11-10T17:31:00Z");
    run_campaigns(&w).await;
    assert_eq!(calls_to(&w, "+14155552671").await.len(), 2);

    // Hawaii's morning: two schedulers at once still dial it once.
    clock.set("2026-11-10T18:01:00Z");
    w.app.settle().await;
    let runner = campaign_runner(&w);
    let (first, second) = tokio::join!(runner.run(), runner.run());
    first.unwrap();
    second.unwrap();
    w.app.drain_work().await;
    assert_eq!(calls_to(&w, "+18085550123").await.len(), 1, "dialled exactly once");
    // Voicemail completes a contact, with the outcome `voicemail`.
    let hawaii = calls_to(&w, "+18085550123").await[0].1.clone();
    call_ends(&w, &hawaii, "+18085550123", "voicemail", json!({})).await;

    // Paused: no new dials, however due.
    assert_eq!(steer(&w, &id, "pause").await.0, 200);
    let second = calls_to(&w, "+14155552671")
        .await
        .into_iter()
        .map(|(_, v)| v)
        .max()
        .unwrap();
    call_ends(&w, &second, "+14155552671", "customer-did-not-answer", json!({})).await;
    clock.set("2026-11-10T23:59:00Z");
    w.app.settle().await;
    run_campaigns(&w).await;
    assert_eq!(
        calls_to(&w, "+14155552671").await.len(),
        2,
        "a paused campaign dials nobody"
    );

    // When every contact is done, so is the campaign.
    assert_eq!(steer(&w, &id, "resume").await.0, 200);
    w.app.settle().await;
    run_campaigns(&w).await;
    let california = calls_to(&w, "+14155552671").await;
    assert_eq!(
        california.len(),
        3,
        "no answer: again two hours later, now that it runs"
    );
    let newest = california.iter().map(|(_, v)| v.clone()).max().unwrap();
    call_ends(&w, &newest, "+14155552671", "customer-ended-call", json!({})).await;
    w.app.settle().await;
    let contacts = contacts_by_phone(&w, &id).await;
    assert_eq!(
        (
            &contacts["+18085550123"]["status"],
            &contacts["+18085550123"]["outcome"]
        ),
        (&json!("completed"), &json!("voicemail"))
    );
    assert_eq!(contacts["+14155552671"]["status"], "completed");
    run_campaigns(&w).await;
    w.app.settle().await;
    let (_, done) = w.app.get(&format!("/api/campaigns/{id}"), Some(&w.token)).await;
    assert_eq!(
        (&done["status"], &done["callsMade"], &done["callsConnected"]),
        (&json!("completed"), &json!(5), &json!(2))
    );

    // An outcome a person sets after the call counts for the campaign too.
    let (our_call, _) = calls_to(&w, "+14155552671")
        .await
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1))
        .unwrap();
    let (status, _) = w
        .post(
            &format!("/api/calls/{our_call}/outcome"),
            json!({"outcome": "qualified"}),
        )
        .await;
    assert_eq!(status, 204);
    w.app.drain_work().await;
    w.app.settle().await;
    let (_, done) = w.app.get(&format!("/api/campaigns/{id}"), Some(&w.token)).await;
    assert_eq!(done["callsSuccessful"], 1);
    assert_eq!(contacts_by_phone(&w, &id).await["+14155552671"]["outcome"], "qualified");

    // Every attempt, in dialling order, and the figures made of them.
    let (status, attempts) = w.app.get(&format!("/api/campaigns/{id}/calls"), Some(&w.token)).await;
    assert_eq!(status, 200, "{attempts}");
    voxreach_tests::assert_answers_as_documented("AttemptPage", &attempts);
    let results: Vec<(String, i64, String)> = attempts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["phone"].as_str().unwrap().to_owned(),
                a["attemptNumber"].as_i64().unwrap(),
                a["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("+14155552671".to_owned(), 1, "busy".to_owned()),
            ("+12125550123".to_owned(), 1, "connected".to_owned()),
            ("+14155552671".to_owned(), 2, "no_answer".to_owned()),
            ("+18085550123".to_owned(), 1, "voicemail".to_owned()),
            ("+14155552671".to_owned(), 3, "connected".to_owned()),
        ]
    );
    assert_eq!(attempts["calls"][0]["callerNumber"], "+14155550170");
    let (status, stats) = w.app.get(&format!("/api/campaigns/{id}/stats"), Some(&w.token)).await;
    assert_eq!(status, 200, "{stats}");
    voxreach_tests::assert_answers_as_documented("CampaignStats", &stats);
    assert_eq!(
        stats["contactsByStatus"],
        json!({"pending": 0, "calling": 0, "completed": 2, "failed": 0, "dnc": 1})
    );
    assert_eq!(
        (&stats["callsMade"], &stats["callsConnected"], &stats["callsInFlight"]),
        (&json!(5), &json!(2), &json!(0))
    );
    // Two of the three contacts attempted were reached; voicemail is not a conversation.
    assert!(
        (stats["contactRate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{stats}"
    );
    assert_eq!(stats["conversionRate"], 0.5, "one qualified of two connected");

    // The same figures, live.
    let mut live = w
        .app
        .client
        .get(w.app.url(&format!("/api/campaigns/{id}/events")))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let first = String::from_utf8(live.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: stats\ndata: "), "{first}");
    let sent: Value = serde_json::from_str(first.trim_start_matches("event: stats\ndata: ").trim()).unwrap();
    assert_eq!(sent, stats);
    drop(live);

    let (other, _) = w.app.register("owner@other-runner.test", "Other").await;
    for path in ["stats", "calls", "events"] {
        assert_eq!(
            w.app.get(&format!("/api/campaigns/{id}/{path}"), Some(&other)).await.0,
            404,
            "{path}"
        );
    }
    voxreach_tests::assert_rebuilds_send_nothing(&w.app, &[&w.vapi]).await;
}

#[tokio::test]
async fn the_add_to_dnc_tool_lists_the_caller_during_the_call() {
    let w = VapiWorld::start().await;
    let message = json!({"message": {"type": "tool-calls",
        "call": {"id": "call_optout", "type": "inboundPhoneCall", "assistantId": "asst_123", "phoneNumberId": "pn_1",
                 "customer": {"number": "+14155552671"}},
        "toolCallList": [{"id": "tc_dnc", "type": "function", "function": {"name": "add_to_dnc", "arguments": "{}"}}]}});
    let (status, reply) = w.app.deliver_vapi(&message).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["results"][0]["result"].as_str().unwrap().contains("do-not-call"),
        "{reply}"
    );
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/dnc?phone=%2B14155552671", Some(&w.token)).await;
    assert_eq!(
        (&listed["listed"], &listed["reason"], &listed["source"]),
        (&json!(true), &json!("opt_out"), &json!("auto_detected"))
    );
}

#[tokio::test]
async fn a_crash_between_pick_and_dial_loses_no_contact_and_dials_nobody_twice() {
    let (w, clock) = dialing_world("2026-11-10T17:00:00Z").await;
    let number = w.add_number("pn_crash", "+14155550171", false).await;
    let id = create(&w, campaign(&w, &number)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, upload) = post_raw(
        &w,
        &format!("/api/campaigns/{id}/upload"),
        "text/csv",
        b"Phone\n+14155552671\n".to_vec(),
    )
    .await;
    let import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        upload["uploadId"].as_str().unwrap()
    );
    w.post(&import, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(steer(&w, &id, "start").await.0, 200);
    w.app.settle().await;

    // A scheduler picks the contact, then dies before recording the dial: the contact is still ready.
    let store: std::sync::Arc<dyn application::event_store::EventStore> =
        std::sync::Arc::new(infrastructure::event_store::PgEventStore::new(w.app.db.pool.clone()));
    let board = std::sync::Arc::new(projections::campaigns::PgCampaigns::new(w.app.db.pool.clone()));
    let unlocked_runner = || application::campaigns::runner::CampaignRunner {
        store: store.clone(),
        clock: clock.clone(),
        board: board.clone(),
        campaigns: board.clone(),
        locks: std::sync::Arc::new(NoLocks),
        progress: std::sync::Arc::new(projections::runtime::PgReadModelProgress::new(w.app.db.pool.clone())),
    };
    let crashed = unlocked_runner();
    let now = application::clock::Clock::now(clock.as_ref());
    let running = application::campaigns::runner::CampaignBoard::running(board.as_ref(), now)
        .await
        .unwrap();
    let picked = crashed.choose(running, now).await.unwrap();
    assert_eq!(picked.len(), 1);
    drop(crashed);
    assert_eq!(contacts_by_phone(&w, &id).await["+14155552671"]["status"], "pending");

    // Two schedulers (not even kept apart by the job lock) tick at once: the contact's own stream
    // lets one record the dial. Its process dies before the call is requested: the dial's work
    // is queued with the record, so the call is placed when any worker runs it.
    let (one, other) = (unlocked_runner(), unlocked_runner());
    let (first, second) = tokio::join!(one.tick(), other.tick());
    assert_eq!(first.unwrap().dialed + second.unwrap().dialed, 1, "one dial recorded");
    let runner = campaign_runner(&w);
    w.app.settle().await;
    assert!(calls_to(&w, "+14155552671").await.is_empty(), "not requested yet");
    w.app.drain_work().await;
    assert_eq!(calls_to(&w, "+14155552671").await.len(), 1);
    // Ticks and workers running again change nothing: one dial, one call.
    runner.run().await.unwrap();
    w.app.drain_work().await;
    let calls = calls_to(&w, "+14155552671").await;
    assert_eq!(calls.len(), 1);
    assert!(calls[0].1.starts_with("vapi_call_"), "placed with Vapi: {calls:?}");
    let contact = &contacts_by_phone(&w, &id).await["+14155552671"];
    assert_eq!(
        (&contact["status"], &contact["attemptCount"]),
        (&json!("calling"), &json!(1))
    );

    // Its end-of-call report never comes: after the timeout the attempt counts as failed and is retried.
    clock.set("2026-11-10T17:59:00Z");
    runner.run().await.unwrap();
    w.app.settle().await;
    assert_eq!(
        contacts_by_phone(&w, &id).await["+14155552671"]["status"],
        "calling",
        "not before the hour"
    );
    clock.set("2026-11-10T18:01:00Z");
    runner.run().await.unwrap();
    w.app.settle().await;
    let contact = &contacts_by_phone(&w, &id).await["+14155552671"];
    assert_eq!(
        (&contact["status"], &contact["lastResult"]),
        (&json!("pending"), &json!("failed"))
    );
    assert_eq!(
        contact["nextAttemptAt"], "2026-11-10T18:06:00Z",
        "technical failures retry after 5 minutes"
    );
}

/// A job lock every scheduler gets: only the contacts' streams keep them from dialling twice.
struct NoLocks;

#[async_trait::async_trait]
impl application::work::JobLocks for NoLocks {
    async fn try_hold(&self, _: &str) -> Result<Option<application::work::JobHold>, application::AppError> {
        Ok(Some(application::work::JobHold::new(())))
    }
}

/// A started campaign over `phones` (with `settings` on top of the defaults), and the app's runner.
async fn started_campaign(
    w: &VapiWorld,
    number: &str,
    settings: Value,
    phones: &[&str],
) -> (String, std::sync::Arc<dyn application::work::ScheduledJob>) {
    let mut body = campaign(w, number);
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let id = create(w, body).await["id"].as_str().unwrap().to_owned();
    let file = format!("Phone\n{}\n", phones.join("\n"));
    let (_, upload) = post_raw(w, &format!("/api/campaigns/{id}/upload"), "text/csv", file.into()).await;
    let import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        upload["uploadId"].as_str().unwrap()
    );
    let (_, imported) = w.post(&import, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(imported["imported"], phones.len(), "{imported}");
    assert_eq!(steer(w, &id, "start").await.0, 200);
    w.app.settle().await;
    let runner = campaign_runner(w);
    (id, runner)
}

async fn vapi_calls_placed(w: &VapiWorld) -> usize {
    w.vapi
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/call" && r.method.as_str() == "POST")
        .count()
}

#[tokio::test]
async fn a_dial_recorded_just_before_a_pause_or_a_dnc_listing_is_withdrawn_not_placed() {
    let (w, _) = dialing_world("2026-11-10T17:00:00Z").await;
    let number = w.add_number("pn_withdraw", "+14155550173", false).await;
    let (id, runner) = started_campaign(&w, &number, json!({}), &["+14155552671", "+12125550123"]).await;

    // The tick records both dials; the campaign is paused and one number listed before any call is requested.
    assert_eq!(runner.run().await.unwrap(), 2);
    assert_eq!(steer(&w, &id, "pause").await.0, 200);
    assert_eq!(
        w.post("/api/dnc", json!({"phone": "+12125550123", "reason": "opt_out"}))
            .await
            .0,
        201
    );
    w.app.settle().await;
    w.app.drain_work().await;
    assert_eq!(vapi_calls_placed(&w).await, 0, "nothing placed after the pause");
    let contacts = contacts_by_phone(&w, &id).await;
    assert_eq!(
        (
            &contacts["+14155552671"]["status"],
            &contacts["+14155552671"]["attemptCount"]
        ),
        (&json!("pending"), &json!(0)),
        "a withdrawn dial is no attempt"
    );
    assert_eq!(contacts["+12125550123"]["status"], "dnc");
    let (_, stats) = w.app.get(&format!("/api/campaigns/{id}/stats"), Some(&w.token)).await;
    assert_eq!(
        (&stats["callsMade"], &stats["callsInFlight"]),
        (&json!(0), &json!(0)),
        "{stats}"
    );
    let (_, attempts) = w.app.get(&format!("/api/campaigns/{id}/calls"), Some(&w.token)).await;
    assert_eq!(attempts["calls"], json!([]), "{attempts}");

    // Resumed: the pending contact is dialled as its first attempt, the listed one never.
    assert_eq!(steer(&w, &id, "resume").await.0, 200);
    w.app.settle().await;
    run_campaigns(&w).await;
    assert_eq!(vapi_calls_placed(&w).await, 1);
    assert_eq!(calls_to(&w, "+14155552671").await.len(), 1);
    let contact = &contacts_by_phone(&w, &id).await["+14155552671"];
    assert_eq!(
        (&contact["status"], &contact["attemptCount"]),
        (&json!("calling"), &json!(1))
    );
}

#[tokio::test]
async fn concurrency_holds_across_back_to_back_ticks_and_concurrent_schedulers() {
    let (w, _) = dialing_world("2026-11-10T17:00:00Z").await;
    let number = w.add_number("pn_limits", "+14155550174", false).await;
    let phones = ["+14155552671", "+14155552672", "+14155552673", "+14155552674"];
    let (id, runner) = started_campaign(&w, &number, json!({"maxConcurrentCalls": 2}), &phones).await;

    // Two schedulers at once, then more ticks before anyone waits for the read models:
    // never more than two calls in flight.
    let (first, second) = tokio::join!(runner.run(), runner.run());
    assert_eq!(first.unwrap() + second.unwrap(), 2);
    for _ in 0..3 {
        assert_eq!(runner.run().await.unwrap(), 0, "the campaign is at its limit");
    }
    w.app.drain_work().await;
    assert_eq!(vapi_calls_placed(&w).await, 2);
    let (_, stats) = w.app.get(&format!("/api/campaigns/{id}/stats"), Some(&w.token)).await;
    assert_eq!(stats["callsInFlight"], 2, "{stats}");

    // One call ends: one slot frees, and the next tick fills exactly it.
    let placed = w.vapi.received_requests().await.unwrap_or_default();
    let first_phone = placed
        .iter()
        .filter(|r| r.url.path() == "/call")
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["customer"]["number"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .next()
        .unwrap();
    call_ends(&w, "vapi_call_0", &first_phone, "customer-ended-call", json!({})).await;
    assert_eq!(runner.run().await.unwrap(), 1);
    assert_eq!(runner.run().await.unwrap(), 0);
    w.app.drain_work().await;
    assert_eq!(vapi_calls_placed(&w).await, 3);
}

/// Where each area code of the simulation is, and the latest local hour it may be called until
/// (Florida and Oklahoma stop at 20:00), written out here rather than taken from the code under test.
const SIMULATED_AREAS: [(&str, chrono_tz::Tz, u32); 7] = [
    ("212", chrono_tz::America::New_York, 21),
    ("312", chrono_tz::America::Chicago, 21),
    ("303", chrono_tz::America::Denver, 21),
    ("602", chrono_tz::America::Phoenix, 21),
    ("213", chrono_tz::America::Los_Angeles, 21),
    ("808", chrono_tz::Pacific::Honolulu, 21),
    ("305", chrono_tz::America::New_York, 20),
];

/// How the scripted Vapi answers a number: by its last digit.
fn scripted_end(phone: &str, attempt: usize) -> (&'static str, Value) {
    match phone.as_bytes()[phone.len() - 1] - b'0' {
        0..=2 if attempt < 2 => ("customer-busy", json!({})),
        3 | 4 => ("customer-did-not-answer", json!({})),
        5 => ("voicemail", json!({})),
        6 => ("customer-ended-call", json!({"optOut": true})),
        7 => ("pipeline-error-openai-llm-failed", json!({})),
        _ => ("customer-ended-call", json!({"outcome": "qualified"})),
    }
}

#[tokio::test]
async fn a_thousand_contacts_across_us_time_zones_are_called_within_their_windows_caps_and_the_dnc_list() {
    use chrono::{DateTime, Timelike, Utc};
    // Saturday 7 March 2026, 12:00 UTC; daylight saving starts on Sunday the 8th (not in Arizona or Hawaii).
    let (w, clock) = dialing_world("2026-03-07T12:00:00Z").await;
    let number = w.add_number("pn_sim", "+14155550172", false).await;
    let phones: Vec<String> = (0..1_000)
        .map(|n| format!("+1{}{}{:04}", SIMULATED_AREAS[n % 7].0, 234 + ((n / 7) % 60) * 10, n))
        .collect();
    // Listed before the import: imported as dnc.
    for phone in &phones[..10] {
        assert_eq!(
            w.post("/api/dnc", json!({"phone": phone, "reason": "manual_add"}))
                .await
                .0,
            201
        );
    }
    w.app.settle().await;
    let mut body = campaign(&w, &number);
    body["maxConcurrentCalls"] = json!(100);
    body["dialsPerMinute"] = json!(120);
    let id = create(&w, body).await["id"].as_str().unwrap().to_owned();
    let file = std::iter::once("Phone".to_owned())
        .chain(phones.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    let (_, upload) = post_raw(
        &w,
        &format!("/api/campaigns/{id}/upload"),
        "text/csv",
        file.into_bytes(),
    )
    .await;
    let import = format!(
        "/api/campaigns/{id}/upload/{}/import",
        upload["uploadId"].as_str().unwrap()
    );
    let (_, imported) = w.post(&import, json!({"mapping": upload["mapping"]})).await;
    assert_eq!(
        (&imported["imported"], &imported["dnc"]),
        (&json!(990), &json!(10)),
        "{imported}"
    );
    assert_eq!(steer(&w, &id, "start").await.0, 200);
    w.app.settle().await;

    let runner = campaign_runner(&w);
    let mut answered = 0;
    let mut attempts_of: std::collections::HashMap<String, usize> = Default::default();
    let mut dials: Vec<(String, DateTime<Utc>)> = Vec::new();
    let mut listed_mid_campaign: Option<DateTime<Utc>> = None;
    let start: DateTime<Utc> = "2026-03-07T12:00:00Z".parse().unwrap();
    for tick in 0..(48 * 2) {
        let now = start + chrono::Duration::minutes(30 * tick);
        clock.set(&now.to_rfc3339());
        if tick == 4 {
            // Listed mid-campaign: not dialled from now on.
            for phone in &phones[10..20] {
                assert_eq!(
                    w.post("/api/dnc", json!({"phone": phone, "reason": "opt_out"})).await.0,
                    201
                );
            }
            listed_mid_campaign = Some(now);
        }
        w.app.settle().await;
        runner.run().await.unwrap();
        w.app.drain_work().await;
        let requests = w.vapi.received_requests().await.unwrap_or_default();
        let placed: Vec<String> = requests
            .iter()
            .filter(|r| r.url.path() == "/call" && r.method.as_str() == "POST")
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["customer"]["number"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for (n, phone) in placed.iter().enumerate().skip(answered) {
            dials.push((phone.clone(), now));
            let attempt = attempts_of.entry(phone.clone()).or_default();
            let (reason, analysis) = scripted_end(phone, *attempt);
            *attempt += 1;
            report_end(&w, &format!("vapi_call_{n}"), phone, reason, analysis).await;
        }
        answered = placed.len();
        w.app.drain_work().await;
    }
    assert!(
        dials.len() > 990,
        "every callable contact was called at least once: {}",
        dials.len()
    );

    let listed_at = listed_mid_campaign.unwrap();
    for (phone, at) in &dials {
        let (_, zone, latest) = SIMULATED_AREAS.iter().find(|(area, ..)| phone[2..5] == **area).unwrap();
        let local = at.with_timezone(zone);
        assert!(
            (8..*latest).contains(&local.hour()),
            "{phone} called at {local} local time"
        );
        assert!(
            !phones[..10].contains(phone),
            "{phone} was on the DNC list before the import"
        );
        if phones[10..20].contains(phone) {
            assert!(*at < listed_at, "{phone} called after it was listed");
        }
    }
    for (phone, count) in &attempts_of {
        assert!(*count <= 4, "{phone}: {count} attempts, more than maxRetries + 1");
        let times: Vec<&DateTime<Utc>> = dials.iter().filter(|(p, _)| p == phone).map(|(_, at)| at).collect();
        for window in times.windows(4) {
            assert!(
                *window[3] - *window[0] >= chrono::Duration::hours(24),
                "{phone}: 4 calls within 24 h"
            );
        }
        // Opted out during a call: never called again.
        if phone.ends_with('6') {
            assert_eq!(*count, 1, "{phone} opted out on its first call");
        }
    }
    // Hawaii is called at its own 08:00 or later, never at 08:00 Eastern.
    let hawaii_first = dials
        .iter()
        .filter(|(p, _)| p.starts_with("+1808"))
        .map(|(_, at)| *at)
        .min()
        .unwrap();
    assert!(
        hawaii_first >= "2026-03-07T18:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        "{hawaii_first}"
    );
    // Arizona keeps UTC-7 across the change: 08:00 there is 15:00 UTC on both days.
    let arizona_sunday = dials
        .iter()
        .filter(|(p, at)| {
            p.starts_with("+1602")
                && at.with_timezone(&chrono_tz::America::Phoenix).date_naive()
                    == chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
        })
        .map(|(_, at)| *at)
        .min();
    if let Some(first) = arizona_sunday {
        assert!(
            first >= "2026-03-08T15:00:00Z".parse::<DateTime<Utc>>().unwrap(),
            "{first}"
        );
    }
    w.app.settle().await;
    // Two days on, the morning's session has expired: sign in again.
    let (_, session) = w.app.login("owner@world.test", OWNER_PASSWORD).await;
    let token = session["token"].as_str().expect("signed in").to_owned();
    let (status, stats) = w.app.get(&format!("/api/campaigns/{id}/stats"), Some(&token)).await;
    assert_eq!(
        (status, stats["callsMade"].as_u64()),
        (200, Some(dials.len() as u64)),
        "{stats}"
    );
    // Listed before the import, and every contact that opted out on a call (last digit 6).
    assert!(stats["contactsByStatus"]["dnc"].as_i64().unwrap() >= 10 + 90, "{stats}");
}

#[tokio::test]
async fn local_presence_calls_from_a_number_of_the_contacts_area_code_else_its_state_else_the_default() {
    let (w, _) = dialing_world("2026-11-10T18:00:00Z").await;
    let default = w.add_number("pn_default", "+16175550100", false).await;
    let san_francisco = w.add_number("pn_sf", "+14155550101", false).await;
    let new_york = w.add_number("pn_ny", "+12125550102", false).await;
    // San Francisco (415), Syracuse (315: New York state, no pool number there) and Denver (303).
    let (id, _) = started_campaign(
        &w,
        &default,
        json!({"callerIdStrategy": "local_presence", "phoneNumberIds": [san_francisco, new_york]}),
        &["+14155552671", "+13155550123", "+13035550123"],
    )
    .await;
    run_campaigns(&w).await;
    w.app.settle().await;
    let (_, attempts) = w.app.get(&format!("/api/campaigns/{id}/calls"), Some(&w.token)).await;
    let from: std::collections::HashMap<&str, &str> = attempts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["phone"].as_str().unwrap(), a["callerNumber"].as_str().unwrap()))
        .collect();
    assert_eq!(from["+14155552671"], "+14155550101", "same area code");
    assert_eq!(from["+13155550123"], "+12125550102", "same state");
    assert_eq!(from["+13035550123"], "+16175550100", "the default");
    // Vapi is asked to call from those numbers too.
    let requests = w.vapi.received_requests().await.unwrap();
    let pool_numbers: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path() == "/call")
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["phoneNumberId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(pool_numbers.len(), 3);
    for vapi_number in ["pn_sf", "pn_ny", "pn_default"] {
        assert!(
            pool_numbers.iter().any(|n| n == vapi_number),
            "{vapi_number}: {pool_numbers:?}"
        );
    }
    let (_, busy) = w
        .app
        .get(&format!("/api/campaigns/{id}/calls?result=busy"), Some(&w.token))
        .await;
    assert!(busy["calls"].as_array().unwrap().is_empty(), "no call has ended yet");

    // Rotating: the pool's numbers take turns.
    let (rotating, _) = started_campaign(
        &w,
        &default,
        json!({"callerIdStrategy": "rotating", "phoneNumberIds": [san_francisco, new_york]}),
        &["+12125550111", "+12125550112", "+12125550113", "+12125550114"],
    )
    .await;
    run_campaigns(&w).await;
    w.app.settle().await;
    let (_, attempts) = w
        .app
        .get(&format!("/api/campaigns/{rotating}/calls"), Some(&w.token))
        .await;
    let mut used: Vec<&str> = attempts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["callerNumber"].as_str().unwrap())
        .collect();
    used.sort_unstable();
    assert_eq!(used, ["+12125550102", "+12125550102", "+14155550101", "+14155550101"]);
}

#[tokio::test]
async fn a_campaign_without_a_zone_of_its_own_is_in_the_organizations() {
    let (w, number) = world_with_number().await;
    w.app.set_timezone(&w.token, "Europe/Berlin").await;
    assert_eq!(create(&w, campaign(&w, &number)).await["timezone"], "Europe/Berlin");
    let mut explicit = campaign(&w, &number);
    explicit["timezone"] = json!("Asia/Tokyo");
    assert_eq!(create(&w, explicit).await["timezone"], "Asia/Tokyo");
}
