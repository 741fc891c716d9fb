//! `prism-loadtest`: the load-smoke release gate where k6 is not installed. It runs the
//! scenario of `loadtest/k6-smoke.js` — virtual users looping over the SPA's calls —
//! against a running api, then checks the same SLO thresholds and exits non-zero when
//! one is missed. Before the scenario it measures a baseline on `GET /health` (an
//! almost empty handler) with the same users, and reports throughput as a ratio to it:
//! these machines are shared, so absolute numbers vary between runs, ratios less.
//!
//! Settings (environment): `BASE_URL` (required), `PRISM_TOKEN` (a token with the
//! buildings and comps scopes), `VUS` (default 5), `DURATION_SECONDS` (default 20),
//! `BASELINE_SECONDS` (default 5), and the thresholds `SLO_P95_MS` (default 500),
//! `SLO_ERROR_RATE` (default 0.01), `SLO_MIN_RPS` (default 20). `SUMMARY_FILE` writes
//! the result as JSON too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    ok: bool,
}

#[derive(Debug)]
struct Settings {
    base_url: String,
    token: String,
    vus: usize,
    duration: Duration,
    baseline: Duration,
    p95_ms: f64,
    error_rate: f64,
    min_rps: f64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name} is not a valid value: {raw:?}")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            base_url: std::env::var("BASE_URL")
                .context("BASE_URL is required")?
                .trim_end_matches('/')
                .to_owned(),
            token: std::env::var("PRISM_TOKEN").context("PRISM_TOKEN is required")?,
            vus: env_or("VUS", 5usize)?.max(1),
            duration: Duration::from_secs(env_or("DURATION_SECONDS", 20u64)?),
            baseline: Duration::from_secs(env_or("BASELINE_SECONDS", 5u64)?),
            p95_ms: env_or("SLO_P95_MS", 500.0)?,
            error_rate: env_or("SLO_ERROR_RATE", 0.01)?,
            min_rps: env_or("SLO_MIN_RPS", 20.0)?,
        })
    }
}

/// What one phase measured.
#[derive(Debug)]
struct Summary {
    requests: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarise(samples: &[Sample], elapsed: Duration) -> Summary {
    let mut latencies: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    Summary {
        requests: samples.len(),
        errors: samples.iter().filter(|s| !s.ok).count(),
        rps: samples.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
    }
}

async fn timed(request: reqwest::RequestBuilder, expect: u16) -> (Sample, Option<Value>) {
    let started = Instant::now();
    let result = request.send().await;
    let (ok, body) = match result {
        Ok(response) => {
            let ok = response.status().as_u16() == expect;
            (ok, response.json::<Value>().await.ok())
        }
        Err(_) => (false, None),
    };
    (
        Sample {
            latency: started.elapsed(),
            ok,
        },
        body,
    )
}

/// The scenario of one virtual user, as in k6-smoke.js: register a building once,
/// then loop: list buildings, read the building, record a lease comp every fifth
/// round, list its comps, read market statistics.
async fn user(
    client: reqwest::Client,
    settings: Arc<Settings>,
    vu: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let base = &settings.base_url;
    let auth = format!("Bearer {}", settings.token);
    let mut samples = Vec::new();
    let (sample, body) = timed(
        client
            .post(format!("{base}/v1/buildings"))
            .header("authorization", &auth)
            .json(&json!({
                "name": format!("Load Tower {vu}"),
                "address": {"street": "1 Load St", "city": "Austin", "country": "US"},
                "location": {"lat": 30.2672, "lon": -97.7431},
                "property_type": "office",
                "rentable_area_sqft": 100000,
                "submarket": "CBD"
            })),
        201,
    )
    .await;
    samples.push(sample);
    let Some(building) = body.and_then(|b| b["id"].as_str().map(str::to_owned)) else {
        return samples;
    };
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let get = |path: String| {
            client
                .get(format!("{base}{path}"))
                .header("authorization", &auth)
        };
        samples.push(timed(get("/v1/buildings?limit=20".into()), 200).await.0);
        samples.push(timed(get(format!("/v1/buildings/{building}")), 200).await.0);
        if round.is_multiple_of(5) {
            let lease = json!({
                "building_id": building, "tenant": "Load Co", "leased_area_sqft": 2500,
                "starting_rent_psf": "48.50", "lease_type": "gross", "term_months": 36,
                "commencement_date": "2026-01-01"
            });
            let post = client
                .post(format!("{base}/v1/comps/lease"))
                .header("authorization", &auth)
                .json(&lease);
            samples.push(timed(post, 201).await.0);
        }
        samples.push(
            timed(get(format!("/v1/comps?building_id={building}")), 200)
                .await
                .0,
        );
        samples.push(timed(get("/v1/market/stats".into()), 200).await.0);
        round += 1;
    }
    samples
}

/// The baseline: every user loops on `GET /health`.
async fn baseline_user(
    client: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        samples.push(timed(client.get(format!("{base}/health")), 200).await.0);
    }
    samples
}

async fn run_phase<F, Fut>(vus: usize, duration: Duration, start: F) -> anyhow::Result<Summary>
where
    F: Fn(usize, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = Vec<Sample>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let users: Vec<_> = (0..vus)
        .map(|vu| tokio::spawn(start(vu, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for user in users {
        samples.extend(user.await?);
    }
    Ok(summarise(&samples, started.elapsed()))
}

fn report(name: &str, summary: &Summary) {
    println!(
        "{name:<9} {:>7} requests  {:>5} errors  {:>8.1} req/s  p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms",
        summary.requests, summary.errors, summary.rps, summary.p50_ms, summary.p95_ms, summary.p99_ms
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Arc::new(Settings::from_env()?);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(settings.vus)
        .build()?;
    println!(
        "load-smoke: {} users, {} s against {} (baseline {} s on /health)",
        settings.vus,
        settings.duration.as_secs(),
        settings.base_url,
        settings.baseline.as_secs()
    );
    let base = settings.base_url.clone();
    let baseline = run_phase(settings.vus, settings.baseline, |_, stop| {
        baseline_user(client.clone(), base.clone(), stop)
    })
    .await?;
    report("baseline", &baseline);
    let scenario = run_phase(settings.vus, settings.duration, |vu, stop| {
        user(client.clone(), Arc::clone(&settings), vu, stop)
    })
    .await?;
    report("scenario", &scenario);
    let error_rate = scenario.errors as f64 / scenario.requests.max(1) as f64;
    let ratio = scenario.rps / baseline.rps.max(f64::EPSILON);
    println!("throughput ratio to the /health baseline: {ratio:.3}");

    let checks = [
        (
            format!(
                "p95 latency {:.1} ms < {} ms",
                scenario.p95_ms, settings.p95_ms
            ),
            scenario.p95_ms < settings.p95_ms,
        ),
        (
            format!("error rate {:.4} < {}", error_rate, settings.error_rate),
            error_rate < settings.error_rate,
        ),
        (
            format!(
                "throughput {:.1} req/s >= {} req/s",
                scenario.rps, settings.min_rps
            ),
            scenario.rps >= settings.min_rps,
        ),
    ];
    for (check, passed) in &checks {
        println!("  {} {check}", if *passed { "PASS" } else { "FAIL" });
    }
    if let Ok(path) = std::env::var("SUMMARY_FILE") {
        let summary = json!({
            "vus": settings.vus,
            "duration_seconds": settings.duration.as_secs(),
            "baseline": {"requests": baseline.requests, "rps": baseline.rps, "p95_ms": baseline.p95_ms},
            "scenario": {"requests": scenario.requests, "errors": scenario.errors, "rps": scenario.rps,
                          "p50_ms": scenario.p50_ms, "p95_ms": scenario.p95_ms, "p99_ms": scenario.p99_ms},
            "error_rate": error_rate,
            "throughput_ratio": ratio,
            "passed": checks.iter().all(|(_, passed)| *passed),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {path}"))?;
    }
    if checks.iter().any(|(_, passed)| !passed) {
        bail!("an SLO was missed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 95.0), 95.0);
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 95.0), 0.0);
        let samples = [
            Sample {
                latency: Duration::from_millis(10),
                ok: true,
            },
            Sample {
                latency: Duration::from_millis(30),
                ok: false,
            },
        ];
        let summary = summarise(&samples, Duration::from_secs(1));
        assert_eq!((summary.requests, summary.errors), (2, 1));
        assert!((summary.rps - 2.0).abs() < 1e-9);
    }
}
