//! The command line as a user meets it: `prism-api`, run as a process with an empty
//! environment, answers `--help` on every command and subcommand and names each
//! setting's variable there; every variable it reads is in docs/configuration.md;
//! `prism-api openapi | head` ends quietly; logs into a pipe carry no colour codes.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use clap::CommandFactory;
use testkit::{cli, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_prism-api");
const DOCS: &str = include_str!("../../../docs/configuration.md");

#[test]
fn every_command_answers_help_without_any_environment_and_names_its_variables() {
    let paths = cli::assert_help_names_every_variable(Path::new(BIN), &api::cli::Cli::command());
    assert!(paths >= 6, "{paths} command paths");
    // `serve`'s settings are all there, with their defaults.
    let serve = Command::new(BIN)
        .env_clear()
        .args(["serve", "--help"])
        .output()
        .expect("prism-api runs");
    let help = String::from_utf8_lossy(&serve.stdout);
    for expected in [
        "[env: DATABASE_URL]",
        "[env: PORT]",
        "[default: 8080]",
        "[env: ENV]",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
}

#[test]
fn the_documentation_lists_exactly_the_variables_prism_api_reads() {
    let declared: BTreeSet<String> = telemetry::cli::env_names(&api::cli::Cli::command())
        .into_iter()
        .collect();
    let documented = cli::documented_variables(DOCS, &["prism-api", "Both binaries"]);
    assert_eq!(
        declared, documented,
        "prism-api's variables (left) and docs/configuration.md's (right) differ"
    );
}

#[test]
fn the_openapi_document_into_a_closed_pipe_ends_quietly() {
    let mut child = Command::new(BIN)
        .env_clear()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prism-api openapi starts");
    // As `head -c 100`: read a little, then close the pipe. The document is larger
    // than the pipe's buffer, so the writer meets the closed end.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut start = [0u8; 100];
    stdout.read_exact(&mut start).expect("the document starts");
    drop(stdout);
    let output = child.wait_with_output().expect("prism-api openapi ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test]
async fn logs_into_a_pipe_carry_no_colour_codes() {
    let db = TestDatabase::empty().await;
    let output = Command::new(BIN)
        .env_clear()
        .args(["migrate", "up"])
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "info")
        .output()
        .expect("prism-api migrate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" INFO "), "no log lines: {stdout}");
    assert!(
        !stdout.contains("\x1b["),
        "colour codes in a pipe: {stdout:?}"
    );
}
