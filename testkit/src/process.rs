//! The real binaries as processes: [`binary`] finds (building when needed) a workspace
//! binary, [`command`] prepares it with exactly the settings given, and
//! [`ApiProcess`] / [`WorkerProcess`] run `prism-api` and `prism-worker`, ready when
//! their health check answers and killed when dropped. A suite whose own package
//! builds the binary passes `env!("CARGO_BIN_EXE_…")` instead of calling [`binary`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::{free_port, Env};

/// The path of the workspace binary `name` (`prism-api`, `prism-worker`), built by
/// cargo with this program's profile into this program's target directory, once per
/// process (cargo does nothing when it is fresh). A suite of another package uses it
/// to run a binary its own package does not build; it panics with cargo's output when
/// the binary does not build.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let path = build(name);
    built.push((name.to_owned(), path.clone()));
    path
}

fn build(name: &str) -> PathBuf {
    let package = match name {
        "prism-api" => "api",
        "prism-worker" => "worker",
        other => panic!("{other} is not a binary testkit knows how to build"),
    };
    // A test runs from <target>/<profile>/deps, a bench program from <target>/<profile>.
    let exe = std::env::current_exe().expect("this program's path");
    let mut profile_dir = exe.parent().expect("this program's directory").to_owned();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--package", package, "--bin", name])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        other => {
            cargo.args(["--profile", other]);
        }
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {name}: {e}"));
    assert!(
        status.success(),
        "`cargo build -p {package} --bin {name}` failed (its errors are above)"
    );
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "cargo built {name}, yet {} is missing",
        path.display()
    );
    path
}

/// `program` with exactly `env` in its environment (plus `PATH`, and `RUST_LOG=warn`
/// unless `env` sets it), its output discarded.
pub fn command(program: &Path, env: &Env) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A child process, killed (SIGKILL) when dropped if it still runs.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    pub fn start(mut command: Command) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no chance to finish or roll back anything itself.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn sigterm(&self) -> bool {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// SIGTERM, then waits (without blocking the runtime's thread) up to `timeout` for
    /// the graceful exit; whether it exited.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        assert!(self.sigterm(), "SIGTERM");
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// SIGTERM, then waits (blocking) up to `timeout`; SIGKILL after it.
    pub fn stop(mut self, timeout: Duration) {
        self.sigterm();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_9();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited() {
            self.kill_9();
        }
    }
}

/// Polls `GET url` until it answers 2xx (`ok_only`) or at all; `Err` after `timeout`,
/// or as soon as `process` exits.
pub async fn wait_until_up(
    url: &str,
    ok_only: bool,
    timeout: Duration,
    mut process: Option<&mut Process>,
) -> Result<(), String> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await {
            if !ok_only || response.status().is_success() {
                return Ok(());
            }
        }
        if let Some(process) = process.as_deref_mut() {
            if process.exited() {
                return Err(format!("it exited before {url} answered"));
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{url} did not answer within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How long a binary may take to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// `prism-api` as a process of its own, on a free port; killed when dropped.
#[derive(Debug)]
pub struct ApiProcess {
    process: Process,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// `program` with `env` and `port_variable` set to a free port, once its `/health`
/// answers on it (`name` says which binary did not start).
async fn start_on_a_free_port(
    program: &Path,
    env: Env,
    port_variable: &str,
    name: &str,
) -> (Process, u16) {
    let port = free_port();
    let mut process = Process::start(command(program, &env.set(port_variable, port.to_string())));
    if let Err(why) = wait_until_up(
        &format!("http://127.0.0.1:{port}/health"),
        false,
        START_TIMEOUT,
        Some(&mut process),
    )
    .await
    {
        panic!("{name} did not start: {why}");
    }
    (process, port)
}

impl ApiProcess {
    /// `program` (a `prism-api`) with `env` and `PORT` set to a free port; returns once
    /// `/health` answers.
    pub async fn start(program: &Path, env: Env) -> Self {
        let (process, port) = start_on_a_free_port(program, env, "PORT", "prism-api").await;
        let base = format!("http://127.0.0.1:{port}");
        Self { process, base }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `kill -9`: no shutdown at all.
    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }

    /// SIGTERM, then waits (without blocking this thread) for the graceful exit.
    pub async fn terminate(&mut self) {
        assert!(
            self.process.terminate(Duration::from_secs(10)).await,
            "prism-api did not stop after SIGTERM"
        );
    }
}

/// `prism-worker` as a process of its own; killed when dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    process: Process,
    port: Option<u16>,
}

impl WorkerProcess {
    /// `program` (a `prism-worker`) with `env` as it is, not waited for.
    pub fn spawn(program: &Path, env: &Env) -> Self {
        Self {
            process: Process::start(command(program, env)),
            port: None,
        }
    }

    /// `program` with `env` and `WORKER_PORT` set to a free port; returns once its
    /// `/health` answers.
    pub async fn start(program: &Path, env: Env) -> Self {
        let (process, port) =
            start_on_a_free_port(program, env, "WORKER_PORT", "prism-worker").await;
        Self {
            process,
            port: Some(port),
        }
    }

    /// Where it serves `/health`, `/ready` and `/metrics` (when [`Self::start`]ed).
    pub fn base(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.port.expect("a worker started with a port")
        )
    }

    /// SIGKILL: no chance to finish or roll back anything itself.
    pub fn kill_9(mut self) {
        self.process.kill_9();
    }
}
