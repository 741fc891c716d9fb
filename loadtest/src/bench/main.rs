//! `make bench`: every hot path of Prism measured in one run, each beside a baseline
//! from the same run on the same machine — these machines are shared and noisy, so
//! the ratios are what to compare between runs (docs/performance.md).
//!
//! The run starts its own release-built `prism-api` and `prism-worker` on a private
//! database and Redis namespace, and measures with its own load generator ([`load`]):
//!
//! - baselines: an empty poem handler (this program's `baseline-server`, 64
//!   connections) and Postgres's raw single-row insert with commit (`pgbench`, 16 and 1
//!   clients);
//! - commands: `POST /v1/buildings` and `POST /v1/comps/lease` at 16 connections;
//! - reads at each size (default 10k and 100k buildings, one lease each): cached
//!   building detail and first list page, `/health`, `near`, `bbox`, `q=` and market
//!   statistics;
//! - the read side: catch-up rates of `catalog` and `audit` at each size, a rebuild of
//!   the whole history (default 1M events) by `prism-worker rebuild`, commit-to-visible
//!   lag at a steady 500 commands/s, and a rebuild by the live worker while commands
//!   flow at 100/s with the live catalog's lag meanwhile;
//! - resident memory of the api and the worker under all of it.
//!
//! Settings (environment): `PRISM_BENCH_DATABASE_URL` (a superuser URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `PRISM_BENCH_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `BENCH_SECONDS` per measurement (default 8),
//! `BENCH_SIZES` (buildings, default `10000,100000`), `BENCH_HISTORY_EVENTS` (the
//! replayed history, default 1000000), `BENCH_LAG_RATE` (default 500),
//! `BENCH_PHASES` (default `commands,sizes,lag,history,live-rebuild`: run only some),
//! `BENCH_REPORT` (where the Markdown report is written too) and
//! `BENCH_KEEP_DATABASE=1` (keep the seeded database, for profiling afterwards).
//!
//! `prism-bench soak` is `make soak` instead: a steady load for ten minutes and the
//! processes' memory throughout ([`soak`]).

mod load;
mod report;
mod seed;
mod soak;
mod stack;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use report::{Report, Row};
use stack::{Bins, Stack};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name} is not a valid value: {raw:?}")),
        _ => Ok(default),
    }
}

#[derive(Debug, Clone)]
struct Settings {
    admin_url: String,
    redis_url: String,
    seconds: Duration,
    warmup: Duration,
    sizes: Vec<i64>,
    history_events: i64,
    lag_rate: u32,
    report: Option<String>,
    /// The parts to run (`BENCH_PHASES`): commands, sizes, lag, history, live-rebuild.
    phases: Vec<String>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let sizes: String = env_or("BENCH_SIZES", "10000,100000".to_owned())?;
        let sizes = sizes
            .split(',')
            .map(|s| s.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .context("BENCH_SIZES is a comma-separated list of building counts")?;
        Ok(Self {
            admin_url: env_or(
                "PRISM_BENCH_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            )?,
            redis_url: env_or("PRISM_BENCH_REDIS_URL", "redis://127.0.0.1:6379".to_owned())?,
            seconds: Duration::from_secs(env_or("BENCH_SECONDS", 8u64)?),
            warmup: Duration::from_secs(1),
            sizes,
            history_events: env_or("BENCH_HISTORY_EVENTS", 1_000_000i64)?,
            lag_rate: env_or("BENCH_LAG_RATE", 500u32)?,
            report: std::env::var("BENCH_REPORT").ok(),
            phases: env_or(
                "BENCH_PHASES",
                "commands,sizes,lag,history,live-rebuild".to_owned(),
            )?
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect(),
        })
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

fn ok_or_304(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::NOT_MODIFIED
}

fn created(status: StatusCode) -> bool {
    status == StatusCode::CREATED
}

/// Samples the resident memory of the api and the worker while the run goes on.
#[derive(Debug, Default)]
struct Memory {
    api_max: AtomicU64,
    worker_max: AtomicU64,
}

/// Pids to sample, kept current as the worker restarts.
#[derive(Debug, Default)]
struct Pids {
    api: AtomicU64,
    worker: AtomicU64,
}

impl Pids {
    fn update(&self, stack: &Stack) {
        self.api.store(
            stack.api.as_ref().map_or(0, |p| u64::from(p.pid())),
            Ordering::Relaxed,
        );
        self.worker.store(
            stack.worker.as_ref().map_or(0, |p| u64::from(p.pid())),
            Ordering::Relaxed,
        );
    }
}

/// The resident memory of the process `pid` holds (none while it is 0: not running).
fn rss(pid: &AtomicU64) -> Option<u64> {
    let pid = pid.load(Ordering::Relaxed) as u32;
    (pid != 0).then(|| stack::rss_bytes(pid)).flatten()
}

/// Logs the api's and the worker's resident memory now, to see which phase grows them.
fn log_memory(pids: &Pids, after: &str) {
    let mb = |pid: &AtomicU64| rss(pid).map_or(0.0, |bytes| bytes as f64 / (1024.0 * 1024.0));
    eprintln!(
        "[bench] memory after {after}: api {:.0} MB, worker {:.0} MB",
        mb(&pids.api),
        mb(&pids.worker)
    );
}

fn spawn_memory_sampler(pids: Arc<Pids>, memory: Arc<Memory>) {
    tokio::spawn(async move {
        loop {
            for (name, pid, max) in [
                ("api", &pids.api, &memory.api_max),
                ("worker", &pids.worker, &memory.worker_max),
            ] {
                if let Some(rss) = rss(pid) {
                    let before = max.fetch_max(rss, Ordering::Relaxed);
                    // Each new peak 10 MB above the last one reported, to find its phase.
                    if rss / (10 << 20) > before / (10 << 20) {
                        eprintln!(
                            "[bench] {} new {name} peak: {} MB",
                            chrono::Utc::now().format("%H:%M:%S"),
                            rss >> 20
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The empty poem handler the api's throughput is compared with.
async fn baseline_server(port: u16) -> anyhow::Result<()> {
    #[poem::handler]
    fn empty() -> &'static str {
        ""
    }
    poem::Server::new(poem::listener::TcpListener::bind(format!(
        "127.0.0.1:{port}"
    )))
    .run(poem::Route::new().at("/", poem::get(empty)))
    .await?;
    Ok(())
}

/// Raw single-row inserts with commit, measured by pgbench with `clients` clients.
fn pgbench_insert_tps(url: &str, clients: u32, seconds: Duration) -> anyhow::Result<f64> {
    let script =
        std::env::temp_dir().join(format!("prism-bench-insert-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO bench_insert (payload) VALUES ('{\"i\": 1}');\n",
    )?;
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T"])
        .arg(seconds.as_secs().to_string())
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .context("pgbench is missing (Debian: postgresql-client)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench's output: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// Waits until both projections reached the log's head; returns, per projection, the
/// time from `since` until it did.
async fn wait_for_projections(
    pool: &PgPool,
    since: Instant,
) -> anyhow::Result<HashMap<String, Duration>> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(pool)
        .await?;
    let mut reached = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    while reached.len() < 2 {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, position FROM projection_checkpoints WHERE name IN ('catalog', 'audit')",
        )
        .fetch_all(pool)
        .await?;
        for (name, position) in rows {
            if position >= head {
                reached.entry(name).or_insert_with(|| since.elapsed());
            }
        }
        if Instant::now() > deadline {
            bail!("projections did not reach position {head}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(reached)
}

fn building_body(n: u64) -> String {
    let (lat0, lon0, lat_span, lon_span) = seed::AREA;
    let lat = lat0 + ((n * 7919) % 10_000) as f64 / 10_000.0 * lat_span;
    let lon = lon0 + ((n * 104_729) % 10_000) as f64 / 10_000.0 * lon_span;
    let mut body = testkit::bodies::building_at(&format!("Load Tower {n}"), lat, lon);
    body["submarket"] = json!("Submarket 00");
    body.to_string()
}

/// What a lag measurement saw.
struct Lag {
    accepted: u64,
    visible: usize,
    failures: u64,
    /// Sorted lags in microseconds.
    lags_us: Vec<u32>,
}

impl Lag {
    fn max_ms(&self) -> f64 {
        self.lags_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }

    fn row(&self, path: &str) -> Row {
        Row {
            path: format!(
                "{path} ({} accepted, {} visible, {} failed)",
                self.accepted, self.visible, self.failures
            ),
            prism: format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                load::percentile_us(&self.lags_us, 50.0) as f64 / 1000.0,
                load::percentile_us(&self.lags_us, 95.0) as f64 / 1000.0,
                load::percentile_us(&self.lags_us, 99.0) as f64 / 1000.0,
                self.max_ms()
            ),
            baseline: String::new(),
            ratio: None,
            goal: String::new(),
            met: None,
        }
    }
}

/// Registers buildings at `rate` per second for `duration` or until `stop`; for each,
/// the time from its answer (after its commit) to its row in the catalog's `buildings`.
async fn measure_lag(
    stack: &Stack,
    pool: &PgPool,
    rate: u32,
    duration: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Lag> {
    let host = stack.host();
    let token = stack.token.clone();
    let offset = 1_000_000_000u64 + u64::from(rand_offset());
    let make: load::MakeRequest = Arc::new(move |n| {
        load::request(
            "POST",
            &host,
            "/v1/buildings",
            Some(&token),
            Some(building_body(offset + n)),
        )
    });
    let answered: Arc<Mutex<HashMap<uuid::Uuid, Instant>>> = Arc::default();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<load::Answer>();
    let collector = {
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let mut accepted = 0u64;
            while let Some(answer) = receiver.recv().await {
                if answer.status.as_u16() == 201 {
                    accepted += 1;
                }
                let id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().and_then(|s| s.parse().ok()));
                if let Some(id) = id {
                    answered.lock().expect("lock").insert(id, answer.answered);
                }
            }
            accepted
        })
    };
    let visible: Arc<Mutex<HashMap<uuid::Uuid, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (answered, visible, done, pool) = (
            Arc::clone(&answered),
            Arc::clone(&visible),
            Arc::clone(&done),
            pool.clone(),
        );
        tokio::spawn(async move {
            loop {
                // The oldest answers first (the projector applies in order), a bounded
                // number per look: the look's own cost stays an index probe per id
                // instead of a scan of the table.
                let pending: Vec<uuid::Uuid> = {
                    let answered = answered.lock().expect("lock");
                    let visible = visible.lock().expect("lock");
                    let mut pending: Vec<(Instant, uuid::Uuid)> = answered
                        .iter()
                        .filter(|(id, _)| !visible.contains_key(id))
                        .map(|(id, at)| (*at, *id))
                        .collect();
                    pending.sort_unstable();
                    pending.truncate(256);
                    pending.into_iter().map(|(_, id)| id).collect()
                };
                if pending.is_empty() && done.load(Ordering::Relaxed) {
                    return;
                }
                if !pending.is_empty() {
                    let seen: Vec<uuid::Uuid> =
                        sqlx::query_scalar("SELECT id FROM buildings WHERE id = ANY($1)")
                            .bind(&pending)
                            .fetch_all(&pool)
                            .await
                            .unwrap_or_default();
                    let now = Instant::now();
                    let mut visible = visible.lock().expect("lock");
                    for id in seen {
                        visible.entry(id).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let failures = tokio::select! {
        failures = load::open_loop(stack.api_addr, rate, duration, make, sender) => failures?,
        () = stop => 0,
    };
    let accepted = collector.await?;
    done.store(true, Ordering::Relaxed);
    let abort = poller.abort_handle();
    if tokio::time::timeout(Duration::from_secs(30), poller)
        .await
        .is_err()
    {
        // Rows still missing after half a minute are reported as not visible; the
        // poller must not keep querying through the phases that follow.
        abort.abort();
    }
    let answered = answered.lock().expect("lock").clone();
    let visible = visible.lock().expect("lock").clone();
    let mut lags_us: Vec<u32> = answered
        .iter()
        .filter_map(|(id, at)| {
            visible.get(id).map(|seen| {
                u32::try_from(seen.saturating_duration_since(*at).as_micros()).unwrap_or(u32::MAX)
            })
        })
        .collect();
    lags_us.sort_unstable();
    Ok(Lag {
        accepted,
        visible: lags_us.len(),
        failures,
        lags_us,
    })
}

/// A different numbering for each lag measurement's buildings.
fn rand_offset() -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) as u32) * 10_000_000
}

/// Prism under test, what the run measured so far, and the baselines.
struct Run {
    settings: Settings,
    stack: Stack,
    pool: PgPool,
    pids: Arc<Pids>,
    report: Report,
    empty_rps: f64,
    raw_insert: f64,
}

impl Run {
    /// A size's data: buildings and lease comps seeded with the worker stopped, then caught
    /// up by a freshly started worker (the catch-up rates).
    async fn grow(
        &mut self,
        buildings: (i64, i64),
        comps: (i64, i64),
        label: &str,
    ) -> anyhow::Result<()> {
        let (stack, pool, pids, raw_insert) =
            (&mut self.stack, &self.pool, &self.pids, self.raw_insert);
        stack.stop_worker();
        pids.update(stack);
        seed::buildings(pool, buildings.0, buildings.1).await?;
        seed::comps(pool, comps.0, comps.1, buildings.1).await?;
        sqlx::query("ANALYZE").execute(pool).await?;
        let events = (buildings.1 - buildings.0) + (comps.1 - comps.0);
        let started = Instant::now();
        stack.start_worker().await?;
        pids.update(stack);
        let reached = wait_for_projections(pool, started).await?;
        // Fresh statistics for the planner, as autovacuum keeps them in production.
        sqlx::query("ANALYZE").execute(pool).await?;
        for name in ["catalog", "audit"] {
            let elapsed = reached[name];
            let rate = events as f64 / elapsed.as_secs_f64();
            self.report.push(Row {
                path: format!("`{name}` catch-up of {events} new events ({label})"),
                prism: format!("{rate:.0} events/s ({:.1} s)", elapsed.as_secs_f64()),
                baseline: format!("raw insert {raw_insert:.0} rows/s"),
                ratio: Some(rate / raw_insert),
                goal: String::new(),
                met: None,
            });
        }
        Ok(())
    }

    /// Every read of one size.
    async fn reads(&mut self, label: &str) -> anyhow::Result<()> {
        let (stack, pool, settings, report, empty_rps) = (
            &self.stack,
            &self.pool,
            &self.settings,
            &mut self.report,
            self.empty_rps,
        );
        let addr = stack.api_addr;
        let host = stack.host();
        let token = stack.token.clone();
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM buildings ORDER BY md5(id::text) LIMIT 1000")
                .fetch_all(pool)
                .await?;
        anyhow::ensure!(!ids.is_empty(), "no buildings to read");
        // Warm the cache: every id once.
        for id in &ids {
            let request = load::request(
                "GET",
                &host,
                &format!("/v1/buildings/{id}"),
                Some(&token),
                None,
            );
            load::once(addr, request).await?;
        }
        let ids = Arc::new(ids);
        let detail: load::MakeRequest = {
            let (ids, host, token) = (Arc::clone(&ids), host.clone(), token.clone());
            Arc::new(move |n| {
                let id = ids[(n as usize * 7919) % ids.len()];
                load::request(
                    "GET",
                    &host,
                    &format!("/v1/buildings/{id}"),
                    Some(&token),
                    None,
                )
            })
        };
        let outcome = load::closed_loop(
            addr,
            64,
            settings.warmup,
            settings.seconds,
            detail,
            ok_or_304,
        )
        .await?;
        report.throughput(
            &format!("cached `GET /v1/buildings/{{id}}`, 64 connections ({label})"),
            &outcome,
            "empty poem handler",
            empty_rps,
            Some((0.35, Some(5.0))),
        );
        log_memory(&self.pids, &format!("cached details ({label})"));
        let page: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |_| {
                load::request("GET", &host, "/v1/buildings?limit=25", Some(&token), None)
            })
        };
        let outcome =
            load::closed_loop(addr, 64, settings.warmup, settings.seconds, page, ok_or_304).await?;
        report.throughput(
            &format!(
                "cached first list page `GET /v1/buildings?limit=25`, 64 connections ({label})"
            ),
            &outcome,
            "empty poem handler",
            empty_rps,
            None,
        );
        log_memory(&self.pids, &format!("cached list pages ({label})"));
        let (lat0, lon0, lat_span, lon_span) = seed::AREA;
        let point = move |n: u64, salt: u64| {
            let x = ((n.wrapping_mul(2_654_435_761).wrapping_add(salt * 97)) % 10_000) as f64
                / 10_000.0;
            let y =
                ((n.wrapping_mul(40_503).wrapping_add(salt * 31 + 7)) % 10_000) as f64 / 10_000.0;
            (
                lat0 + 0.05 + y * (lat_span - 0.1),
                lon0 + 0.05 + x * (lon_span - 0.1),
            )
        };
        let near: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                let (lat, lon) = point(n, 1);
                load::request(
                    "GET",
                    &host,
                    &format!("/v1/buildings?near={lat:.5},{lon:.5}&radius_m=2000"),
                    Some(&token),
                    None,
                )
            })
        };
        let outcome =
            load::closed_loop(addr, 16, settings.warmup, settings.seconds, near, ok_or_304).await?;
        report.latency(
            &format!("`GET /v1/buildings?near=…&radius_m=2000`, 16 connections ({label})"),
            &outcome,
            empty_rps,
            20.0,
        );
        let bbox: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                let (lat, lon) = point(n, 2);
                load::request(
                    "GET",
                    &host,
                    &format!(
                        "/v1/buildings?bbox={:.5},{:.5},{:.5},{:.5}",
                        lon - 0.012,
                        lat - 0.009,
                        lon + 0.012,
                        lat + 0.009
                    ),
                    Some(&token),
                    None,
                )
            })
        };
        let outcome =
            load::closed_loop(addr, 16, settings.warmup, settings.seconds, bbox, ok_or_304).await?;
        report.latency(
            &format!("`GET /v1/buildings?bbox=…` (2 × 2 km), 16 connections ({label})"),
            &outcome,
            empty_rps,
            20.0,
        );
        let search: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                // A word and part of a number: few repeats, so few answers come from the cache.
                let word = seed::NAME_WORDS[(n as usize * 13) % seed::NAME_WORDS.len()];
                let digits = 10 + (n.wrapping_mul(7919) % 990);
                load::request(
                    "GET",
                    &host,
                    &format!("/v1/buildings?q={word}%20{digits}&limit=25"),
                    Some(&token),
                    None,
                )
            })
        };
        let outcome = load::closed_loop(
            addr,
            16,
            settings.warmup,
            settings.seconds,
            search,
            ok_or_304,
        )
        .await?;
        report.latency(
            &format!("`GET /v1/buildings?q=<word> <digits>`, 16 connections ({label})"),
            &outcome,
            empty_rps,
            20.0,
        );
        let stats: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                let submarket = n % 20;
                load::request(
                    "GET",
                    &host,
                    &format!("/v1/market/stats?submarket=Submarket%20{submarket:02}"),
                    Some(&token),
                    None,
                )
            })
        };
        let outcome = load::closed_loop(
            addr,
            16,
            settings.warmup,
            settings.seconds,
            stats,
            ok_or_304,
        )
        .await?;
        report.latency(
            &format!("`GET /v1/market/stats?submarket=…`, 16 connections ({label})"),
            &outcome,
            empty_rps,
            20.0,
        );
        let health: load::MakeRequest = {
            let host = host.clone();
            Arc::new(move |_| load::request("GET", &host, "/health", None, None))
        };
        let outcome = load::closed_loop(
            addr,
            64,
            settings.warmup,
            settings.seconds,
            health,
            ok_or_304,
        )
        .await?;
        report.throughput(
            &format!("`GET /health`, 64 connections ({label})"),
            &outcome,
            "empty poem handler",
            empty_rps,
            Some((0.6, None)),
        );
        Ok(())
    }

    /// Commands at a steady rate for twice the measurement time; for each, the time from
    /// its answer (after its commit) to its building row in the catalog projection.
    async fn lag(&mut self) -> anyhow::Result<()> {
        let seconds = Duration::from_secs(self.settings.seconds.as_secs().max(10) * 2);
        let rate = self.settings.lag_rate;
        let lag = measure_lag(
            &self.stack,
            &self.pool,
            rate,
            seconds,
            std::future::pending(),
        )
        .await?;
        self.report.push(lag.row(&format!(
            "commit-to-visible lag, `POST /v1/buildings` at {rate}/s for {} s",
            seconds.as_secs()
        )));
        Ok(())
    }

    /// A rebuild of `catalog` run by the live worker (asked for through the admin API)
    /// while commands flow at a fifth of the lag rate: the rebuild's rate beside the raw
    /// insert rate, and the commit-to-visible lag of the live catalog meanwhile.
    async fn rebuild_under_load(&mut self) -> anyhow::Result<()> {
        let (stack, pool) = (&self.stack, &self.pool);
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?;
        let (status, body) = load::once(
            stack.api_addr,
            load::request(
                "POST",
                &stack.host(),
                "/v1/admin/projections/catalog/rebuilds",
                Some(&stack.token),
                None,
            ),
        )
        .await?;
        anyhow::ensure!(status.as_u16() == 202, "rebuild request: {status} {body:?}");
        let id: uuid::Uuid = serde_json::from_slice::<serde_json::Value>(&body)?["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("the rebuild's id")?;
        let started = Instant::now();
        let finished = {
            let pool = pool.clone();
            async move {
                loop {
                    let state: Option<String> =
                        sqlx::query_scalar("SELECT state FROM projection_rebuilds WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&pool)
                            .await
                            .ok()
                            .flatten();
                    if matches!(state.as_deref(), Some("swapped" | "failed" | "cancelled")) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let rate = (self.settings.lag_rate / 5).max(1);
        let lag = measure_lag(stack, pool, rate, Duration::from_secs(3600), finished).await?;
        let elapsed = started.elapsed();
        let (state, applied): (String, i64) =
            sqlx::query_as("SELECT state, events_applied FROM projection_rebuilds WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        let rebuild_rate = applied as f64 / elapsed.as_secs_f64();
        self.report.push(Row {
            path: format!(
                "rebuild of `catalog` by the live worker ({events} events) while commands flow at {rate}/s"
            ),
            prism: format!("{state}: {rebuild_rate:.0} events/s ({:.1} s)", elapsed.as_secs_f64()),
            baseline: format!("raw insert {:.0} rows/s", self.raw_insert),
            ratio: Some(rebuild_rate / self.raw_insert),
            goal: String::new(),
            met: None,
        });
        let mut row = lag.row(&format!(
            "commit-to-visible lag in the live `catalog` during that rebuild, at {rate}/s"
        ));
        row.goal = "max < 1 s".into();
        row.met = Some(lag.max_ms() < 1000.0 && lag.visible as u64 == lag.accepted);
        self.report.push(row);
        Ok(())
    }

    /// `prism-worker rebuild catalog` over the whole history, with the live worker stopped.
    async fn replay(&mut self) -> anyhow::Result<()> {
        let raw_insert = self.raw_insert;
        self.stack.stop_worker();
        self.pids.update(&self.stack);
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let started = Instant::now();
        let output = self.stack.worker_command(&["rebuild", "catalog"])?;
        let elapsed = started.elapsed();
        eprintln!("[bench] {}", output.trim());
        let rate = events as f64 / elapsed.as_secs_f64();
        let goal_met =
            rate >= 20_000.0 && (events < 1_000_000 || elapsed < Duration::from_secs(60));
        self.report.push(Row {
            path: format!("`prism-worker rebuild catalog`, {events} events"),
            prism: format!("{rate:.0} events/s ({:.1} s)", elapsed.as_secs_f64()),
            baseline: format!("raw insert {raw_insert:.0} rows/s"),
            ratio: Some(rate / raw_insert),
            goal: "≥ 20,000 events/s; 1M events < 60 s".into(),
            met: Some(goal_met),
        });
        self.stack.start_worker().await?;
        self.pids.update(&self.stack);
        Ok(())
    }
}

async fn run(settings: Settings) -> anyhow::Result<Report> {
    let bins = Bins::beside_this_program()?;
    std::fs::create_dir_all(bins.logs())?;
    let mut report = Report::new();
    let memory = Arc::new(Memory::default());
    let pids = Arc::new(Pids::default());
    spawn_memory_sampler(Arc::clone(&pids), Arc::clone(&memory));

    // Baselines.
    let port = stack::free_port();
    let baseline = stack::spawn(
        &bins.this(),
        &["baseline-server", &port.to_string()],
        &[],
        &bins.logs().join("baseline-server.log"),
    )?;
    let baseline_addr = SocketAddr::from(([127, 0, 0, 1], port));
    stack::wait_until_ready(baseline_addr, "/", Duration::from_secs(10)).await?;
    let empty: load::MakeRequest = {
        let host = baseline_addr.to_string();
        Arc::new(move |_| load::request("GET", &host, "/", None, None))
    };
    let empty_outcome = load::closed_loop(
        baseline_addr,
        64,
        settings.warmup,
        settings.seconds,
        empty,
        ok_or_304,
    )
    .await?;
    stack::stop(baseline);
    let empty_rps = empty_outcome.rps();
    report.push(Row {
        path: "baseline: empty poem handler, 64 connections".into(),
        prism: format!(
            "{empty_rps:.0} req/s, p95 {:.2} ms",
            empty_outcome.percentile_ms(95.0)
        ),
        baseline: String::new(),
        ratio: Some(1.0),
        goal: String::new(),
        met: None,
    });
    let raw_db = stack::database(&settings.admin_url, "raw").await;
    {
        let pool = PgPool::connect(raw_db.url()).await?;
        sqlx::query("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload json NOT NULL)")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let raw16 = pgbench_insert_tps(raw_db.url(), 16, settings.seconds)?;
    let raw1 = pgbench_insert_tps(raw_db.url(), 1, settings.seconds)?;
    drop(raw_db);
    report.push(Row {
        path: "baseline: raw single-row insert with commit (pgbench), 16 clients / 1 client".into(),
        prism: format!("{raw16:.0} / {raw1:.0} rows/s"),
        baseline: String::new(),
        ratio: Some(1.0),
        goal: String::new(),
        met: None,
    });

    // Prism.
    let stack = Stack::start(bins, &settings.admin_url, &settings.redis_url).await?;
    pids.update(&stack);
    let pool = PgPool::connect(stack.db.url()).await?;
    seed::templates(&stack).await?;
    let template_building: uuid::Uuid =
        sqlx::query_scalar("SELECT aggregate_id::uuid FROM events WHERE event_type = 'BuildingRegistered' ORDER BY position LIMIT 1")
            .fetch_one(&pool)
            .await?;

    // Commands.
    let (host, token) = (stack.host(), stack.token.clone());
    if settings.runs("commands") {
        let register: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                load::request(
                    "POST",
                    &host,
                    "/v1/buildings",
                    Some(&token),
                    Some(building_body(n)),
                )
            })
        };
        let outcome = load::closed_loop(
            stack.api_addr,
            16,
            settings.warmup,
            settings.seconds,
            register,
            created,
        )
        .await?;
        report.throughput(
            "`POST /v1/buildings`, 16 connections",
            &outcome,
            "raw insert, 16 clients",
            raw16,
            Some((0.5, None)),
        );
        let lease: load::MakeRequest = {
            let (host, token) = (host.clone(), token.clone());
            Arc::new(move |n| {
                let body = json!({
                    "building_id": template_building, "tenant": format!("Tenant {n}"),
                    "leased_area_sqft": "12500", "starting_rent_psf": "60", "lease_type": "gross",
                    "term_months": 120, "commencement_date": "2026-02-01", "free_rent_months": 6,
                    "ti_allowance_psf": "40", "escalation_pct": "3"
                });
                load::request(
                    "POST",
                    &host,
                    "/v1/comps/lease",
                    Some(&token),
                    Some(body.to_string()),
                )
            })
        };
        let outcome = load::closed_loop(
            stack.api_addr,
            16,
            settings.warmup,
            settings.seconds,
            lease,
            created,
        )
        .await?;
        report.throughput(
            "`POST /v1/comps/lease`, 16 connections",
            &outcome,
            "raw insert, 16 clients",
            raw16,
            None,
        );
    }
    wait_for_projections(&pool, Instant::now()).await?;
    log_memory(&pids, "commands");
    let mut run = Run {
        settings: settings.clone(),
        stack,
        pool,
        pids: Arc::clone(&pids),
        report,
        empty_rps,
        raw_insert: raw16,
    };

    // Sizes.
    let mut seeded_buildings = 0;
    let mut seeded_comps = 0;
    let sizes = if settings.runs("sizes") {
        settings.sizes.clone()
    } else {
        Vec::new()
    };
    for size in sizes {
        let label = format!("{}k buildings", size / 1000);
        run.grow((seeded_buildings, size), (seeded_comps, size), &label)
            .await?;
        seeded_buildings = size;
        seeded_comps = size;
        run.reads(&label).await?;
        log_memory(&pids, &format!("reads ({label})"));
        run.replay().await?;
    }
    if settings.runs("lag") {
        run.lag().await?;
        log_memory(&pids, "lag");
    }

    // The history: comps added to the largest size until the log holds the events asked.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&run.pool)
        .await?;
    if settings.runs("history") && settings.history_events > events {
        if seeded_buildings == 0 {
            // Without the sizes: the largest size's buildings first.
            seeded_buildings = settings.sizes.iter().copied().max().unwrap_or(100_000);
            run.grow((0, seeded_buildings), (0, 0), "buildings").await?;
        }
        let more = settings.history_events - events;
        let label = format!("history of {} events", settings.history_events);
        run.grow(
            (seeded_buildings, seeded_buildings),
            (seeded_comps, seeded_comps + more),
            &label,
        )
        .await?;
        log_memory(&pids, &format!("catch-up ({label})"));
        run.replay().await?;
    }
    if settings.runs("live-rebuild") {
        run.rebuild_under_load().await?;
        log_memory(&pids, "live rebuild");
    }
    let Run {
        stack,
        pool,
        mut report,
        ..
    } = run;
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let (api, worker) = (
        memory.api_max.load(Ordering::Relaxed),
        memory.worker_max.load(Ordering::Relaxed),
    );
    report.push(Row {
        path: "resident memory, highest during the run: api / worker".into(),
        prism: format!("{:.0} MB / {:.0} MB", mb(api), mb(worker)),
        baseline: String::new(),
        ratio: None,
        goal: "< 150 MB each".into(),
        met: Some(mb(api) < 150.0 && mb(worker) < 150.0),
    });
    pool.close().await;
    drop(stack);
    Ok(report)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.first().map(String::as_str) == Some("baseline-server") {
        let port: u16 = args.get(1).context("baseline-server PORT")?.parse()?;
        return runtime.block_on(baseline_server(port));
    }
    let settings = Settings::from_env()?;
    if args.first().map(String::as_str) == Some("soak") {
        let flat = runtime.block_on(soak::run(&settings.admin_url, &settings.redis_url))?;
        std::process::exit(if flat { 0 } else { 1 });
    }
    let report = runtime.block_on(run(settings.clone()))?;
    let text = report.render();
    println!("{text}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &text).with_context(|| format!("cannot write {path}"))?;
    }
    Ok(())
}
