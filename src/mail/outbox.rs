//! The queue between requests and the mailer: bounded, drained by one
//! worker, flushed at shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Mail, Mailer};

/// Mails waiting to be sent; past this a new one is dropped (and logged):
/// a stuck SMTP server must not grow memory without bound.
const CAPACITY: usize = 1024;

/// One entry of the queue.
enum Job {
    /// A mail ready to send.
    Ready(Mail),
    /// Work that yields a mail (or nothing), done by the worker: a password
    /// reset stores its token there, so the request that asked for it does
    /// no more work for a known address than for an unknown one.
    Later(BoxFuture<'static, Option<Mail>>),
}

impl Job {
    fn kind(&self) -> &'static str {
        match self {
            Self::Ready(mail) => mail.kind,
            Self::Later(_) => "deferred",
        }
    }
}

/// Queues mail for the one worker that sends it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Job>,
    stop: CancellationToken,
    worker: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Outbox {
    /// Starts the worker on the current runtime.
    pub fn start(mailer: Arc<dyn Mailer>) -> Self {
        let (queue, rx) = mpsc::channel(CAPACITY);
        let stop = CancellationToken::new();
        let worker = tokio::spawn(run(mailer, rx, stop.clone()));
        Self {
            queue,
            stop,
            worker: Arc::new(Mutex::new(Some(worker))),
        }
    }

    /// Queues a mail; returns at once.
    pub fn send(&self, mail: Mail) {
        self.enqueue(Job::Ready(mail));
    }

    /// Queues work that produces a mail; the worker runs it, then sends
    /// what it returns. Returns at once.
    pub fn send_later(&self, job: impl Future<Output = Option<Mail>> + Send + 'static) {
        self.enqueue(Job::Later(Box::pin(job)));
    }

    fn enqueue(&self, job: Job) {
        let kind = job.kind();
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::error!(kind, "mail queue full; mail dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(kind, "mail queue closed (shutting down); mail dropped");
            }
        }
    }

    /// Sends what is queued (waiting up to `grace`) and stops the worker.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            match tokio::time::timeout(grace, worker).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "mail worker failed"),
                Err(_) => tracing::warn!("queued mail not sent within the grace period"),
            }
        }
    }
}

async fn run(mailer: Arc<dyn Mailer>, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            () = stop.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(job) = job else { break };
        let mail = match job {
            Job::Ready(mail) => mail,
            Job::Later(work) => match work.await {
                Some(mail) => mail,
                None => continue,
            },
        };
        if let Err(e) = mailer.send(&mail).await {
            metrics::counter!(crate::telemetry::MAIL_FAILURES, "kind" => mail.kind).increment(1);
            tracing::error!(kind = mail.kind, to = %mail.to, error = %e, "mail not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MailError;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Mailer for Recorder {
        async fn send(&self, mail: &Mail) -> Result<(), MailError> {
            self.0.lock().expect("lock").push(mail.subject.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn queued_mail_is_sent_in_order_and_flushed_at_shutdown() {
        let recorder = Arc::new(Recorder::default());
        let outbox = Outbox::start(recorder.clone());
        let mail = |i: usize| Mail {
            to: "a@example.com".to_owned(),
            subject: format!("m{i}"),
            body: String::new(),
            kind: "test",
        };
        for i in 0..3 {
            outbox.send(mail(i));
        }
        outbox.send_later(async move { Some(mail(3)) });
        outbox.send_later(async { None });
        outbox.send(mail(4));
        outbox.shutdown(Duration::from_secs(5)).await;
        let sent = recorder.0.lock().expect("lock").clone();
        assert_eq!(sent, ["m0", "m1", "m2", "m3", "m4"]);
    }
}
