//! Jobs the api pushes to the worker through Redis (apalis queues): a catch-up wake-up
//! after every commit, and rebuilds operators ask for. A wake-up that cannot be pushed
//! (Redis down, flushed, slow) is logged and dropped: the worker's backstop finds the
//! events anyway, a little later. The command has already succeeded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::{Config, RedisStorage};
use projections::cache::RedisLink;
use projections::jobs::{self, CatchUp, Rebuild};
use tokio::sync::mpsc;

use crate::redis_link::Redis;

/// How long a push may take before the request moves on without it.
const PUSH_TIMEOUT: Duration = Duration::from_millis(250);

/// Commits within this long of a wake-up share the next one: under load, one Redis
/// round trip per interval rather than one per command.
const WAKE_INTERVAL: Duration = Duration::from_millis(2);

/// The request and trace a wake-up job names: the first commit it covers.
type Origin = (String, Option<String>);

#[derive(Debug, Clone)]
pub struct JobQueue {
    link: RedisLink,
    namespace: String,
    /// Commits tell the waker here; it ends when the last queue handle goes.
    commits: mpsc::Sender<()>,
    origin: Arc<Mutex<Option<Origin>>>,
}

impl JobQueue {
    /// The queue on the api's Redis, and its waker running in the background (call
    /// within a runtime).
    pub fn new(redis: &Redis) -> Self {
        let (commits, signals) = mpsc::channel(1);
        let queue = Self {
            link: redis.link().clone(),
            namespace: redis.namespace().to_owned(),
            commits,
            origin: Arc::default(),
        };
        tokio::spawn(wake_worker(queue.waker(), signals));
        queue
    }

    /// What the waker needs, without a sender (so the channel closes with the queue).
    fn waker(&self) -> Waker {
        Waker {
            link: self.link.clone(),
            namespace: self.namespace.clone(),
            origin: Arc::clone(&self.origin),
        }
    }

    /// Tells the worker that events were committed, off the request's path: the
    /// response does not wait for Redis, and a failed push is only logged. Commits
    /// close together share one wake-up, and a wake-up already queued and not yet
    /// started covers them too ([`projections::jobs::wake_flag`]): a burst of
    /// commands queues one job.
    pub fn announce_commit(&self, request_id: &str) {
        if let Ok(mut origin) = self.origin.lock() {
            if origin.is_none() {
                *origin = Some((
                    request_id.to_owned(),
                    telemetry::traces::current_traceparent(),
                ));
            }
        }
        // Full means a wake-up is already due: it will read this commit too.
        let _ = self.commits.try_send(());
    }

    /// Wakes a worker to run rebuild `id`; `false` when Redis did not take it.
    pub async fn request_rebuild(&self, id: uuid::Uuid, projection: &str) -> bool {
        let job = Rebuild {
            id: Some(id),
            projection: projection.to_owned(),
            requested_by: None,
        };
        self.push(jobs::rebuild_queue(&self.namespace), job).await
    }

    async fn push<T>(&self, queue: String, job: T) -> bool
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + Unpin + 'static,
    {
        push(&self.link, queue, job).await
    }
}

/// Pushes `job` on `queue`; `false` when Redis did not take it in time.
async fn push<T>(link: &RedisLink, queue: String, job: T) -> bool
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + Unpin + 'static,
{
    let Some(connection) = link.connection().await else {
        return false;
    };
    let mut storage: RedisStorage<T> =
        RedisStorage::new(connection).with_config(Config::default().queue(queue));
    match tokio::time::timeout(PUSH_TIMEOUT, storage.push(job)).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(error = %error, "job push failed");
            link.back_off();
            false
        }
        Err(_) => {
            link.back_off();
            false
        }
    }
}

/// The waker's side of a [`JobQueue`].
struct Waker {
    link: RedisLink,
    namespace: String,
    origin: Arc<Mutex<Option<Origin>>>,
}

/// Wakes the worker after commits: for each signal (one per interval at most, however
/// many commits sent one), raise the wake flag and, when it was not raised, queue a
/// catch-up job. Every commit is followed by a raise that starts after it. Ends when
/// the queue is dropped.
async fn wake_worker(waker: Waker, mut signals: mpsc::Receiver<()>) {
    while signals.recv().await.is_some() {
        let (request_id, traceparent) = waker
            .origin
            .lock()
            .ok()
            .and_then(|mut origin| origin.take())
            .unwrap_or_default();
        let flag = jobs::wake_flag(&waker.namespace);
        let raised: Option<Option<String>> = waker
            .link
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(&flag)
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(jobs::WAKE_FLAG_TTL_MS)
                    .query_async(&mut c)
                    .await
            })
            .await;
        // `Some(None)`: a queued wake-up has not started yet; it will read these commits.
        if !matches!(raised, Some(None)) {
            let job = CatchUp {
                request_id: Some(request_id.clone()),
                traceparent,
            };
            if !push(&waker.link, jobs::catch_up_queue(&waker.namespace), job).await {
                tracing::warn!(request.id = %request_id, "catch-up job not pushed; the backstop will apply the events");
            }
        }
        tokio::time::sleep(WAKE_INTERVAL).await;
    }
}
