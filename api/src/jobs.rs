//! Jobs the api pushes to the worker through Redis (apalis queues): a catch-up wake-up
//! after every commit, and rebuilds operators ask for. A wake-up that cannot be pushed
//! (Redis down, flushed, slow) is logged and dropped: the worker's backstop finds the
//! events anyway, a little later. The command has already succeeded.

use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::{Config, RedisStorage};
use projections::cache::RedisLink;
use projections::jobs::{self, CatchUp, Rebuild};

/// How long a push may take before the request moves on without it.
const PUSH_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct JobQueue {
    link: RedisLink,
    namespace: String,
}

impl JobQueue {
    pub fn new(link: RedisLink, namespace: impl Into<String>) -> Self {
        Self {
            link,
            namespace: namespace.into(),
        }
    }

    /// Tells the worker that events were committed, off the request's path: the
    /// response does not wait for Redis, and a failed push is only logged. A wake-up
    /// already queued and not yet started covers this commit too
    /// ([`projections::jobs::wake_flag`]): a burst of commands queues one job.
    pub fn announce_commit(&self, request_id: &str) {
        let queue = self.clone();
        let request_id = request_id.to_owned();
        let traceparent = telemetry::traces::current_traceparent();
        tokio::spawn(async move {
            let flag = jobs::wake_flag(&queue.namespace);
            let raised: Option<Option<String>> = queue
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
            if let Some(None) = raised {
                // A queued wake-up has not started yet: it will read this commit.
                return;
            }
            let job = CatchUp {
                request_id: Some(request_id.clone()),
                traceparent,
            };
            if !queue
                .push(jobs::catch_up_queue(&queue.namespace), job)
                .await
            {
                tracing::warn!(request.id = %request_id, "catch-up job not pushed; the backstop will apply the events");
            }
        });
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
        let Some(connection) = self.link.connection().await else {
            return false;
        };
        let mut storage: RedisStorage<T> =
            RedisStorage::new(connection).with_config(Config::default().queue(queue));
        match tokio::time::timeout(PUSH_TIMEOUT, storage.push(job)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::debug!(error = %error, "job push failed");
                self.link.back_off();
                false
            }
            Err(_) => {
                self.link.back_off();
                false
            }
        }
    }
}
