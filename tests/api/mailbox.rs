//! Reading the mail the server sends: from the `.eml` files of the default
//! transport, or from a real SMTP server started on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::TestApp;

/// One mail as received: its headers and body as text.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub raw: String,
}

impl ReceivedMail {
    /// The body, with quoted-printable soft line breaks undone.
    pub fn body(&self) -> String {
        let raw = self.raw.replace("\r\n", "\n");
        let body = raw.split_once("\n\n").map_or(raw.as_str(), |(_, b)| b);
        body.replace("=\n", "")
    }

    /// Whether a header line starts with `prefix` (e.g. `To: alice@`).
    pub fn has_header(&self, prefix: &str) -> bool {
        self.raw
            .replace("\r\n", "\n")
            .split("\n\n")
            .next()
            .is_some_and(|head| head.lines().any(|l| l.starts_with(prefix)))
    }

    /// The one-time token the mail carries: the 43-character base64url
    /// string on a line of its own.
    pub fn token(&self) -> String {
        self.body()
            .lines()
            .map(str::trim)
            .find(|l| {
                l.len() == 43
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .unwrap_or_else(|| panic!("no token in the mail:\n{}", self.raw))
            .to_owned()
    }
}

impl TestApp {
    /// Every mail written under `<data_dir>/mail/` so far, oldest first.
    pub fn mail_files(&self) -> Vec<ReceivedMail> {
        let dir = self._tmp.path().join("mail");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("a mail dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| ReceivedMail {
                raw: std::fs::read_to_string(&p).expect("a readable mail file"),
            })
            .collect()
    }

    /// Mails to `to` whose subject contains `subject`.
    pub fn mails_to(&self, to: &str, subject: &str) -> Vec<ReceivedMail> {
        self.mail_files()
            .into_iter()
            .filter(|m| m.has_header(&format!("To: {to}")) && m.raw.contains(subject))
            .collect()
    }

    /// Waits (up to 5 s: mail goes out after the answer) until there are
    /// `count` mails to `to` with `subject`; returns the newest.
    pub async fn wait_for_mail(&self, to: &str, subject: &str, count: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mails = self.mails_to(to, subject);
            if mails.len() >= count {
                return mails.last().cloned().expect("a mail");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail #{count} to {to} about {subject:?}; have {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The token of the newest verification mail to `to` (waiting for it).
    pub async fn verification_token(&self, to: &str) -> String {
        self.wait_for_mail(to, "Confirm your email", 1)
            .await
            .token()
    }
}

/// A real SMTP server (mailin-embedded) on a loopback port, keeping every
/// message it accepts. It runs on its own threads until the test process
/// ends.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
}

#[derive(Clone)]
struct SinkHandler {
    current: Vec<u8>,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl mailin_embedded::Handler for SinkHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> mailin_embedded::Response {
        self.current.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let raw = String::from_utf8_lossy(&self.current).into_owned();
        self.received
            .lock()
            .expect("the sink's lock")
            .push(ReceivedMail { raw });
        mailin_embedded::response::OK
    }
}

impl SmtpSink {
    /// Starts the server on `127.0.0.1:<free port>`.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler = SinkHandler {
            current: Vec::new(),
            received: Arc::clone(&received),
        };
        let mut server = mailin_embedded::Server::new(handler);
        server
            .with_name("sink.test")
            .with_ssl(mailin_embedded::SslConfig::None)
            .expect("no TLS")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the SMTP sink stopped: {e}");
            }
        });
        Self { port, received }
    }

    /// Waits (up to 10 s) for a message to `to`.
    pub async fn wait_for_mail(&self, to: &str) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .received
                .lock()
                .expect("the sink's lock")
                .iter()
                .find(|m| m.has_header(&format!("To: {to}")))
                .cloned();
            if let Some(mail) = found {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the SMTP server received no mail to {to}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
