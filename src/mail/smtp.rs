//! The SMTP transport (`smtp_url`), over lettre.
//!
//! The URL decides the security: `smtps://host[:465]` is TLS from the first
//! byte, `smtp://host[:587]?tls=required` upgrades with STARTTLS and refuses
//! to go on without it, `?tls=opportunistic` upgrades when offered, and plain
//! `smtp://host` sends in the clear (a relay on the same host). Credentials
//! go in the URL's user info: `smtp://user:pass@host?tls=required`.

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Mail, MailError, Mailer, build_message};

/// Sends through one SMTP server, reusing connections.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl std::fmt::Debug for SmtpMailer {
    // The transport holds the credentials: leave it out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A transport for `url`; nothing is connected until the first mail.
    pub fn new(url: &str, from: &str) -> Result<Self, MailError> {
        // lettre's message would echo the URL, password included.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| MailError::Smtp("smtp_url is not a valid SMTP URL".to_owned()))?
            .build();
        build_message(
            from,
            &Mail {
                to: "check@example.com".to_owned(),
                subject: String::new(),
                body: String::new(),
                kind: "check",
            },
        )?;
        Ok(Self {
            transport,
            from: from.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        tracing::info!(
            kind = mail.kind,
            to = %mail.to,
            code = %response.code(),
            "mail handed to the SMTP server"
        );
        Ok(())
    }
}
