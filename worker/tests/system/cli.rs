//! The command line as a user meets it: `prism-worker`, run as a process with an empty
//! environment, answers `--help` on every command and names each setting's variable
//! there (the projections from the registry); every variable it reads is in
//! docs/configuration.md.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use projections::Projection;
use testkit::cli;

const BIN: &str = env!("CARGO_BIN_EXE_prism-worker");
const DOCS: &str = include_str!("../../../docs/configuration.md");

fn help(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    cli::help(Path::new(BIN), &args)
}

#[test]
fn every_command_answers_help_without_any_environment_and_names_its_variables() {
    let paths = cli::assert_help_names_every_variable(Path::new(BIN), &worker::cli::Cli::command());
    assert!(paths >= 3, "{paths} command paths");
    let rebuild = help(&["replay"]);
    for projection in Projection::ALL {
        assert!(rebuild.contains(projection.name()), "{rebuild}");
    }
    assert!(rebuild.contains("[default: 2000]"), "{rebuild}");
}

#[test]
fn the_documentation_lists_exactly_the_variables_prism_worker_reads() {
    let declared: BTreeSet<String> = telemetry::cli::env_names(&worker::cli::Cli::command())
        .into_iter()
        .collect();
    let documented = cli::documented_variables(DOCS, &["prism-worker", "Both binaries"]);
    assert_eq!(
        declared, documented,
        "prism-worker's variables (left) and docs/configuration.md's (right) differ"
    );
}

#[test]
fn an_unknown_projection_is_refused_naming_the_registry() {
    let output = Command::new(BIN)
        .env_clear()
        .args(["rebuild", "nothing"])
        .output()
        .expect("prism-worker runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for projection in Projection::ALL {
        assert!(stderr.contains(projection.name()), "{stderr}");
    }
}
