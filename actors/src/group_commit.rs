//! Group commit across rooms: every room actor hands its batch of sends to
//! one group commit task, which stores whatever batches are waiting together, in
//! one transaction (`Store::create_message_groups`). With many rooms each
//! sending a little, the database sees a few large transactions instead of
//! one per message, and SQLite keeps a single writer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Created, Message, NewMessage, Store, StoreError, StoreResult};
use crate::telemetry;

/// The most messages stored in one transaction across rooms.
const MAX_MESSAGES: usize = 512;

/// A group commit this slow is logged (at `warn`).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

type Answer = StoreResult<Vec<Created<Message>>>;

#[derive(Debug)]
struct Job {
    batch: Vec<NewMessage>,
    reply: oneshot::Sender<Answer>,
}

/// A handle on the group commit task; cloned into every room.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the group commit task; it ends when the last handle is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, rx));
        Self { jobs }
    }

    /// Stores one room's batch (see `Store::create_messages`), together
    /// with whatever other rooms are storing at the same moment.
    pub async fn create_messages(&self, batch: Vec<NewMessage>) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { batch, reply }).await.is_err() {
            return Err(StoreError::Other("the group commit has stopped".to_owned()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Other("the group commit went away".to_owned())))
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let mut messages = job.batch.len();
        let mut jobs = vec![job];
        while messages < MAX_MESSAGES {
            match rx.try_recv() {
                Ok(job) => {
                    messages += job.batch.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!(telemetry::COMMIT_MESSAGES).record(messages as f64);
        let (groups, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.batch, j.reply)).unzip();
        let rooms = groups.len();
        let started = std::time::Instant::now();
        let answers = store.create_message_groups(groups).await;
        let took = started.elapsed();
        metrics::histogram!(telemetry::COMMIT_DURATION).record(took.as_secs_f64());
        if took >= SLOW_COMMIT {
            // Every room's sends wait behind this one group commit.
            tracing::warn!(
                took_ms = took.as_millis(),
                messages,
                rooms,
                "slow group commit"
            );
        }
        for (answer, reply) in answers.into_iter().zip(replies) {
            // The room may have stopped waiting; nothing to do then.
            let _ = reply.send(answer);
        }
    }
}
