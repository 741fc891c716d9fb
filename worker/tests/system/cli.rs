//! The command line as a user meets it: `prism-worker`, run as a process with an empty
//! environment, answers `--help` on every command and names each setting's variable
//! there (the projections from the registry); every variable it reads is in
//! docs/configuration.md.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use clap::CommandFactory;
use projections::Projection;

const BIN: &str = env!("CARGO_BIN_EXE_prism-worker");

/// Every command path of `command` (the root's is empty) with the variables it reads.
fn command_paths(command: &clap::Command, path: Vec<String>) -> Vec<(Vec<String>, Vec<String>)> {
    let own = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    let mut paths = vec![(path.clone(), own)];
    for sub in command.get_subcommands() {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_owned());
        paths.extend(command_paths(sub, sub_path));
    }
    paths
}

fn help(args: &[&str]) -> String {
    let output = Command::new(BIN)
        .env_clear()
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("prism-worker runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "prism-worker {args:?} --help: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn every_command_answers_help_without_any_environment_and_names_its_variables() {
    let paths = command_paths(&worker::cli::Cli::command(), Vec::new());
    assert!(paths.len() >= 3, "{paths:?}");
    for (path, variables) in paths {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let stdout = help(&path);
        assert!(stdout.contains("Usage:"), "{path:?}: {stdout}");
        for name in variables {
            assert!(
                stdout.contains(&format!("[env: {name}]")),
                "prism-worker {path:?} --help does not name {name}: {stdout}"
            );
        }
    }
    let rebuild = help(&["replay"]);
    for projection in Projection::ALL {
        assert!(rebuild.contains(projection.name()), "{rebuild}");
    }
    assert!(rebuild.contains("[default: 2000]"), "{rebuild}");
}

/// The variables of the named sections of docs/configuration.md (the first column of
/// their tables).
fn documented_variables(sections: &[&str]) -> BTreeSet<String> {
    let docs = include_str!("../../../docs/configuration.md");
    let mut section = "";
    let mut names = BTreeSet::new();
    for line in docs.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim();
        } else if sections.contains(&section) && line.starts_with("| `") {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            names.extend(
                first_cell
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|name| {
                        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    })
                    .map(str::to_owned),
            );
        }
    }
    names
}

#[test]
fn the_documentation_lists_exactly_the_variables_prism_worker_reads() {
    let declared: BTreeSet<String> = telemetry::cli::env_names(&worker::cli::Cli::command())
        .into_iter()
        .collect();
    let documented = documented_variables(&["prism-worker", "Both binaries"]);
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
