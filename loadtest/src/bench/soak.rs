//! `make soak`: Prism under a steady mixed load for ten minutes (by default), its
//! resident memory sampled throughout. A leak shows as memory that keeps growing after
//! the first minute; the run fails when the api's or the worker's last-minute peak is
//! above its first-minute peak by more than [`ALLOWED_GROWTH_MB`], or above 150 MB.
//!
//! The load, per ten requests: two building registrations, one lease comp, four cached
//! building details, two first list pages and one `near` search, at `SOAK_RATE`
//! requests per second (default 200) for `SOAK_SECONDS` (default 600), over
//! `SOAK_BUILDINGS` seeded buildings (default 10000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;

use crate::stack::{self, Bins, Stack};
use crate::{env_or, load, seed, wait_for_projections};

/// How much a process's peak may rise from the first minute to the last.
const ALLOWED_GROWTH_MB: f64 = 10.0;

/// The ceiling for each process.
const CEILING_MB: f64 = 150.0;

/// One memory sample: seconds since the load started, api and worker RSS in MB.
type Sample = (u64, f64, f64);

/// The soak, against the servers `make bench` would use (`admin_url`, `redis_url`).
pub async fn run(admin_url: &str, redis_url: &str) -> anyhow::Result<bool> {
    let rate: u32 = env_or("SOAK_RATE", 200)?;
    let seconds: u64 = env_or("SOAK_SECONDS", 600)?;
    let buildings: i64 = env_or("SOAK_BUILDINGS", 10_000)?;
    anyhow::ensure!(seconds >= 120, "SOAK_SECONDS must be at least 120");

    let bins = Bins::beside_this_program()?;
    std::fs::create_dir_all(bins.logs())?;
    let stack = Stack::start(bins, admin_url, redis_url).await?;
    let pool = PgPool::connect(stack.db.url()).await?;
    seed::templates(&stack).await?;
    seed::buildings(&pool, 0, buildings).await?;
    seed::comps(&pool, 0, buildings, buildings).await?;
    wait_for_projections(&pool, Instant::now()).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM buildings ORDER BY md5(id::text) LIMIT 1000")
            .fetch_all(&pool)
            .await?,
    );
    anyhow::ensure!(!ids.is_empty(), "no buildings were projected");
    eprintln!("[soak] {buildings} buildings seeded; {rate} requests/s for {seconds} s");

    let make = mixed_load(&stack, Arc::clone(&ids));
    let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel::<load::Answer>();
    let counter = tokio::spawn(async move {
        let (mut answered, mut failed) = (0u64, 0u64);
        while let Some(answer) = answers.recv().await {
            answered += 1;
            if !(answer.status.is_success() || answer.status.as_u16() == 304) {
                failed += 1;
            }
        }
        (answered, failed)
    });
    let sampler = {
        let (api, worker) = (
            stack.api.as_ref().map(stack::Process::pid),
            stack.worker.as_ref().map(stack::Process::pid),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples: Vec<Sample> = Vec::new();
            loop {
                let mb = |pid: Option<u32>| {
                    pid.and_then(stack::rss_bytes)
                        .map_or(0.0, |b| b as f64 / (1024.0 * 1024.0))
                };
                samples.push((started.elapsed().as_secs(), mb(api), mb(worker)));
                if started.elapsed() >= Duration::from_secs(seconds) {
                    return samples;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let transport_failures = load::open_loop(
        stack.api_addr,
        rate,
        Duration::from_secs(seconds),
        make,
        sender,
    )
    .await?;
    let (answered, failed) = counter.await?;
    let samples = sampler.await?;
    pool.close().await;
    drop(stack);

    println!(
        "{}",
        render(
            &samples,
            rate,
            seconds,
            answered,
            failed + transport_failures
        )
    );
    Ok(verdict(&samples).is_ok())
}

/// Ten kinds of request in turn (see the module's documentation).
fn mixed_load(stack: &Stack, ids: Arc<Vec<uuid::Uuid>>) -> load::MakeRequest {
    let (host, token) = (stack.host(), stack.token.clone());
    Arc::new(move |n| {
        let token = Some(token.as_str());
        let building = ids[(n as usize * 7919) % ids.len()];
        match n % 10 {
            0 | 1 => load::request(
                "POST",
                &host,
                "/v1/buildings",
                token,
                Some(crate::building_body(n)),
            ),
            2 => {
                let body = json!({
                    "building_id": building, "tenant": format!("Soak Tenant {n}"),
                    "leased_area_sqft": "5000", "starting_rent_psf": "55",
                    "lease_type": "gross", "term_months": 60,
                    "commencement_date": "2026-03-01"
                });
                load::request(
                    "POST",
                    &host,
                    "/v1/comps/lease",
                    token,
                    Some(body.to_string()),
                )
            }
            3..=6 => load::request(
                "GET",
                &host,
                &format!("/v1/buildings/{building}"),
                token,
                None,
            ),
            7 | 8 => load::request("GET", &host, "/v1/buildings?limit=20", token, None),
            _ => load::request(
                "GET",
                &host,
                "/v1/buildings?near=40.75,-73.98&radius_m=2000&limit=20",
                token,
                None,
            ),
        }
    })
}

/// The highest (api, worker) RSS among samples taken in `from..to` seconds.
fn peak(samples: &[Sample], from: u64, to: u64) -> (f64, f64) {
    samples
        .iter()
        .filter(|(at, _, _)| (from..to).contains(at))
        .fold((0.0, 0.0), |(a, w), (_, api, worker)| {
            (a.max(*api), w.max(*worker))
        })
}

/// Flat, or why not.
fn verdict(samples: &[Sample]) -> Result<(), String> {
    let end = samples.last().map_or(0, |s| s.0);
    let first = peak(samples, 0, 60);
    let last = peak(samples, end.saturating_sub(60), end + 1);
    let mut problems = Vec::new();
    for (name, first, last) in [("api", first.0, last.0), ("worker", first.1, last.1)] {
        if last - first > ALLOWED_GROWTH_MB {
            problems.push(format!("{name} grew from {first:.0} MB to {last:.0} MB"));
        }
        if last > CEILING_MB {
            problems.push(format!("{name} is above {CEILING_MB:.0} MB ({last:.0} MB)"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn render(samples: &[Sample], rate: u32, seconds: u64, answered: u64, failed: u64) -> String {
    let mut text = format!(
        "Soak {} on {}: {rate} requests/s for {seconds} s, {answered} answered, {failed} failed.\n\n\
         | minute | api RSS peak | worker RSS peak |\n| --- | --- | --- |\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        crate::report::machine(),
    );
    for minute in 0..seconds.div_ceil(60) {
        let (api, worker) = peak(samples, minute * 60, (minute + 1) * 60);
        text.push_str(&format!(
            "| {} | {api:.0} MB | {worker:.0} MB |\n",
            minute + 1
        ));
    }
    text.push('\n');
    match verdict(samples) {
        Ok(()) => text.push_str(&format!(
            "Flat: each process's last-minute peak within {ALLOWED_GROWTH_MB:.0} MB of its first-minute peak, and under {CEILING_MB:.0} MB.\n"
        )),
        Err(why) => text.push_str(&format!("NOT FLAT: {why}.\n")),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_after_the_first_minute_fails_the_soak() {
        let flat: Vec<Sample> = (0..=120).step_by(5).map(|s| (s, 60.0, 80.0)).collect();
        assert!(verdict(&flat).is_ok());
        let leaking: Vec<Sample> = (0..=120)
            .step_by(5)
            .map(|s| (s, 60.0 + s as f64 / 4.0, 80.0))
            .collect();
        let why = verdict(&leaking).expect_err("a leak");
        assert!(why.contains("api grew"), "{why}");
        let heavy: Vec<Sample> = (0..=120).step_by(5).map(|s| (s, 60.0, 160.0)).collect();
        assert!(verdict(&heavy)
            .expect_err("too big")
            .contains("worker is above"));
    }
}
