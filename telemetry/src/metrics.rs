//! A Prometheus metrics registry per application value, rendered by its `/metrics`.
//!
//! Each `prism-api` or `prism-worker` builds one [`Registry`] and passes it down, rather
//! than installing a process-global recorder: several applications in one test process
//! then count separately, and a test can assert exact values. Durations (`*_seconds`)
//! are histograms with buckets from 5 ms to 5 s (plus longer ones for jobs), sizes
//! (`*_bytes`) histograms from 64 B to 1 MiB. Each render first samples the process
//! (`/proc/self`: resident memory, CPU seconds, open file descriptors, threads, start
//! time) and the Tokio runtime (workers, alive tasks, global queue depth).
//!
//! A histogram keeps each observation until it is folded into its buckets, which a
//! render does, and otherwise nothing: with no scrape, the api kept 24 bytes for every
//! request (60 MB for a million `/health` calls). A registry built inside a Tokio
//! runtime folds them in every [`UPKEEP_EVERY`] on its own.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use sha2::{Digest, Sha256};

/// Buckets of every `*_seconds` histogram.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets of every `*_bytes` histogram.
pub const SIZE_BUCKETS: [f64; 9] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// `METRICS_SCRAPE_TOKEN`, as both binaries check it on `/metrics` in production:
/// SHA-256 digests compared in constant time (no early exit on the first difference,
/// and no length leak).
#[derive(Clone)]
pub struct ScrapeToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ScrapeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeToken(…)")
    }
}

impl ScrapeToken {
    pub fn new(token: &crate::Secret) -> Self {
        Self {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest
            .iter()
            .zip(presented.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization?.strip_prefix("Bearer ")
}

/// Labels of one series, in order.
pub type Labels = Vec<(&'static str, String)>;

/// How often the histograms' pending observations are folded into their buckets.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn key(name: &'static str, labels: Labels) -> Key {
    Key::from_parts(
        name,
        labels
            .into_iter()
            .map(|(k, v)| Label::new(k, v))
            .collect::<Vec<_>>(),
    )
}

impl Registry {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &SIZE_BUCKETS)
            });
        // The bucket lists above are non-empty constants: building cannot fail.
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let handle = handle.clone();
            runtime.spawn(async move {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    handle.run_upkeep();
                }
            });
        }
        let registry = Self {
            recorder: Arc::new(recorder),
            handle,
        };
        registry.describe_process();
        registry
    }

    pub fn counter(&self, name: &'static str, labels: Labels) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: Labels) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: Labels) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// A `# HELP` line (and unit) for a counter.
    pub fn describe_counter(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.recorder
            .describe_counter(name.into(), unit, help.into());
    }

    pub fn describe_gauge(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.recorder.describe_gauge(name.into(), unit, help.into());
    }

    pub fn describe_histogram(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.recorder
            .describe_histogram(name.into(), unit, help.into());
    }

    /// The Prometheus text exposition, after sampling the process and the runtime.
    pub fn render(&self) -> String {
        self.sample_process();
        self.sample_runtime();
        self.handle.render()
    }

    fn describe_process(&self) {
        let gauges: [(&'static str, &'static str); 9] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            (
                "process_cpu_seconds_total",
                "User and system CPU time spent in seconds.",
            ),
            ("process_open_fds", "Number of open file descriptors."),
            ("process_threads", "Number of OS threads."),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
            ),
            ("tokio_workers", "Worker threads of the Tokio runtime."),
            ("tokio_alive_tasks", "Tasks alive in the Tokio runtime."),
            (
                "tokio_global_queue_depth",
                "Tasks waiting in the Tokio runtime's global queue.",
            ),
        ];
        for (name, help) in gauges {
            self.describe_gauge(name, None, help);
        }
    }

    fn sample_process(&self) {
        let Some(process) = ProcessSample::read() else {
            return;
        };
        let set = |name: &'static str, value: f64| self.gauge(name, Vec::new()).set(value);
        set("process_resident_memory_bytes", process.resident_bytes);
        set("process_virtual_memory_bytes", process.virtual_bytes);
        set("process_cpu_seconds_total", process.cpu_seconds);
        set("process_open_fds", process.open_fds);
        set("process_threads", process.threads);
        if let Some(start) = process.start_time_seconds {
            set("process_start_time_seconds", start);
        }
    }

    fn sample_runtime(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let runtime = handle.metrics();
        let set = |name: &'static str, value: usize| {
            self.gauge(name, Vec::new()).set(value as f64);
        };
        set("tokio_workers", runtime.num_workers());
        set("tokio_alive_tasks", runtime.num_alive_tasks());
        set("tokio_global_queue_depth", runtime.global_queue_depth());
    }
}

/// `/proc` reports CPU times in USER_HZ, fixed at 100 by the Linux ABI.
const USER_HZ: f64 = 100.0;

struct ProcessSample {
    resident_bytes: f64,
    virtual_bytes: f64,
    cpu_seconds: f64,
    open_fds: f64,
    threads: f64,
    start_time_seconds: Option<f64>,
}

impl ProcessSample {
    /// Reads `/proc/self`; `None` where there is no procfs.
    fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |field: &str| -> f64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
                .map_or(0.0, |n| n * 1024.0)
        };
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // `fields[0]` is field 3 (state): field n is at n - 3.
        let field = |n: usize| -> f64 {
            fields
                .get(n - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|dir| dir.count() as f64)
            .unwrap_or(0.0);
        Some(Self {
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            cpu_seconds: (field(14) + field(15)) / USER_HZ,
            open_fds,
            threads: field(20),
            start_time_seconds: boot_time.map(|boot| boot + field(22) / USER_HZ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrape_token_is_compared_whole() {
        let token = ScrapeToken::new(&crate::Secret::new("n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF"));
        assert!(token.matches("n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF"));
        assert!(!token.matches("n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0a"));
        assert!(!token.matches(""));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
        assert!(!format!("{token:?}").contains("n7Qe"));
    }

    #[tokio::test]
    async fn renders_labelled_series_histograms_and_process_metrics() {
        let registry = Registry::new();
        registry
            .counter("demo_total", vec![("kind", "a".into())])
            .increment(3);
        registry
            .histogram("demo_duration_seconds", Vec::new())
            .record(0.02);
        let text = registry.render();
        assert!(text.contains("demo_total{kind=\"a\"} 3"), "{text}");
        assert!(
            text.contains("demo_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
        assert!(text.contains("demo_duration_seconds_bucket{le=\"0.01\"} 0"));
        let resident = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("resident memory");
        assert!(resident > 1_000_000.0, "resident {resident}");
        assert!(text.contains("tokio_workers 1"), "{text}");
        // Two registries count apart.
        assert!(!Registry::new().render().contains("demo_total"));
    }
}
