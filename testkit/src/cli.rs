//! A binary's command line as its tests meet it: every command path of its clap tree
//! with the variables it reads, `--help` run with an empty environment, and the
//! variables docs/configuration.md lists for it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// Every command path of `command` (the root's is empty) with the variables it reads.
pub fn command_paths(command: &clap::Command) -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(
        command: &clap::Command,
        path: Vec<String>,
        paths: &mut Vec<(Vec<String>, Vec<String>)>,
    ) {
        let own = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        paths.push((path.clone(), own));
        for sub in command.get_subcommands() {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            walk(sub, sub_path, paths);
        }
    }
    let mut paths = Vec::new();
    walk(command, Vec::new(), &mut paths);
    paths
}

/// `bin <args> --help` with an empty environment; its standard output, once it
/// succeeded.
pub fn help(bin: &Path, args: &[String]) -> String {
    let output = Command::new(bin)
        .env_clear()
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} --help: {}{stdout}",
        bin.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every command path of `command` answers `--help` from `bin` with an empty
/// environment, naming each variable it reads; the number of paths.
pub fn assert_help_names_every_variable(bin: &Path, command: &clap::Command) -> usize {
    let paths = command_paths(command);
    for (path, variables) in &paths {
        let stdout = help(bin, path);
        assert!(stdout.contains("Usage:"), "{path:?}: {stdout}");
        for name in variables {
            assert!(
                stdout.contains(&format!("[env: {name}]")),
                "{} {path:?} --help does not name {name}: {stdout}",
                bin.display()
            );
        }
    }
    paths.len()
}

/// The variables the named sections of `docs` (docs/configuration.md) list: the
/// upper-case names in the first column of their tables.
pub fn documented_variables(docs: &str, sections: &[&str]) -> BTreeSet<String> {
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
