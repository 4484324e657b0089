//! Outgoing mail (email verification, password reset).
//!
//! One small interface, [`Mailer`], with two transports: [`FileMailer`]
//! writes each mail as an `.eml` file under `<data_dir>/mail/` (the zero-setup
//! default: an operator reads them, tests read them back), and
//! [`SmtpMailer`] hands them to an SMTP server named by `smtp_url` (STARTTLS
//! or implicit TLS as the URL says). Requests never wait for a mail to go
//! out: they queue it on the [`Outbox`], whose one worker sends in order.
//! That also keeps a request that sends mail as fast as one that does not
//! (a password reset for an unknown address must not answer sooner).

mod file;
mod outbox;
mod smtp;

pub use file::FileMailer;
pub use outbox::Outbox;
pub use smtp::SmtpMailer;

use std::path::Path;
use std::sync::Arc;

/// One mail to one recipient, plain text.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    pub subject: String,
    /// Plain-text body. It may hold a secret (a one-time token), so it is
    /// never logged and `Debug` leaves it out.
    pub body: String,
    /// What kind of mail this is (`verify_email`, `password_reset`), for logs.
    pub kind: &'static str,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail could not be built (a bad address).
    #[error("bad mail: {0}")]
    Build(String),
    /// Writing the `.eml` file failed.
    #[error("writing the mail file: {0}")]
    Io(#[from] std::io::Error),
    /// The SMTP server refused it or could not be reached.
    #[error("smtp: {0}")]
    Smtp(String),
}

/// Sends mail. Implementations log one line per mail, never its body.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one mail.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The transport the settings ask for: SMTP when `smtp_url` is set, files
/// under `<data_dir>/mail/` otherwise.
pub fn from_settings(
    smtp_url: Option<&str>,
    from: &str,
    data_dir: &Path,
) -> Result<Arc<dyn Mailer>, MailError> {
    match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Ok(Arc::new(SmtpMailer::new(url, from)?)),
        None => Ok(Arc::new(FileMailer::new(data_dir.join("mail"), from))),
    }
}

/// Builds the RFC 5322 message both transports send.
fn build_message(from: &str, mail: &Mail) -> Result<lettre::Message, MailError> {
    let bad = |e: lettre::address::AddressError| MailError::Build(e.to_string());
    lettre::Message::builder()
        .from(from.parse().map_err(bad)?)
        .to(mail.to.parse().map_err(bad)?)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError::Build(e.to_string()))
}
