//! prism-worker: will run the apalis workers that build Prism's read projections from
//! the event log (projection catch-up, cache refresh, replay, backstop schedule). The
//! read side is not built yet; until it is, the binary says so and exits non-zero so
//! that nothing mistakes it for a running worker.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("prism-worker: the read side (projections) is not built yet; nothing to run");
    ExitCode::from(2)
}
