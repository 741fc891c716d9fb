//! Records the git revision the binaries are built from (`PRISM_GIT_REVISION`), the
//! release Sentry events name. `unknown` outside a git checkout.

use std::process::Command;

fn main() {
    let revision = std::env::var("PRISM_GIT_REVISION").ok().unwrap_or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    });
    println!("cargo:rustc-env=PRISM_GIT_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=PRISM_GIT_REVISION");
    // A new commit changes HEAD (a branch move) or the ref it names.
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
