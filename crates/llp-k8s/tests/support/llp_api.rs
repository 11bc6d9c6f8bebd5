//! A real Directus 11.3.5 as the LLP API, for tests and the benchmark (the recipe and why:
//! `docs/directus-in-tests.md`).
//!
//! Installed once with npm under cargo's target directory (3-5 minutes the first time,
//! then reused), bootstrapped on SQLite in a fresh directory per process, and stopped when the
//! process ends: it runs under a shell that waits on our pipe and kills it when the pipe closes.
//! Schema as the LLP has it: `deployments` with `user_created`, an owner-only policy, roles
//! `Student` (may use the app, so may read their own role), `management` and `Staff` (may not);
//! `gpu_reservations` (`gpus` JSON list of slugs, `start`, `end`, `deployment` many-to-one,
//! `users` many-to-many through `gpu_reservations_directus_users`), readable by its users and
//! by the owner of the deployment it names; `courses` with collaborators and members (the
//! junctions `courses_directus_users`, `courses_directus_users_2`) and `gpu_reservations.course`,
//! a booking then readable by the course's people; `gpu_usage`; a `Service` role that may read
//! every booking and write usage.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The version the notes measured: the newest that runs on Node 20 and allows row-level rules
/// without a licence.
const VERSION: &str = "11.3.5";
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "llp-test-admin-password";

/// A running LLP API.
pub struct LlpApi {
    /// Its base URL.
    pub url: String,
    /// A static token of the admin user.
    pub admin_token: String,
    roles: Roles,
    _server: Child,
}

struct Roles {
    student: String,
    management: String,
    staff: String,
    service: String,
}

/// Which role a test user gets.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// An ordinary user, who may read their own role.
    Student,
    /// The `management` role, mapped to the `management` group.
    Management,
    /// `Staff`: owner-only records, but may not read their own role.
    Staff,
    /// The service's own user: may read every GPU reservation.
    Service,
}

/// The LLP API of this test process, started on first use.
pub fn llp_api() -> &'static LlpApi {
    static API: OnceLock<LlpApi> = OnceLock::new();
    API.get_or_init(|| {
        // Its own thread and runtime: callers may be inside another runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(start())
        })
        .join()
        .expect("the LLP API starts")
    })
}

fn install_dir() -> PathBuf {
    // Set by cargo for integration tests and benchmarks: target/tmp, kept between runs.
    let target = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("llp-k8s-target"));
    target.join(format!("directus-{VERSION}"))
}

/// `npm install directus@VERSION` once; a lock file keeps parallel test binaries from racing.
fn install(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    if lock.try_lock().is_err() {
        say(&format!(
            "waiting for another test process installing directus@{VERSION} (3-5 minutes the first time)"
        ));
        lock.lock().unwrap();
    }
    let bin = dir.join("node_modules/.bin/directus");
    let stamp = dir.join(".installed");
    if !stamp.exists() {
        std::fs::write(
            dir.join("package.json"),
            r#"{"name":"llp-test-directus","private":true}"#,
        )
        .unwrap();
        say(&format!(
            "installing directus@{VERSION}, the LLP API of the tests, with npm into {} (once; 3-5 minutes on 2 cores)",
            dir.display()
        ));
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg(format!("directus@{VERSION}"))
            .current_dir(dir)
            .status()
            .expect("npm (Node.js 20) is needed to run the real LLP API in tests");
        assert!(status.success(), "npm install directus@{VERSION} failed");
        std::fs::write(&stamp, VERSION).unwrap();
    }
    bin
}

/// An HTTP client (reqwest is built with rustls and no crypto provider of its own).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Whether `url` answers 2xx within `patience` (asked every 50 ms).
pub async fn answers_ok(url: &str, patience: Duration) -> bool {
    let http = client();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start() -> LlpApi {
    let bin = install(&install_dir());
    let run = install_dir().join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(run.join("uploads")).unwrap();
    std::fs::create_dir_all(run.join("extensions")).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [
        ("DB_CLIENT", "sqlite3".to_owned()),
        ("DB_FILENAME", run.join("directus.db").display().to_string()),
        ("KEY", uuid::Uuid::new_v4().to_string()),
        ("SECRET", uuid::Uuid::new_v4().to_string()),
        ("ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("PUBLIC_URL", url.clone()),
        ("STORAGE_LOCATIONS", "local".to_owned()),
        ("STORAGE_LOCAL_ROOT", run.join("uploads").display().to_string()),
        ("EXTENSIONS_PATH", run.join("extensions").display().to_string()),
        ("TELEMETRY", "false".to_owned()),
        ("LOG_LEVEL", "warn".to_owned()),
        // The benchmark polls hard; the LLP's own rate limiter is not what is measured.
        ("RATE_LIMITER_ENABLED", "false".to_owned()),
        // Nor its pressure limiter, which answers 503 while its event loop lags (as it may
        // right after start, with every test of the binary calling at once).
        ("PRESSURE_LIMITER_ENABLED", "false".to_owned()),
    ];
    let log = std::fs::File::create(run.join("directus.log")).unwrap();
    let bootstrap = Command::new(&bin)
        .arg("bootstrap")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .status()
        .unwrap();
    assert!(bootstrap.success(), "directus bootstrap failed: see {}", run.display());
    // The shell waits for our end of the pipe to close (this process exiting), then stops
    // Directus and removes its data.
    let script = format!(
        "'{}' start & server=$!; read _; kill $server; wait $server; rm -rf '{}'",
        bin.display(),
        run.display()
    );
    let mut server = Command::new("sh")
        .args(["-c", &script])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Keep the write end open for the life of the process (never written to).
    let stdin = server.stdin.take().unwrap();
    std::mem::forget(stdin);
    let started = answers_ok(&format!("{url}/server/ping"), Duration::from_secs(60)).await;
    assert!(started, "directus did not start: see {}", run.display());
    let admin = Admin::login(&url).await;
    let roles = admin.schema().await;
    let admin_token = admin.static_token().await;
    let _ = std::io::stderr().flush();
    LlpApi {
        url,
        admin_token,
        roles,
        _server: server,
    }
}

/// Admin calls during setup.
struct Admin {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn login(url: &str) -> Self {
        let http = client();
        let body: Value = http
            .post(format!("{url}/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            url: url.to_owned(),
            token: body["data"]["access_token"].as_str().unwrap().to_owned(),
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// The `deployments` collection, the owner-only policy and the roles.
    async fn schema(&self) -> Roles {
        self.post(
            "/collections",
            json!({"collection": "deployments", "schema": {}, "meta": {}, "fields": [
                {"field": "id", "type": "uuid", "meta": {"special": ["uuid"], "hidden": true},
                 "schema": {"is_primary_key": true}},
                {"field": "title", "type": "string"},
                {"field": "data", "type": "text"},
                {"field": "exposed_service", "type": "string"},
                {"field": "exposed_port", "type": "integer"},
                {"field": "exposed_hostname", "type": "string"},
                {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
                {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}}
            ]}),
        )
        .await;
        self.post(
            "/relations",
            json!({"collection": "deployments", "field": "user_created", "related_collection": "directus_users"}),
        )
        .await;
        let owners = self
            .post("/policies", json!({"name": "Deployment owners", "app_access": false}))
            .await;
        let owners = owners["data"]["id"].as_str().unwrap().to_owned();
        let own = json!({"user_created": {"_eq": "$CURRENT_USER"}});
        for action in ["create", "read", "update", "delete"] {
            let filter = if action == "create" { Value::Null } else { own.clone() };
            self.post(
                "/permissions",
                json!({"policy": owners, "collection": "deployments", "action": action,
                       "fields": ["*"], "permissions": filter}),
            )
            .await;
        }
        self.reservations_schema(&owners).await;
        let readers = self
            .post("/policies", json!({"name": "Reservation readers", "app_access": false}))
            .await;
        let readers = readers["data"]["id"].as_str().unwrap().to_owned();
        for collection in [
            "gpu_reservations",
            "gpu_reservations_directus_users",
            "courses",
            "courses_directus_users",
            "courses_directus_users_2",
        ] {
            self.post(
                "/permissions",
                json!({"policy": readers, "collection": collection, "action": "read", "fields": ["*"]}),
            )
            .await;
        }
        self.usage_schema(&readers).await;
        // The orphan reconciler asks which deployment records exist: their ids are enough.
        self.post(
            "/permissions",
            json!({"policy": readers, "collection": "deployments", "action": "read", "fields": ["id"]}),
        )
        .await;
        let app = self.post("/policies", json!({"name": "App", "app_access": true})).await;
        let app = app["data"]["id"].as_str().unwrap().to_owned();
        let role = |name: &str, policies: &[&str]| {
            let policies: Vec<Value> = policies.iter().map(|p| json!({"policy": p})).collect();
            json!({"name": name, "policies": policies})
        };
        let student = self.post("/roles", role("Student", &[&owners, &app])).await;
        let management = self.post("/roles", role("management", &[&owners, &app])).await;
        let staff = self.post("/roles", role("Staff", &[&owners])).await;
        let service = self.post("/roles", role("Service", &[&readers])).await;
        let id = |v: &Value| v["data"]["id"].as_str().unwrap().to_owned();
        Roles {
            student: id(&student),
            management: id(&management),
            staff: id(&staff),
            service: id(&service),
        }
    }

    /// `gpu_usage`, as docs/operations.md tells an LLP admin to make it: written by the
    /// service's role (`policy`) alone.
    async fn usage_schema(&self, policy: &str) {
        self.post(
            "/collections",
            json!({"collection": "gpu_usage", "schema": {}, "meta": {"hidden": true}, "fields": [
                {"field": "id", "type": "string", "meta": {"hidden": true}, "schema": {"is_primary_key": true}}
            ]}),
        )
        .await;
        for (field, kind) in [
            ("pod_uid", "string"),
            ("profile", "string"),
            ("pod", "string"),
            ("deployment", "string"),
            ("owner", "string"),
            ("gpus", "integer"),
            ("started_at", "timestamp"),
            ("ended_at", "timestamp"),
            ("seen_at", "timestamp"),
        ] {
            self.post("/fields/gpu_usage", json!({"field": field, "type": kind}))
                .await;
        }
        for action in ["create", "read", "update"] {
            self.post(
                "/permissions",
                json!({"policy": policy, "collection": "gpu_usage", "action": action, "fields": ["*"]}),
            )
            .await;
        }
    }

    /// `gpu_reservations` and its junction with `directus_users`, as the LLP has them; the
    /// owners' policy may read the bookings it is among the users of, or that name one of its
    /// deployments.
    async fn reservations_schema(&self, owners: &str) {
        self.post(
            "/collections",
            json!({"collection": "gpu_reservations", "schema": {}, "meta": {}, "fields": [
                {"field": "id", "type": "integer", "meta": {"hidden": true},
                 "schema": {"is_primary_key": true, "has_auto_increment": true}},
                {"field": "gpus", "type": "json", "meta": {"special": ["cast-json"], "interface": "tags"}},
                {"field": "start", "type": "timestamp", "meta": {"interface": "datetime"}},
                {"field": "end", "type": "timestamp", "meta": {"interface": "datetime"}},
                {"field": "deployment", "type": "uuid", "meta": {"interface": "select-dropdown-m2o"}}
            ]}),
        )
        .await;
        self.post(
            "/collections",
            json!({"collection": "gpu_reservations_directus_users", "schema": {}, "meta": {"hidden": true}, "fields": [
                {"field": "id", "type": "integer", "meta": {"hidden": true},
                 "schema": {"is_primary_key": true, "has_auto_increment": true}},
                {"field": "gpu_reservations_id", "type": "integer", "meta": {"hidden": true}},
                {"field": "directus_users_id", "type": "uuid", "meta": {"hidden": true}}
            ]}),
        )
        .await;
        self.post(
            "/fields/gpu_reservations",
            json!({"field": "users", "type": "alias", "meta": {"special": ["m2m"], "interface": "list-m2m"}}),
        )
        .await;
        self.post(
            "/relations",
            json!({"collection": "gpu_reservations", "field": "deployment", "related_collection": "deployments"}),
        )
        .await;
        self.post(
            "/relations",
            json!({"collection": "gpu_reservations_directus_users", "field": "gpu_reservations_id",
                   "related_collection": "gpu_reservations",
                   "meta": {"one_field": "users", "junction_field": "directus_users_id"},
                   "schema": {"on_delete": "CASCADE"}}),
        )
        .await;
        self.post(
            "/relations",
            json!({"collection": "gpu_reservations_directus_users", "field": "directus_users_id",
                   "related_collection": "directus_users",
                   "meta": {"junction_field": "gpu_reservations_id"},
                   "schema": {"on_delete": "CASCADE"}}),
        )
        .await;
        self.courses_schema(owners).await;
        let theirs = json!({"_or": [
            {"users": {"directus_users_id": {"_eq": "$CURRENT_USER"}}},
            {"deployment": {"user_created": {"_eq": "$CURRENT_USER"}}},
            {"course": {"collaborators": {"directus_users_id": {"_eq": "$CURRENT_USER"}}}},
            {"course": {"members": {"directus_users_id": {"_eq": "$CURRENT_USER"}}}},
        ]});
        self.post(
            "/permissions",
            json!({"policy": owners, "collection": "gpu_reservations", "action": "read",
                   "fields": ["*"], "permissions": theirs}),
        )
        .await;
        self.post(
            "/permissions",
            json!({"policy": owners, "collection": "gpu_reservations_directus_users", "action": "read", "fields": ["*"]}),
        )
        .await;
    }

    /// `courses` with its collaborators (`courses_directus_users`) and members
    /// (`courses_directus_users_2`), and `gpu_reservations.course`, as the LLP has them;
    /// everyone may read courses (the LLP's course pages do).
    async fn courses_schema(&self, readers: &str) {
        self.post(
            "/collections",
            json!({"collection": "courses", "schema": {}, "meta": {}, "fields": [
                {"field": "id", "type": "integer", "meta": {"hidden": true},
                 "schema": {"is_primary_key": true, "has_auto_increment": true}},
                {"field": "name", "type": "string"}
            ]}),
        )
        .await;
        for (junction, alias) in [
            ("courses_directus_users", "collaborators"),
            ("courses_directus_users_2", "members"),
        ] {
            self.post(
                "/collections",
                json!({"collection": junction, "schema": {}, "meta": {"hidden": true}, "fields": [
                    {"field": "id", "type": "integer", "meta": {"hidden": true},
                     "schema": {"is_primary_key": true, "has_auto_increment": true}},
                    {"field": "courses_id", "type": "integer", "meta": {"hidden": true}},
                    {"field": "directus_users_id", "type": "uuid", "meta": {"hidden": true}}
                ]}),
            )
            .await;
            self.post(
                "/fields/courses",
                json!({"field": alias, "type": "alias", "meta": {"special": ["m2m"], "interface": "list-m2m"}}),
            )
            .await;
            self.post(
                "/relations",
                json!({"collection": junction, "field": "courses_id", "related_collection": "courses",
                       "meta": {"one_field": alias, "junction_field": "directus_users_id"},
                       "schema": {"on_delete": "CASCADE"}}),
            )
            .await;
            self.post(
                "/relations",
                json!({"collection": junction, "field": "directus_users_id", "related_collection": "directus_users",
                       "meta": {"junction_field": "courses_id"}, "schema": {"on_delete": "CASCADE"}}),
            )
            .await;
            self.post(
                "/permissions",
                json!({"policy": readers, "collection": junction, "action": "read", "fields": ["*"]}),
            )
            .await;
        }
        self.post(
            "/fields/gpu_reservations",
            json!({"field": "course", "type": "integer"}),
        )
        .await;
        self.post(
            "/relations",
            json!({"collection": "gpu_reservations", "field": "course", "related_collection": "courses"}),
        )
        .await;
        self.post(
            "/permissions",
            json!({"policy": readers, "collection": "courses", "action": "read", "fields": ["*"]}),
        )
        .await;
    }

    /// Gives the admin a static token.
    async fn static_token(&self) -> String {
        let me = self.call(reqwest::Method::GET, "/users/me", Value::Null).await;
        let id = me["data"]["id"].as_str().unwrap().to_owned();
        let token = format!("admin-{}", uuid::Uuid::new_v4().simple());
        self.call(reqwest::Method::PATCH, &format!("/users/{id}"), json!({"token": token}))
            .await;
        token
    }
}

impl LlpApi {
    /// Creates a user with `role` and returns their static token.
    pub async fn add_user(&self, name: &str, role: Role) -> String {
        let role = match role {
            Role::Student => &self.roles.student,
            Role::Management => &self.roles.management,
            Role::Staff => &self.roles.staff,
            Role::Service => &self.roles.service,
        };
        let token = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = client()
            .post(format!("{}/users", self.url))
            .bearer_auth(&self.admin_token)
            .json(&json!({"email": email, "first_name": name, "role": role, "token": token}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        token
    }

    /// Creates a deployment record as the holder of `token`, as the LLP frontend does;
    /// returns its id.
    pub async fn create_record(&self, token: &str, record: Value) -> String {
        let response = client()
            .post(format!("{}/items/deployments", self.url))
            .bearer_auth(token)
            .json(&record)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        body["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Deletes a record as the holder of `token`.
    pub async fn delete_record(&self, token: &str, id: &str) {
        let response = client()
            .delete(format!("{}/items/deployments/{id}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }

    /// Changes a record as the holder of `token`.
    pub async fn update_record(&self, token: &str, id: &str, fields: Value) {
        let response = client()
            .patch(format!("{}/items/deployments/{id}", self.url))
            .bearer_auth(token)
            .json(&fields)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }
}

impl LlpApi {
    /// The id of the holder of `token`.
    pub async fn user_id(&self, token: &str) -> String {
        let me: Value = client()
            .get(format!("{}/users/me", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        me["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Books `gpus` (slugs, as stored) from `start` to `end` for `users` (ids), for
    /// `deployment` if given, as the admin does in the LLP; returns the booking's id.
    /// Creates a course with `collaborators` and `members` (user ids); its id.
    pub async fn add_course(&self, name: &str, collaborators: &[String], members: &[String]) -> i64 {
        let people = |ids: &[String]| ids.iter().map(|u| json!({"directus_users_id": u})).collect::<Vec<_>>();
        let body = json!({"name": name, "collaborators": people(collaborators), "members": people(members)});
        self.create_item("courses", &body).await
    }

    /// Books `gpus` for course `course` (naming no user).
    pub async fn book_for_course(&self, gpus: Value, (start, end): (&str, &str), course: i64) -> i64 {
        let body = json!({"gpus": gpus, "start": start, "end": end, "course": course});
        self.create_item("gpu_reservations", &body).await
    }

    /// Creates an item of `collection` as the admin; its (integer) id.
    async fn create_item(&self, collection: &str, body: &Value) -> i64 {
        let response = client()
            .post(format!("{}/items/{collection}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        body["data"]["id"].as_i64().unwrap()
    }

    pub async fn book(&self, gpus: Value, start: &str, end: &str, deployment: Option<&str>, users: &[String]) -> i64 {
        let users: Vec<Value> = users.iter().map(|u| json!({"directus_users_id": u})).collect();
        let body = json!({"gpus": gpus, "start": start, "end": end, "deployment": deployment, "users": users});
        self.create_item("gpu_reservations", &body).await
    }
}

/// Tells the person waiting what is happening: written to standard error directly, which the
/// test runner does not capture (it captures `eprintln!`), so a long first install is seen.
fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "llp-k8s tests: {message}");
}
