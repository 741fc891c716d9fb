//! One trace from a command's request, through the catch-up job it pushed, to the
//! projection batches that applied its event (OpenTelemetry, exported in memory here;
//! over OTLP in production). The api and a worker run in this process, so that one
//! exporter sees the spans of both: the one test that links the worker's library
//! (`worker::Worker`, what `prism-worker run` runs) rather than running its binary.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::oneshot;
use tracing_subscriber::layer::SubscriberExt;
use worker::config::WorkerSettings;
use worker::Worker;

use crate::helpers::*;

/// The in-memory exporter behind this test binary's global subscriber.
fn exporter() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("prism-test")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        (exporter, provider)
    })
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// A worker in this process with the system tests' timings and `backstop_ms`; it
/// stops when the sender drops.
async fn start_worker(app: &TestApp, backstop_ms: &str) -> oneshot::Sender<()> {
    let (namespace, redis_url) = app.redis();
    let env = testkit::worker_env(app.database_url(), redis_url, namespace)
        .set("WORKER_PORT", "0")
        .set("DATABASE_MAX_CONNECTIONS", "5")
        .set("PROJECTION_BACKSTOP_MS", backstop_ms)
        .set("JOB_POLL_MS", "20")
        .set("METRICS_SAMPLE_MS", "100");
    let settings = WorkerSettings::from_lookup(|name| env.get(name)).expect("worker settings");
    let worker = Worker::build(settings).await.expect("the worker builds");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// Waits until the catalog and the audit log hold the one building and no cache mark
/// is left to send.
async fn wait_until_applied(app: &TestApp, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let applied =
        "SELECT (SELECT count(*) FROM buildings) = 1 AND (SELECT count(*) FROM audit_log) = 1
                          AND NOT EXISTS (SELECT 1 FROM cache_refresh_outbox)";
    while !sqlx::query_scalar::<_, bool>(applied)
        .fetch_one(&app.pool)
        .await
        .expect("applied")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not apply the building"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_command_its_job_and_the_batches_that_applied_it_share_one_trace() {
    let (exporter, provider) = exporter();
    let app = spawn_app().await;
    // No backstop during the test (after its first round at start-up, on an empty log,
    // which must be over before the command): only the job can apply the event.
    let _worker = start_worker(&app, "600000").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let request_id = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let reply = app
        .client
        .post(format!("{}/v1/buildings", app.address))
        .bearer_auth(token())
        .header("x-request-id", &request_id)
        .json(&bodies::building_at("Traced Tower", 40.75, -73.98))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), reqwest::StatusCode::CREATED);
    wait_until_applied(&app, Duration::from_secs(15)).await;
    // The rows are visible before the job's span ends (it ends when the job returns):
    // wait for the job's span to be exported, on a loaded machine too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().expect("spans");
        let traces_of = |name: &str| -> Vec<opentelemetry::trace::TraceId> {
            spans
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.span_context.trace_id())
                .collect()
        };
        let jobs = traces_of("catch-up job");
        let in_one_trace = traces_of("request").iter().any(|t| jobs.contains(t));
        if in_one_trace || tokio::time::Instant::now() >= deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let request = spans
        .iter()
        .find(|s| {
            s.name == "request"
                && attribute(s, "request.id").map(|v| v.as_str().into_owned())
                    == Some(request_id.clone())
        })
        .expect("the request's span");
    let trace = request.span_context.trace_id();
    let job = spans
        .iter()
        .find(|s| s.name == "catch-up job" && s.span_context.trace_id() == trace)
        .expect("the job's span in the request's trace");
    assert_ne!(job.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    let applied: Vec<&SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == "projection batch"
                && s.span_context.trace_id() == trace
                && attribute(s, "events").is_some_and(|v| v.as_str() != "0")
        })
        .collect();
    let projections: Vec<String> = applied
        .iter()
        .filter_map(|s| attribute(s, "projection").map(|v| v.as_str().into_owned()))
        .collect();
    assert!(
        projections.contains(&"catalog".to_owned()) && projections.contains(&"audit".to_owned()),
        "batches that applied the event, in the request's trace: {projections:?}"
    );
}
