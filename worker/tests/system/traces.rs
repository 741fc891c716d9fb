//! One trace from a command's request, through the catch-up job it pushed, to the
//! projection batches that applied its event (OpenTelemetry, exported in memory here;
//! over OTLP in production).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

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

#[tokio::test]
async fn a_command_its_job_and_the_batches_that_applied_it_share_one_trace() {
    let (exporter, provider) = exporter();
    let mut system = System::start().await;
    // No backstop during the test (after its first round at start-up, on an empty log,
    // which must be over before the command): only the job can apply the event.
    system
        .start_worker_with(&[("PROJECTION_BACKSTOP_MS", "600000")])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let request_id = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let reply = system
        .client
        .post(format!("{}/v1/buildings", system.address))
        .bearer_auth(token())
        .header("x-request-id", &request_id)
        .json(&building_body("Traced Tower", 40.75, -73.98))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), reqwest::StatusCode::CREATED);
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let _ = provider.force_flush();

    let spans = exporter.get_finished_spans().expect("spans");
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
