//! What a benchmark run starts and cleans up: a private database on the local server
//! (created, migrated by `prism-api migrate up`, dropped at the end), a private Redis
//! namespace, and release-built `prism-api` and `prism-worker` processes with their
//! logs in the target directory. Nothing here is shared with `make start` or the tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};

use crate::load;

/// The binaries next to this one (`$CARGO_TARGET_DIR/release`).
#[derive(Debug, Clone)]
pub struct Bins {
    pub dir: PathBuf,
}

impl Bins {
    pub fn beside_this_program() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let dir = exe
            .parent()
            .context("this program has no directory")?
            .to_owned();
        for bin in ["prism-api", "prism-worker"] {
            if !dir.join(bin).exists() {
                bail!(
                    "{} is missing: build it with --release first",
                    dir.join(bin).display()
                );
            }
        }
        Ok(Self { dir })
    }

    pub fn api(&self) -> PathBuf {
        self.dir.join("prism-api")
    }

    pub fn worker(&self) -> PathBuf {
        self.dir.join("prism-worker")
    }

    pub fn this(&self) -> PathBuf {
        self.dir.join("prism-bench")
    }

    /// Where process logs go.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("bench-logs")
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server's URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// A database of the run's own, dropped with it.
#[derive(Debug)]
pub struct Database {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl Database {
    pub async fn create(admin_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("prism_bench_{label}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("cannot connect to Postgres (PRISM_BENCH_DATABASE_URL)")?;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await?;
        admin.close().await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if std::env::var("BENCH_KEEP_DATABASE").as_deref() == Ok("1") {
            // For profiling afterwards: the seeded history stays.
            eprintln!("[bench] kept database {}", self.name);
            return;
        }
        let statement = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        let admin_url = self.admin_url.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(statement.as_str()).await?;
                admin.close().await
            })?;
            anyhow::Ok(())
        })
        .join();
    }
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Self { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (SIGKILL after 20 s).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs a program to completion and returns its standard output.
pub fn run(program: &Path, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Polls `GET path` until it answers 200.
pub async fn wait_until_ready(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let request = load::request("GET", &addr.to_string(), path, None, None);
        if let Ok((status, _)) = load::once(addr, request).await {
            if status.is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer 200 within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prism under test: the database, the api and (when running) the worker.
#[derive(Debug)]
pub struct Stack {
    pub bins: Bins,
    pub db: Database,
    pub namespace: String,
    pub redis_url: String,
    pub api_addr: SocketAddr,
    pub api: Option<Process>,
    pub worker: Option<Process>,
    pub token: String,
    jwks: PathBuf,
}

/// The signing key of the test suites (a development key; tokens it signs are
/// accepted only with `CLERK_JWKS_FILE`, which production refuses).
fn signing_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/fixtures/test-signing-key.pem")
}

pub const ORG: &str = "org_bench";

impl Stack {
    pub async fn start(bins: Bins, admin_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(bins.logs())?;
        let db = Database::create(admin_url, "prism").await?;
        let key = signing_key();
        let key_arg = key.to_string_lossy().into_owned();
        run(
            &bins.api(),
            &["migrate", "up"],
            &[("DATABASE_URL", db.url.clone())],
        )?;
        let jwks = bins.logs().join(format!("jwks-{}.json", db.name));
        std::fs::write(
            &jwks,
            run(&bins.api(), &["dev", "jwks", "--key", &key_arg], &[])?,
        )?;
        let token = run(
            &bins.api(),
            &[
                "dev",
                "token",
                "--key",
                &key_arg,
                "--org",
                ORG,
                "--user",
                "user_bench",
            ],
            &[],
        )?
        .trim()
        .to_owned();
        let port = free_port()?;
        let mut stack = Self {
            namespace: format!("prism_bench_{}", uuid::Uuid::new_v4().simple()),
            redis_url: redis_url.to_owned(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            api: None,
            worker: None,
            token,
            jwks,
            db,
            bins,
        };
        stack.start_api().await?;
        stack.start_worker().await?;
        Ok(stack)
    }

    fn common_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ENV", "development".into()),
            ("HOST", "127.0.0.1".into()),
            ("DATABASE_URL", self.db.url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_NAMESPACE", self.namespace.clone()),
        ]
    }

    async fn start_api(&mut self) -> anyhow::Result<()> {
        let mut env = self.common_env();
        env.extend([
            ("PORT", self.api_addr.port().to_string()),
            ("CLERK_JWKS_FILE", self.jwks.to_string_lossy().into_owned()),
            // Every request of the benchmark comes from one address.
            ("RATE_LIMIT_PER_MINUTE", "0".into()),
        ]);
        let log = self.bins.logs().join("prism-api.log");
        self.api = Some(Process::spawn(&self.bins.api(), &["serve"], &env, &log)?);
        wait_until_ready(self.api_addr, "/ready", Duration::from_secs(30)).await
    }

    /// Starts `prism-worker` (its health server on a free port) and waits until ready.
    pub async fn start_worker(&mut self) -> anyhow::Result<()> {
        let port = free_port()?;
        let mut env = self.common_env();
        env.push(("WORKER_PORT", port.to_string()));
        let log = self.bins.logs().join("prism-worker.log");
        self.worker = Some(Process::spawn(&self.bins.worker(), &["run"], &env, &log)?);
        wait_until_ready(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "/ready",
            Duration::from_secs(30),
        )
        .await
    }

    /// Stops the worker gracefully.
    pub fn stop_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
    }

    /// Runs `prism-worker <args>` to completion (a rebuild); returns its output.
    pub fn worker_command(&self, args: &[&str]) -> anyhow::Result<String> {
        run(&self.bins.worker(), args, &self.common_env())
    }

    pub fn host(&self) -> String {
        self.api_addr.to_string()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop();
        }
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
        let _ = std::fs::remove_file(&self.jwks);
        if let Ok(client) = redis::Client::open(self.redis_url.as_str()) {
            if let Ok(mut connection) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.namespace))
                    .query(&mut connection)
                    .unwrap_or_default();
                for chunk in keys.chunks(1000) {
                    let _: redis::RedisResult<i64> =
                        redis::cmd("DEL").arg(chunk).query(&mut connection);
                }
            }
        }
    }
}
