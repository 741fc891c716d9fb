//! The benchmark's report: one Markdown table, each figure beside its baseline from the
//! same run and the ratio between them, with the goal and whether it was met.

use crate::load::Outcome;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub prism: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
    started: String,
}

impl Report {
    pub fn new() -> Self {
        Self {
            rows: Vec::new(),
            started: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    pub fn push(&mut self, row: Row) {
        eprintln!(
            "[bench] {} | {} | {} | {}",
            row.path,
            row.prism,
            row.baseline,
            row.ratio.map(|r| format!("{r:.3}")).unwrap_or_default()
        );
        self.rows.push(row);
    }

    /// A throughput row: requests per second as a ratio of `baseline_rps`; `goal` is the
    /// least ratio and, optionally, the highest p95 in milliseconds.
    pub fn throughput(
        &mut self,
        path: &str,
        outcome: &Outcome,
        baseline: &str,
        baseline_rps: f64,
        goal: Option<(f64, Option<f64>)>,
    ) {
        let ratio = outcome.rps() / baseline_rps;
        let p95 = outcome.percentile_ms(95.0);
        let (goal_text, met) = match goal {
            None => (String::new(), None),
            Some((least, None)) => (format!("≥ {least}"), Some(ratio >= least)),
            Some((least, Some(p95_goal))) => (
                format!("≥ {least}, p95 < {p95_goal} ms"),
                Some(ratio >= least && p95 < p95_goal),
            ),
        };
        self.push(Row {
            path: path.to_owned(),
            prism: format!(
                "{:.0} req/s, p50 {:.2} ms, p95 {:.2} ms{}",
                outcome.rps(),
                outcome.percentile_ms(50.0),
                p95,
                errors(outcome)
            ),
            baseline: format!("{baseline}: {baseline_rps:.0} req/s"),
            ratio: Some(ratio),
            goal: goal_text,
            met: met.map(|m| m && outcome.errors == 0),
        });
    }

    /// A latency row: p95 against a goal in milliseconds; throughput as a ratio of the
    /// empty handler.
    pub fn latency(&mut self, path: &str, outcome: &Outcome, empty_rps: f64, p95_goal_ms: f64) {
        let p95 = outcome.percentile_ms(95.0);
        self.push(Row {
            path: path.to_owned(),
            prism: format!(
                "{:.0} req/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms{}",
                outcome.rps(),
                outcome.percentile_ms(50.0),
                p95,
                outcome.percentile_ms(99.0),
                errors(outcome)
            ),
            baseline: format!("empty poem handler: {empty_rps:.0} req/s"),
            ratio: Some(outcome.rps() / empty_rps),
            goal: format!("p95 < {p95_goal_ms} ms"),
            met: Some(p95 < p95_goal_ms && outcome.errors == 0),
        });
    }

    pub fn render(&self) -> String {
        let mut text = format!(
            "Run {} on {}, release build; Postgres, Redis, the api, \
             the worker and the load generator share the machine.\n\n\
             | path | Prism | baseline (same run) | ratio | goal | met |\n\
             | --- | --- | --- | --- | --- | --- |\n",
            self.started,
            machine()
        );
        for row in &self.rows {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.path,
                row.prism,
                row.baseline,
                row.ratio.map(|r| format!("{r:.3}")).unwrap_or_default(),
                row.goal,
                match row.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            ));
        }
        text
    }
}

fn errors(outcome: &Outcome) -> String {
    if outcome.errors == 0 {
        String::new()
    } else {
        format!(
            ", **{} errors** (first: {})",
            outcome.errors,
            outcome.first_error.as_deref().unwrap_or("?")
        )
    }
}

/// The CPU's model and the number of cores, e.g. `AMD EPYC (2 cores)`.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model} ({cores} cores)")
}
