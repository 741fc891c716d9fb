//! The load generator: keep-alive HTTP/1.1 connections straight on hyper, so that the
//! generator costs about what `wrk` costs and the server's share of the two cores is
//! the same for Prism and for its baselines.
//!
//! - [`closed_loop`]: `connections` connections, each sending its next request as soon
//!   as the previous one is answered (throughput and latency at a concurrency);
//! - [`open_loop`]: requests at a fixed rate whatever the answers take (the steady
//!   command load of the lag measurement), each answer kept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Builds the `n`-th request of a run (`n` counts from 0 across all connections).
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// A request with a method, a path, an optional bearer token and an optional JSON body.
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(json))
        }
        None => Full::new(Bytes::new()),
    };
    builder.body(body).expect("a well-formed request")
}

/// What a closed-loop run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    /// Answers outside the expected statuses, and transport errors.
    pub errors: u64,
    pub elapsed: Duration,
    /// Sorted latencies in microseconds.
    latencies_us: Vec<u32>,
    /// The first unexpected answer, to say what went wrong.
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (nearest rank) in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_us(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile_us(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request on `sender`: its status and body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Sends one request on a new connection (set-up calls of the benchmark).
pub async fn once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    send(&mut sender, request).await
}

/// `connections` connections loop for `warmup` (not counted) and then `duration`.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    make: MakeRequest,
    expected: fn(StatusCode) -> bool,
) -> anyhow::Result<Outcome> {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let make = Arc::clone(&make);
        let counter = Arc::clone(&counter);
        let mut sender = connect(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = send(&mut sender, make(n)).await;
                let done = Instant::now();
                if sent < start {
                    if result.is_err() {
                        sender = match connect(addr).await {
                            Ok(sender) => sender,
                            Err(_) => break,
                        };
                    }
                    continue;
                }
                outcome.requests += 1;
                outcome
                    .latencies_us
                    .push(u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX));
                match result {
                    Ok((status, _)) if expected(status) => {}
                    Ok((status, body)) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        });
                    }
                    Err(error) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert_with(|| error.to_string());
                        sender = match connect(addr).await {
                            Ok(sender) => sender,
                            Err(_) => break,
                        };
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await?;
        total.requests += outcome.requests;
        total.errors += outcome.errors;
        total.latencies_us.extend(outcome.latencies_us);
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
    }
    total.elapsed = duration;
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// One answer of an open-loop run.
#[derive(Debug, Clone)]
pub struct Answer {
    pub answered: Instant,
    pub status: StatusCode,
    pub body: Bytes,
}

/// Sends `rate` requests per second for `duration`, on as many connections as the
/// answers need, and hands every answer to `answers` as it arrives; returns how many
/// requests failed in transport.
pub async fn open_loop(
    addr: SocketAddr,
    rate: u32,
    duration: Duration,
    make: MakeRequest,
    answers: tokio::sync::mpsc::UnboundedSender<Answer>,
) -> anyhow::Result<u64> {
    let idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>> = Arc::default();
    let failures = Arc::new(AtomicU64::new(0));
    let total = u64::from(rate) * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let request = make(n);
        let (idle, answers, failures) = (Arc::clone(&idle), answers.clone(), Arc::clone(&failures));
        tasks.push(tokio::spawn(async move {
            let pooled = idle.lock().await.pop();
            let mut sender = match pooled {
                Some(sender) => sender,
                None => match connect(addr).await {
                    Ok(sender) => sender,
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                },
            };
            match send(&mut sender, request).await {
                Ok((status, body)) => {
                    let _ = answers.send(Answer {
                        answered: Instant::now(),
                        status,
                        body,
                    });
                    idle.lock().await.push(sender);
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    drop(answers);
    for task in tasks {
        task.await?;
    }
    Ok(failures.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::percentile_us;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&sorted, 95.0), 95);
        assert_eq!(percentile_us(&sorted, 50.0), 50);
        assert_eq!(percentile_us(&[7], 99.0), 7);
        assert_eq!(percentile_us(&[], 95.0), 0);
    }
}
