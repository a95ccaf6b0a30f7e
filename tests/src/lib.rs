//! Test support: a fresh database per test (on `DATABASE_URL`'s server, or on a
//! private cluster started once and shared by all test processes), and the API
//! served on a random port.

pub mod analytics_load;
pub mod calendars;
pub mod crm;
pub mod load;

use api::server::{build_state, http_server, AppState, Wiring};
use infrastructure::config::Keys;
use infrastructure::embedded_postgres::EmbeddedPostgres;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The server every test database is created on.
async fn server_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) {
            return url;
        }
        let uid = nix::unistd::getuid();
        let root = std::env::temp_dir().join(format!("voxreach-test-postgres-{uid}"));
        std::fs::create_dir_all(&root).expect("test cluster directory");
        // Test binaries run in parallel processes: one starts the cluster, the others find it running.
        let lock = std::fs::File::create(root.join("start.lock")).expect("test cluster lock file");
        lock.lock().expect("test cluster lock");
        let cluster = EmbeddedPostgres::start(&root)
            .await
            .unwrap_or_else(|e| panic!("tests need PostgreSQL: set DATABASE_URL or install it ({e})"));
        drop(lock);
        cluster.admin_url()
    })
    .await
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub pool: PgPool,
    pub name: String,
    admin: PgConnectOptions,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin = PgConnectOptions::from_str(server_url().await).expect("database URL");
        let name = format!("voxreach_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect_with(&admin)
            .await
            .expect("connect to the test server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(48)
            .connect_with(admin.clone().database(&name))
            .await
            .expect("connect to the test database");
        infrastructure::database::migrate(&pool)
            .await
            .expect("migrations apply");
        Self { pool, name, admin }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop is not async: a short-lived runtime of its own does the cleanup. The
        // pool is not closed first: that would wait on tasks of the test's runtime,
        // which this thread blocks; FORCE ends their connections instead.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect_with(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Where the app under test says it is (`VOXREACH_PUBLIC_URL`).
pub const PUBLIC_URL: &str = "https://app.voxreach.test";

/// The password [`TestApp::register`] gives every owner.
pub const OWNER_PASSWORD: &str = "correct horse battery";

pub const TEST_JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";

pub const TEST_VAPI_SECRET: &str = "vapi-webhook-secret-for-tests";

pub fn test_keys() -> Keys {
    Keys {
        jwt_secret: TEST_JWT_SECRET.to_vec(),
        encryption_key: [42; 32],
        vapi_webhook_secret: TEST_VAPI_SECRET.into(),
    }
}

/// The API on a random local port over its own database. Projectors do not
/// run in the background: `settle` applies what is pending, so tests are deterministic.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub db: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Wiring)) -> Self {
        let db = TestDatabase::create().await;
        let mut wiring = Wiring::new(test_keys(), PUBLIC_URL.into());
        // Tests step the projections themselves (`settle`); nothing runs them in the background.
        wiring.read_your_writes = Duration::ZERO;
        adjust(&mut wiring);
        let state = Arc::new(build_state(db.pool.clone(), wiring));
        state.runner.prepare().await.expect("projections prepare");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = http_server(listener, state.clone()).expect("server starts");
        tokio::spawn(server);
        Self {
            address,
            // Idle connections are dropped well before the server's 5 s keep-alive
            // closes them, so a request never goes out on a connection being closed.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            state,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Applies every pending event to every projection.
    pub async fn settle(&self) {
        settle(&self.state.runner).await;
    }

    /// Runs projections and every reactor until no work is due now.
    pub async fn drain_work(&self) {
        for _ in 0..50 {
            self.settle().await;
            let mut handled = 0;
            for worker in &self.state.workers {
                let items = self
                    .state
                    .work_queue
                    .claim(worker.reactor(), 100, Duration::from_secs(60))
                    .await
                    .expect("claim work");
                let mut finished = Vec::with_capacity(items.len());
                for item in items {
                    handled += 1;
                    let outcome = infrastructure::work_queue::handle_item(worker.as_ref(), &item)
                        .await
                        .expect("work handler");
                    finished.push((item, outcome));
                }
                self.state.work_queue.finish(&finished).await.expect("finish work");
            }
            if handled == 0 {
                self.settle().await;
                return;
            }
        }
        panic!("reactor work did not settle");
    }

    /// Makes every queued reactor item due at once, whatever its retry time.
    pub async fn make_work_due(&self) {
        sqlx::query("UPDATE reactor_work SET due_at = '-infinity'")
            .execute(&self.db.pool)
            .await
            .expect("work made due");
    }

    /// A request to our API, as `token`'s user when given, with a JSON body when given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_parts(request.send().await.expect("request is sent")).await
    }

    /// Sets the organization's time zone as its owner or admin `token`.
    pub async fn set_timezone(&self, token: &str, zone: &str) {
        let (status, body) = self
            .patch("/api/organization", Some(token), json!({ "timezone": zone }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// Delivers a Vapi server message the way Vapi does, with our secret.
    pub async fn deliver_vapi(&self, body: &Value) -> (u16, Value) {
        let request = self
            .client
            .post(self.url("/api/webhooks/vapi"))
            .header("x-vapi-secret", TEST_VAPI_SECRET)
            .json(body);
        into_parts(request.send().await.expect("request is sent")).await
    }

    /// How many integrations' tokens are stored, whatever their organization.
    pub async fn stored_token_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM integration_tokens")
            .fetch_one(&self.db.pool)
            .await
            .expect("count stored tokens")
    }

    /// Our id of the call Vapi knows as `vapi_id`, as `token`'s organization lists it.
    pub async fn call_id_of(&self, token: &str, vapi_id: &str) -> String {
        let (_, calls) = self.get("/api/calls", Some(token)).await;
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["vapiCallId"] == vapi_id)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers a new organization with its owner (password [`OWNER_PASSWORD`]);
    /// returns the owner's token and body.
    pub async fn register(&self, email: &str, organization: &str) -> (String, Value) {
        let (status, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": OWNER_PASSWORD, "name": "Owner", "organizationName": organization}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["token"].as_str().unwrap().to_owned(), body)
    }

    /// Signs in as `email` with `password`; the answer, whatever it is.
    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post("/api/auth/login", None, json!({"email": email, "password": password}))
            .await
    }

    /// Asks for a password-reset e-mail to `email`; the answer, whatever it is.
    pub async fn request_password_reset(&self, email: &str) -> (u16, Value) {
        self.post("/api/auth/password-reset/request", None, json!({"email": email}))
            .await
    }

    /// Sets `new_password` with the token of a reset or invitation e-mail; the answer, whatever it is.
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> (u16, Value) {
        self.post(
            "/api/auth/password-reset/confirm",
            None,
            json!({"token": token, "newPassword": new_password}),
        )
        .await
    }

    /// The newest e-mail queued for `recipient`, as (subject, body), waiting
    /// up to two seconds for it (some mail is written after the answer);
    /// bodies are encrypted at rest, so this opens it with the test key.
    pub async fn last_email_to(&self, recipient: &str) -> Option<(String, String)> {
        let mut row: Option<(uuid::Uuid, String, String)> = None;
        for _ in 0..40 {
            row = sqlx::query_as(
                "SELECT id, subject, sealed_body FROM email_outbox WHERE recipient = $1 AND sealed_body IS NOT NULL
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(recipient)
            .fetch_optional(&self.db.pool)
            .await
            .expect("outbox query");
            if row.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (id, subject, sealed) = row?;
        let body = infrastructure::secret_box::SecretBox::new(&test_keys().encryption_key)
            .open(&sealed, &format!("email:{id}"))
            .expect("the test key opens the body");
        Some((subject, body))
    }
}

/// [`assert_read_models_equal_rebuilds`], and then that the replays sent
/// nothing to any of these provider fakes, even once reactors ran again.
pub async fn assert_rebuilds_send_nothing(app: &TestApp, providers: &[&wiremock::MockServer]) {
    let received = || async {
        let mut counts = vec![];
        for provider in providers {
            counts.push(provider.received_requests().await.map_or(0, |r| r.len()));
        }
        counts
    };
    let before = received().await;
    assert_read_models_equal_rebuilds(app).await;
    app.drain_work().await;
    assert_eq!(received().await, before, "a replay reached a provider");
}

/// Replays every read model from the start of the log into a side schema and
/// asserts that each of its tables equals the live, incrementally built one.
/// Reactor work is untouched by the replays.
/// Replays `model` through `runner` into `schema` and checks that each of
/// its tables holds exactly what the live one does.
pub async fn assert_replay_equals_live(
    runner: &projections::ProjectionRunner,
    pool: &PgPool,
    model: &dyn projections::ReadModel,
    schema: &str,
) {
    runner
        .replay_into(model.name(), schema, projections::ReplayLimit::default(), |_| {})
        .await
        .expect("replay into a side schema");
    assert_tables_equal_live(pool, model, schema, "a rebuild").await;
}

/// Checks each of `model`'s tables in `schema` holds what its live table holds.
async fn assert_tables_equal_live(pool: &PgPool, model: &dyn projections::ReadModel, schema: &str, made_by: &str) {
    for table in model.tables() {
        let sql = |from: &str| {
            format!("SELECT COALESCE(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]') FROM {from}.{table} t")
        };
        let live: Value = sqlx::query_scalar(&sql("public"))
            .fetch_one(pool)
            .await
            .expect("live table");
        let rebuilt: Value = sqlx::query_scalar(&sql(schema))
            .fetch_one(pool)
            .await
            .expect("rebuilt table");
        assert_eq!(
            live,
            rebuilt,
            "{}.{table}: incremental differs from {made_by}",
            model.name()
        );
    }
}

/// Applies the whole log to fresh copies of read model `name`'s tables through its live `apply`,
/// once one event per batch and once all of it in one batch, and checks each copy equals the live
/// tables: every event's change made on its own, and all of them made together (a call's moves
/// and its organization's new time zone in one batch), end where the live batches, whatever each
/// held, ended.
pub async fn assert_live_apply_in_any_batches_equals_live(app: &TestApp, name: &str) {
    use application::event_store::{EventStore, LogFilter};
    app.settle().await;
    let pool = &app.db.pool;
    let model = projections::read_models()
        .into_iter()
        .find(|m| m.name() == name)
        .expect("a read model of that name");
    let store = infrastructure::event_store::PgEventStore::new(pool.clone());
    let filter = LogFilter {
        stream_types: model.stream_types(),
        event_types: model.event_types(),
        payloads: model.reads_payloads(),
    };
    let mut log = vec![];
    let mut after = domain::Checkpoint::START;
    loop {
        let page = store.read_filtered(after, 1000, &filter).await.expect("read the log");
        let Some(last) = page.scanned_to else { break };
        log.extend(page.events);
        after = last;
    }
    for (batch, label) in [(1, "one event at a time"), (log.len().max(1), "the whole log at once")] {
        let schema = format!("verify_{name}_live_in_batches_of_{batch}");
        let in_schema = format!("SET LOCAL search_path TO {schema}");
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; {in_schema}"
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::raw_sql(model.create_sql()).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        for events in log.chunks(batch) {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&in_schema).execute(&mut *tx).await.unwrap();
            model.apply(&mut tx, events).await.expect("live apply of a batch");
            tx.commit().await.unwrap();
        }
        assert_tables_equal_live(pool, model.as_ref(), &schema, label).await;
    }
}

/// Replays the read model `name` one event per batch into side schemas, holding
/// one row, then two, and checks each equals the live one: its rebuild writes
/// what it holds after every event (or all but the last call touched) and reads
/// it back for the next event of the same row.
pub async fn assert_replay_one_event_at_a_time_equals_live(app: &TestApp, name: &str) {
    let pool = app.db.pool.clone();
    let model = projections::read_models()
        .into_iter()
        .find(|m| m.name() == name)
        .expect("a read model of that name");
    for held_rows in [1, 2] {
        let store = std::sync::Arc::new(infrastructure::event_store::PgEventStore::new(pool.clone()));
        let one_at_a_time = projections::ProjectionRunner::new(
            pool.clone(),
            store,
            projections::read_models(),
            vec![],
            projections::RunnerConfig {
                rebuild_batch_size: 1,
                rebuild_held_rows: held_rows,
                ..projections::RunnerConfig::default()
            },
        );
        let schema = format!("verify_{name}_held_{held_rows}");
        assert_replay_equals_live(&one_at_a_time, &pool, model.as_ref(), &schema).await;
    }
}

pub async fn assert_read_models_equal_rebuilds(app: &TestApp) {
    assert_every_stored_event_decodes(&app.db.pool).await;
    app.settle().await;
    let work_before = work_snapshot(&app.db.pool).await;
    let runner = &app.state.runner;
    for consumer in runner.consumers() {
        let projections::Consumer::ReadModel(model) = consumer else {
            continue;
        };
        assert_replay_equals_live(
            runner,
            &app.db.pool,
            model.as_ref(),
            &format!("verify_{}", model.name()),
        )
        .await;
    }
    assert_eq!(
        work_snapshot(&app.db.pool).await,
        work_before,
        "replaying read models enqueues no reactor work"
    );
}

/// How a benchmark reports a rebuild: its rate over the log and where the time went.
pub fn rebuild_figures(result: &projections::RebuildProgress) -> String {
    format!(
        "{:>8.0} events/s of the log ({} events; reading {:.2} s, applying {:.2} s, finishing {:.2} s)",
        result.events_per_second,
        result.done,
        result.reading.as_secs_f64(),
        result.applying.as_secs_f64(),
        result.finishing.as_secs_f64()
    )
}

/// Events per second of a raw read of the whole log (every column, in log order, streamed to the
/// client): the figure a read model's rebuild is compared with.
pub async fn raw_log_read_rate(pool: &PgPool) -> f64 {
    use futures::TryStreamExt;
    let started = std::time::Instant::now();
    let read: u64 = sqlx::query("SELECT * FROM events ORDER BY transaction_id, global_position")
        .fetch(pool)
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
        .expect("read the log");
    read as f64 / started.elapsed().as_secs_f64()
}

/// Decodes every event in the test's log with the current code (after
/// upcasting): each stored event type is known and its payload matches.
pub async fn assert_every_stored_event_decodes(pool: &PgPool) {
    let stored: Vec<(String, i32, Value)> =
        sqlx::query_as("SELECT event_type, event_version, payload FROM events ORDER BY global_position")
            .fetch_all(pool)
            .await
            .expect("read the log");
    assert!(!stored.is_empty());
    for (event_type, version, payload) in stored {
        if let Err(error) = domain::events::decode_stored(&event_type, version, payload) {
            panic!("a stored {event_type} v{version} does not decode: {error}");
        }
    }
}

/// Every reactor work item, as JSON, for before/after comparisons.
pub async fn work_snapshot(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT COALESCE(jsonb_agg(to_jsonb(w) ORDER BY reactor, work_key), '[]') FROM public.reactor_work w",
    )
    .fetch_one(pool)
    .await
    .expect("reactor work")
}

/// Runs projections until nothing is pending, tolerating events that other
/// databases' open transactions keep invisible for a moment.
/// The visibility horizon is the whole cluster's, so a busy neighbour (a big
/// import in a parallel test) can hold events back for seconds.
pub async fn settle(runner: &projections::ProjectionRunner) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        runner.catch_up().await.expect("projections apply");
        let statuses = runner.status().await.expect("projection status");
        if statuses.iter().all(|s| s.lag_events == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("projections did not catch up within a minute");
}

pub async fn into_parts(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Extracts the `token=` parameter of the link in an e-mail body.
pub fn token_in(body: &str) -> String {
    body.split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the e-mail carries a token link")
        .to_owned()
}

/// An app talking to a fake Vapi, with one organization whose single agent
/// ("Closer") is synced to Vapi as assistant `asst_123`.
pub struct VapiWorld {
    pub app: TestApp,
    pub vapi: wiremock::MockServer,
    pub token: String,
    pub agent_id: String,
}

impl VapiWorld {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A world whose wiring `adjust` changes first (a manual clock, limits…).
    pub async fn start_with(adjust: impl FnOnce(&mut Wiring)) -> Self {
        use wiremock::matchers::{method, path};
        let vapi = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST"))
            .and(path("/assistant"))
            .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(json!({"id": "asst_123"})))
            .mount(&vapi)
            .await;
        let uri = vapi.uri();
        let app = TestApp::spawn_with(|w| {
            w.vapi_base_url = uri;
            w.vapi_api_key = "key".into();
            adjust(w);
        })
        .await;
        let (token, _) = app.register("owner@world.test", "World Inc").await;
        let (status, agent) = app
            .post(
                "/api/agents",
                Some(&token),
                json!({"name": "Closer", "systemPrompt": "Sell.", "voice": {"provider": "openai", "voiceId": "nova"}}),
            )
            .await;
        assert_eq!(status, 201, "{agent}");
        app.drain_work().await;
        Self {
            agent_id: agent["id"].as_str().expect("agent id").to_owned(),
            app,
            vapi,
            token,
        }
    }
}

/// A clock tests move by hand.
pub struct ManualClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    pub fn at(time: &str) -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(time.parse().expect("an RFC 3339 time"))))
    }

    pub fn set(&self, time: &str) {
        *self.0.lock().expect("clock lock") = time.parse().expect("an RFC 3339 time");
    }
}

impl application::clock::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().expect("clock lock")
    }
}

impl VapiWorld {
    /// A request to our API as the world's owner.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.app.post(path, Some(&self.token), body).await
    }

    /// A Vapi-provisioned number (`vapi_id` at Vapi), optionally ringing the agent, synced; returns our id.
    pub async fn add_number(&self, vapi_id: &str, number: &str, rings_agent: bool) -> String {
        use wiremock::matchers::{body_partial_json, method, path};
        wiremock::Mock::given(method("POST"))
            .and(path("/phone-number"))
            .and(body_partial_json(json!({"provider": "vapi"})))
            .respond_with(
                wiremock::ResponseTemplate::new(201)
                    .set_body_json(json!({"id": vapi_id, "number": number, "status": "active"})),
            )
            .up_to_n_times(1)
            .mount(&self.vapi)
            .await;
        let mut body = json!({"provider": "vapi", "areaCode": "415"});
        if rings_agent {
            body["agentId"] = json!(self.agent_id);
        }
        let (status, created) = self.app.post("/api/phone-numbers", Some(&self.token), body).await;
        assert_eq!(status, 201, "{created}");
        self.app.drain_work().await;
        created["id"].as_str().expect("number id").to_owned()
    }
}

/// Checks an answer against a response schema of the OpenAPI document: every
/// required field present and every enumerated field within its values, through
/// `$ref`s, `allOf` (flattened fields) and arrays of documented items.
pub fn assert_answers_as_documented(schema: &str, answer: &Value) {
    let schemas = &api::openapi::document()["components"]["schemas"];
    assert!(schemas[schema].is_object(), "no schema {schema}");
    check_against(schemas, schema, &schemas[schema], answer);
}

fn check_against(schemas: &Value, name: &str, documented: &Value, answer: &Value) {
    if let Some(reference) = documented["$ref"].as_str() {
        let target = reference.trim_start_matches("#/components/schemas/");
        return check_against(schemas, target, &schemas[target], answer);
    }
    if answer.is_null() {
        return;
    }
    for part in documented["allOf"].as_array().into_iter().flatten() {
        check_against(schemas, name, part, answer);
    }
    if let Some(allowed) = documented["enum"].as_array() {
        assert!(allowed.contains(answer), "{name} = {answer} is not documented");
    }
    for field in documented["required"].as_array().into_iter().flatten() {
        let field = field.as_str().unwrap();
        assert!(
            answer.get(field).is_some(),
            "{name}.{field} documented, not answered: {answer}"
        );
    }
    for (field, property) in documented["properties"].as_object().into_iter().flatten() {
        if let Some(value) = answer.get(field) {
            check_against(schemas, &format!("{name}.{field}"), property, value);
        }
    }
    if let (Some(items), Some(values)) = (documented.get("items"), answer.as_array()) {
        for item in values {
            check_against(schemas, name, items, item);
        }
    }
}
