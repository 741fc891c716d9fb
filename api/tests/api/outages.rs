//! Outage drills against real processes, under a steady load of commands and reads:
//!
//! - a private Postgres cluster (`initdb`, `pg_ctl`, PostGIS from the system install)
//!   stopped with `pg_ctl stop -m fast` for 10 s, then started again;
//! - a private `redis-server` killed with SIGKILL, started again 10 s later (empty).
//!
//! `prism-api` and `prism-worker` run as processes of their own. Neither is restarted. While a
//! dependency is down, `/ready` answers 503 naming it within a second, and every
//! request is answered — 2xx, or a `503 service-unavailable` problem within the
//! configured timeout, never 500 and never a hang. Afterwards every command that was
//! acknowledged with a 2xx is in the log exactly once (no command is in it twice),
//! the projections equal a fresh fold of the log (`verify_live`), and the caches
//! serve what the log says. The recovery times are printed and written to
//! `<target>/outage-drill-{postgres,redis}.txt` (cited by docs/ops/outages.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projections::Projection;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{free_port, PrivateRedis, TestDatabase, TestNamespace, WorkerProcess};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::helpers::{api_process, bodies, token, worker_process, ApiProcess};

/// `DATABASE_ACQUIRE_TIMEOUT_MS` of the drills' api: a request waits at most this
/// long for a database connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1000);
/// What a request may take beyond the acquire timeout (queueing, the HTTP round trip,
/// a loaded machine).
const SLACK: Duration = Duration::from_millis(1000);
/// How long the dependency stays down.
const OUTAGE: Duration = Duration::from_secs(10);
/// Commands a second.
const COMMANDS_PER_SECOND: u64 = 50;

// ---------------------------------------------------------------------------------
// A private Postgres cluster.

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A Postgres cluster of the test's own on a free port, in a temporary directory
/// owned by `postgres` (initdb refuses to run as root). Dropping it stops it
/// (immediate) and removes the directory.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a Postgres program as the `postgres` user when we are root.
fn postgres_program(program: &str, args: &[&str]) -> std::process::Output {
    let path = format!("{PG_BIN}/{program}");
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(&path)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

impl PrivatePostgres {
    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("prism-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if running_as_root() {
            let chowned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(chowned.success(), "chown the cluster dir to postgres");
        }
        let data = dir.join("data");
        let data = data.to_str().expect("utf-8 path");
        let out = postgres_program(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { dir, port };
        cluster.start_again();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let out = postgres_program(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                log.to_str().expect("utf-8 path"),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m <mode>`, waiting until it has stopped.
    fn stop(&self, mode: &str) {
        let out = postgres_program("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = postgres_program(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the `prism` database on the cluster and migrates it as an operator does
/// (`prism-api migrate up`); returns its URL.
async fn migrated_database(cluster: &PrivatePostgres) -> String {
    let admin = PgPool::connect(&cluster.url("postgres"))
        .await
        .expect("the private cluster answers");
    sqlx::query("CREATE DATABASE prism")
        .execute(&admin)
        .await
        .expect("create database");
    admin.close().await;
    let url = cluster.url("prism");
    let out = Command::new(env!("CARGO_BIN_EXE_prism-api"))
        .args(["migrate", "up"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("prism-api migrate runs");
    assert!(
        out.status.success(),
        "migrate up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    url
}

// ---------------------------------------------------------------------------------
// The processes under test.

/// `prism-worker` as a process, with the drills' timings.
async fn start_worker(database_url: &str, redis_url: &str, namespace: &str) -> WorkerProcess {
    worker_process(
        database_url,
        redis_url,
        namespace,
        &[
            ("DATABASE_MAX_CONNECTIONS", "5"),
            ("PROJECTION_BACKSTOP_MS", "500"),
            ("JOB_POLL_MS", "20"),
            ("METRICS_SAMPLE_MS", "500"),
        ],
    )
    .await
}

/// The api as a process with the drills' timeouts.
async fn start_api(database_url: &str, redis_url: &str, namespace: &str) -> ApiProcess {
    api_process(
        database_url,
        redis_url,
        namespace,
        &[
            ("DATABASE_MAX_CONNECTIONS", "10".into()),
            (
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                ACQUIRE_TIMEOUT.as_millis().to_string(),
            ),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "5000".into()),
            ("RATE_LIMIT_PER_MINUTE", "0".into()),
        ],
    )
    .await
}

// ---------------------------------------------------------------------------------
// The load, and what it saw.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Update,
    Detail,
    List,
    Ready,
}

impl Kind {
    fn is_command(self) -> bool {
        matches!(self, Self::Register | Self::Update)
    }
    fn is_read(self) -> bool {
        matches!(self, Self::Detail | Self::List)
    }
}

/// One request and its answer; times are from the drill's start.
#[derive(Debug, Clone)]
struct Seen {
    kind: Kind,
    request_id: String,
    started: Duration,
    took: Duration,
    /// 0: no answer within the client's 10 s (a hang) or a transport error.
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

impl Seen {
    fn ended(&self) -> Duration {
        self.started + self.took
    }
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    fn lost_a_race(&self) -> bool {
        self.status == 409
            && self.body["type"] == json!("urn:prism:problem:concurrent-modification")
    }
}

#[derive(Clone)]
struct Load {
    base: String,
    client: reqwest::Client,
    token: String,
    t0: Instant,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// A building every detail read is about (and one of those updated).
    seed: String,
    /// The buildings updated, in turn.
    updated: Vec<String>,
}

impl Load {
    async fn request(&self, kind: Kind, method: Method, path: &str, body: Option<Value>) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-request-id", &request_id)
            .timeout(Duration::from_secs(10));
        if kind != Kind::Ready {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = self.t0.elapsed();
        let clock = Instant::now();
        let (status, content_type, retry_after, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (content_type, retry_after) = (header("content-type"), header("retry-after"));
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (status, content_type, retry_after, body)
            }
            Err(error) => (0, None, None, json!(error.to_string())),
        };
        let seen = Seen {
            kind,
            request_id,
            started,
            took: clock.elapsed(),
            status,
            content_type,
            retry_after,
            body,
        };
        self.seen.lock().expect("seen").push(seen);
    }

    /// Commands at [`COMMANDS_PER_SECOND`] (three registrations to one update of one
    /// of four buildings, in turn), a detail and a list read every 100 ms (every other
    /// list read with `min_position`), `/ready` every 100 ms,
    /// each request on its own task so that a slow answer never slows the load.
    /// Runs until `stop` fires; returns once every request has been answered.
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / COMMANDS_PER_SECOND));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
            }
            n += 1;
            let load = self.clone();
            tasks.spawn(async move {
                if n.is_multiple_of(4) {
                    let target = &load.updated[(n / 4) as usize % load.updated.len()];
                    let path = format!("/v1/buildings/{target}");
                    let body = json!({"name": format!("Drill update {n}")});
                    load.request(Kind::Update, Method::PATCH, &path, Some(body))
                        .await;
                } else {
                    let body = bodies::building();
                    load.request(Kind::Register, Method::POST, "/v1/buildings", Some(body))
                        .await;
                }
            });
            if n.is_multiple_of(5) {
                let load = self.clone();
                tasks.spawn(async move {
                    let path = format!("/v1/buildings/{}", load.seed);
                    load.request(Kind::Detail, Method::GET, &path, None).await;
                });
                let load = self.clone();
                tasks.spawn(async move {
                    // Every other list read waits for the write before it (the read
                    // side's wait reads Postgres only: Redis down must not fail it).
                    let path = if n.is_multiple_of(10) {
                        "/v1/buildings?limit=5&min_position=1"
                    } else {
                        "/v1/buildings?limit=5"
                    };
                    load.request(Kind::List, Method::GET, path, None).await;
                });
                let load = self.clone();
                tasks.spawn(async move {
                    load.request(Kind::Ready, Method::GET, "/ready", None).await;
                });
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The outage, as the drill saw it.
struct Timeline {
    /// The dependency was down from here (the stop or kill returned)…
    down: Duration,
    /// …until the start began…
    restarting: Duration,
    /// …and it answered again from here.
    up: Duration,
}

fn name_of_failing_checks(body: &Value) -> Vec<String> {
    body["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["ok"] == json!(false))
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// What every drill asserts about the answers, and the figures it reports.
struct Verdict {
    lines: Vec<String>,
}

impl Verdict {
    fn check(seen: &[Seen], timeline: &Timeline, dependency: &str) -> Self {
        let mut lines = Vec::new();
        let bound = ACQUIRE_TIMEOUT + SLACK;
        // Nothing is ever a 500, another 5xx, a hang or a dropped connection.
        let bad: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.status == 0 || (s.status >= 500 && s.status != 503))
            .collect();
        assert!(
            bad.is_empty(),
            "{} answers were neither 2xx nor 503 (first: {:?})",
            bad.len(),
            bad.first()
        );
        // Every 503 of an operation is a service-unavailable problem with Retry-After,
        // and comes within the acquire timeout (and slack).
        for s in seen
            .iter()
            .filter(|s| s.status == 503 && s.kind != Kind::Ready)
        {
            assert_eq!(
                s.content_type.as_deref(),
                Some("application/problem+json"),
                "{s:?}"
            );
            assert_eq!(
                s.body["type"],
                json!("urn:prism:problem:service-unavailable"),
                "{s:?}"
            );
            assert!(s.retry_after.is_some(), "a 503 carries Retry-After: {s:?}");
            assert!(s.took <= bound, "a 503 took {} ({s:?})", secs(s.took));
        }
        // Nothing else is answered 4xx (the load sends only good requests) but for
        // `409 concurrent-modification`: updates of one building that keep losing the
        // race to each other (a burst of them right after the restart, say). Nothing
        // is recorded for those; the client retries.
        let refused: Vec<&Seen> = seen
            .iter()
            .filter(|s| (400..500).contains(&s.status) && !s.lost_a_race())
            .collect();
        assert!(refused.is_empty(), "refused: {:?}", refused.first());
        // Any request that started while the dependency was down is answered within
        // the bound.
        let during: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.started >= timeline.down && s.ended() <= timeline.restarting)
            .collect();
        let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
        assert!(
            slowest <= bound,
            "a request took {} during the outage",
            secs(slowest)
        );
        // `/ready` says which dependency failed, within a second.
        let ready_during: Vec<&&Seen> = during.iter().filter(|s| s.kind == Kind::Ready).collect();
        assert!(
            !ready_during.is_empty(),
            "/ready was asked during the outage"
        );
        for s in &ready_during {
            assert_eq!(s.status, 503, "/ready during the outage: {s:?}");
            assert!(
                s.took < Duration::from_secs(1),
                "/ready took {}",
                secs(s.took)
            );
            assert_eq!(
                name_of_failing_checks(&s.body),
                [dependency],
                "/ready names the dependency: {s:?}"
            );
        }
        let count = |kind: fn(&Seen) -> bool| seen.iter().filter(|s| kind(s)).count();
        let commands = count(|s| s.kind.is_command());
        let acknowledged = count(|s| s.kind.is_command() && s.ok());
        let command_503 = count(|s| s.kind.is_command() && s.status == 503);
        let reads = count(|s| s.kind.is_read());
        let read_ok = count(|s| s.kind.is_read() && s.ok());
        let read_503 = count(|s| s.kind.is_read() && s.status == 503);
        let races = count(Seen::lost_a_race);
        let slowest_ready = ready_during
            .iter()
            .map(|s| s.took)
            .max()
            .unwrap_or_default();
        let slowest_503 = seen
            .iter()
            .filter(|s| s.status == 503 && s.kind != Kind::Ready)
            .map(|s| s.took)
            .max()
            .unwrap_or_default();
        // Recovery: the first 2xx of each kind that started after the restart began,
        // measured from the start command (the server's own start-up included).
        let first_ok_after = |wanted: fn(Kind) -> bool| {
            seen.iter()
                .filter(|s| wanted(s.kind) && s.ok() && s.started >= timeline.restarting)
                .map(|s| s.ended() - timeline.restarting)
                .min()
        };
        let command_recovery = first_ok_after(Kind::is_command).expect("a command succeeded after");
        let read_recovery = first_ok_after(Kind::is_read).expect("a read succeeded after");
        let ready_recovery =
            first_ok_after(|k| k == Kind::Ready).expect("/ready answered 200 after");
        // Everything recovered for good, without a restart: no request that started 3 s
        // after the dependency returned failed.
        let late_failures: Vec<&Seen> = seen
            .iter()
            .filter(|s| {
                s.started >= timeline.up + Duration::from_secs(3) && !s.ok() && !s.lost_a_race()
            })
            .collect();
        assert!(
            late_failures.is_empty(),
            "{} requests failed 3 s after the recovery (first: {:?})",
            late_failures.len(),
            late_failures.first()
        );
        lines.push(format!(
            "{dependency} down for {}",
            secs(timeline.restarting - timeline.down)
        ));
        lines.push(format!(
            "commands: {commands} sent, {acknowledged} acknowledged (2xx), {command_503} answered 503, {races} answered 409 concurrent-modification, 0 answered 500"
        ));
        lines.push(format!(
            "reads: {reads} sent, {read_ok} answered 2xx, {read_503} answered 503, 0 answered 500"
        ));
        lines.push(format!(
            "slowest 503: {}; slowest /ready while down: {} ({} asked, all 503 naming {dependency})",
            secs(slowest_503),
            secs(slowest_ready),
            ready_during.len()
        ));
        lines.push(format!(
            "recovery from the start command ({dependency} answered after {}): first 2xx command {}, first 2xx read {}, /ready 200 {}",
            secs(timeline.up - timeline.restarting),
            secs(command_recovery),
            secs(read_recovery),
            secs(ready_recovery)
        ));
        Self { lines }
    }

    /// Prints the figures and writes them beside the build (`<target>/<file>`).
    fn report(&self, file: &str) {
        let text = self.lines.join("\n") + "\n";
        println!("{text}");
        let target = Path::new(env!("CARGO_BIN_EXE_prism-api"))
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let _ = std::fs::write(target.join(file), text);
    }
}

/// Every acknowledged command's event is in the log once, as acknowledged, and no
/// request's events are in it twice.
async fn assert_exactly_once(pool: &PgPool, seen: &[Seen]) -> usize {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT metadata::jsonb->>'request_id', min(aggregate_id), max(sequence), count(*)
           FROM events GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("events by request");
    let by_request: std::collections::HashMap<&str, (&str, i64, i64)> = rows
        .iter()
        .map(|(request, id, sequence, count)| (request.as_str(), (id.as_str(), *sequence, *count)))
        .collect();
    let mut acknowledged = 0;
    for s in seen.iter().filter(|s| s.kind.is_command()) {
        let logged = by_request.get(s.request_id.as_str());
        if let Some((_, _, count)) = logged {
            assert_eq!(
                *count, 1,
                "request {} is in the log {count} times",
                s.request_id
            );
        }
        if s.ok() {
            acknowledged += 1;
            let (id, sequence, _) =
                logged.unwrap_or_else(|| panic!("acknowledged command lost: {s:?}"));
            assert_eq!(Some(*id), s.body["id"].as_str(), "{s:?}");
            assert_eq!(Some(*sequence as u64), s.body["version"].as_u64(), "{s:?}");
        }
    }
    acknowledged
}

/// Waits until every projection has applied every event and the cache outbox is
/// empty (the worker recovered), then checks each projection against a fresh fold of
/// the log.
async fn assert_projections_converge(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = projections::status(pool).await.expect("status");
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_refresh_outbox")
            .fetch_one(pool)
            .await
            .expect("outbox");
        if statuses.iter().all(|s| s.lag_events == 0) && outbox == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not catch up: {:?}",
            statuses
                .iter()
                .map(|s| (s.name, s.lag_events))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for projection in Projection::ALL {
        let verdict = projections::rebuild::verify_live(pool, projection)
            .await
            .expect("verification runs");
        assert!(
            verdict.is_ok(),
            "{} differs from a fresh fold of the log: {:?}",
            projection.name(),
            verdict.err()
        );
    }
}

/// The seed building's detail, as the api serves it, carries the log's version (the
/// cache did not keep a stale view through the outage).
async fn assert_detail_is_current(api: &ApiProcess, pool: &PgPool, seed: &str) {
    let version: i64 =
        sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
            .bind(seed)
            .fetch_one(pool)
            .await
            .expect("seed version");
    let detail: Value = reqwest::Client::new()
        .get(format!("{}/v1/buildings/{seed}", api.base))
        .bearer_auth(token())
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["version"], json!(version), "{detail:#}");
}

async fn register_seed(api: &ApiProcess) -> String {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/v1/buildings", api.base))
        .bearer_auth(token())
        .json(&bodies::building())
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    reply["id"].as_str().expect("id").to_owned()
}

/// Runs the load around `outage` (which takes the dependency down, waits, and brings
/// it back, reporting when): 3 s before, the outage, 6 s after.
async fn drill<F, Fut>(api: &ApiProcess, seed: &str, outage: F) -> (Vec<Seen>, Timeline)
where
    F: FnOnce(Instant) -> Fut,
    Fut: std::future::Future<Output = Timeline>,
{
    let t0 = Instant::now();
    let load = Load {
        base: api.base.clone(),
        client: reqwest::Client::new(),
        token: token(),
        t0,
        seen: Arc::new(Mutex::new(Vec::new())),
        seed: seed.to_owned(),
        updated: vec![
            seed.to_owned(),
            register_seed(api).await,
            register_seed(api).await,
            register_seed(api).await,
        ],
    };
    let seen = Arc::clone(&load.seen);
    let (stop, stopping) = oneshot::channel();
    let running = tokio::spawn(load.run(stopping));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let timeline = outage(t0).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _ = stop.send(());
    running.await.expect("the load ran");
    let seen = seen.lock().expect("seen").clone();
    (seen, timeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_for_10_s_under_load() {
    let cluster = Arc::new(PrivatePostgres::start());
    let database_url = migrated_database(&cluster).await;
    let redis = TestNamespace::new();
    let api = start_api(&database_url, redis.url(), redis.name()).await;
    let _worker = start_worker(&database_url, redis.url(), redis.name()).await;
    let seed = register_seed(&api).await;

    let pg = Arc::clone(&cluster);
    let (seen, timeline) = drill(&api, &seed, move |t0| async move {
        let stopping = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || stopping.stop("fast"))
            .await
            .expect("pg_ctl stop");
        let down = t0.elapsed();
        tokio::time::sleep(OUTAGE).await;
        let restarting = t0.elapsed();
        tokio::task::spawn_blocking(move || pg.start_again())
            .await
            .expect("pg_ctl start");
        Timeline {
            down,
            restarting,
            up: t0.elapsed(),
        }
    })
    .await;

    let verdict = Verdict::check(&seen, &timeline, "postgres");
    let command_503 = seen
        .iter()
        .filter(|s| s.kind.is_command() && s.status == 503)
        .count();
    assert!(
        command_503 > 0,
        "commands sent while Postgres was down are answered 503"
    );
    let pool = PgPool::connect(&database_url).await.expect("pool");
    let acknowledged = assert_exactly_once(&pool, &seen).await;
    assert!(acknowledged > 0);
    assert_projections_converge(&pool).await;
    assert_detail_is_current(&api, &pool, &seed).await;
    let mut verdict = verdict;
    verdict.lines.push(format!(
        "log: {acknowledged} of {acknowledged} acknowledged commands present exactly once; projections equal a fresh fold"
    ));
    verdict.report("outage-drill-postgres.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_under_load() {
    let db = TestDatabase::migrated().await;
    let redis = Arc::new(Mutex::new(PrivateRedis::start()));
    let redis_url = redis.lock().expect("redis").url.clone();
    let namespace = TestNamespace::on(&redis_url);
    let api = start_api(db.url(), &redis_url, namespace.name()).await;
    let _worker = start_worker(db.url(), &redis_url, namespace.name()).await;
    let seed = register_seed(&api).await;

    let server = Arc::clone(&redis);
    let (seen, timeline) = drill(&api, &seed, move |t0| async move {
        // SIGKILL: nothing saved, every connection dropped.
        server.lock().expect("redis").stop();
        let down = t0.elapsed();
        tokio::time::sleep(OUTAGE).await;
        let restarting = t0.elapsed();
        tokio::task::spawn_blocking(move || server.lock().expect("redis").restart())
            .await
            .expect("redis-server starts");
        Timeline {
            down,
            restarting,
            up: t0.elapsed(),
        }
    })
    .await;

    let verdict = Verdict::check(&seen, &timeline, "redis");
    // Redis holds no truth: without it, commands and reads go on.
    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.kind != Kind::Ready && !s.ok())
        .collect();
    assert!(
        failed.is_empty(),
        "{} commands or reads failed without Redis (first: {:?})",
        failed.len(),
        failed.first()
    );
    let pool = PgPool::connect(db.url()).await.expect("pool");
    let acknowledged = assert_exactly_once(&pool, &seen).await;
    assert_projections_converge(&pool).await;
    assert_detail_is_current(&api, &pool, &seed).await;
    // The job queue works again: a command after the restart is projected, and its
    // wake-up job taken, well before the backstop would have to.
    let jobs_seen = assert_wake_ups_flow(&api, &redis_url, namespace.name()).await;
    let mut verdict = verdict;
    verdict.lines.push(format!(
        "log: {acknowledged} of {acknowledged} acknowledged commands present exactly once; projections equal a fresh fold"
    ));
    verdict.lines.push(format!(
        "job queue after the restart: {jobs_seen} catch-up job(s) done in the restarted Redis"
    ));
    verdict.report("outage-drill-redis.txt");
}

/// After the restart, commands' wake-ups are pushed to the restarted (empty) Redis and
/// a worker takes them: returns how many catch-up jobs it has seen done.
async fn assert_wake_ups_flow(api: &ApiProcess, redis_url: &str, namespace: &str) -> i64 {
    let mut redis = redis::Client::open(redis_url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers");
    let done_key = format!("{}:done", projections::jobs::catch_up_queue(namespace));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: i64 = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(&mut redis)
            .await
            .unwrap_or(0);
        if done > 0 {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "no catch-up job was done in the restarted Redis ({done_key})"
        );
        register_seed(api).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
