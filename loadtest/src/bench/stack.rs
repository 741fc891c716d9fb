//! What a benchmark run starts and cleans up: a private database on the local server
//! (created, migrated by `prism-api migrate up`, dropped at the end), a private Redis
//! namespace, and release-built `prism-api` and `prism-worker` processes with their
//! logs in the target directory. Nothing here is shared with `make start` or the tests;
//! the database, the namespace, the processes and the test key come from `testkit`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
pub use testkit::{free_port, Process, TestDatabase as Database};
use testkit::{keys, TestNamespace};

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

/// A database of the run's own, dropped with it unless `BENCH_KEEP_DATABASE=1`.
pub async fn database(admin_url: &str, label: &str) -> Database {
    let mut db = Database::empty_on(admin_url, &format!("bench_{label}")).await;
    if std::env::var("BENCH_KEEP_DATABASE").as_deref() == Ok("1") {
        // For profiling afterwards: the seeded history stays.
        db.keep();
    }
    db
}

/// Starts `program` with `args`, this environment plus `env`, its output in `log`;
/// killed when dropped.
pub fn spawn(
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    log: &Path,
) -> anyhow::Result<Process> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null());
    Ok(Process::start(command))
}

/// Stops a process gracefully: SIGTERM, SIGKILL after 20 s.
pub fn stop(process: Process) {
    process.stop(Duration::from_secs(20));
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
    testkit::process::wait_until_up(&format!("http://{addr}{path}"), true, timeout, None)
        .await
        .map_err(anyhow::Error::msg)
}

/// Prism under test: the database, the api and (when running) the worker.
#[derive(Debug)]
pub struct Stack {
    pub bins: Bins,
    pub db: Database,
    pub namespace: TestNamespace,
    pub redis_url: String,
    pub api_addr: SocketAddr,
    pub api: Option<Process>,
    pub worker: Option<Process>,
    pub token: String,
}

pub const ORG: &str = "org_bench";

impl Stack {
    pub async fn start(bins: Bins, admin_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(bins.logs())?;
        let db = database(admin_url, "prism").await;
        run(
            &bins.api(),
            &["migrate", "up"],
            &[("DATABASE_URL", db.url().to_owned())],
        )?;
        // The test key, trusted through its JWKS file: every scope, for 12 hours.
        let token = keys::token_valid_for(ORG, "user_bench", testkit::ALL_SCOPES, 12 * 3600);
        let port = free_port();
        let mut stack = Self {
            namespace: TestNamespace::labelled(redis_url, "bench"),
            redis_url: redis_url.to_owned(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            api: None,
            worker: None,
            token,
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
            ("DATABASE_URL", self.db.url().to_owned()),
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_NAMESPACE", self.namespace.name().to_owned()),
        ]
    }

    async fn start_api(&mut self) -> anyhow::Result<()> {
        let mut env = self.common_env();
        env.extend([
            ("PORT", self.api_addr.port().to_string()),
            (
                "CLERK_JWKS_FILE",
                keys::jwks_file().to_string_lossy().into_owned(),
            ),
            // Every request of the benchmark comes from one address.
            ("RATE_LIMIT_PER_MINUTE", "0".into()),
        ]);
        let log = self.bins.logs().join("prism-api.log");
        self.api = Some(spawn(&self.bins.api(), &["serve"], &env, &log)?);
        wait_until_ready(self.api_addr, "/ready", Duration::from_secs(30)).await
    }

    /// Starts `prism-worker` (its health server on a free port) and waits until ready.
    pub async fn start_worker(&mut self) -> anyhow::Result<()> {
        let port = free_port();
        let mut env = self.common_env();
        env.push(("WORKER_PORT", port.to_string()));
        let log = self.bins.logs().join("prism-worker.log");
        self.worker = Some(spawn(&self.bins.worker(), &["run"], &env, &log)?);
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
            stop(worker);
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
        // The processes first; the namespace's keys and the database go with the fields.
        if let Some(api) = self.api.take() {
            stop(api);
        }
        if let Some(worker) = self.worker.take() {
            stop(worker);
        }
    }
}
