//! The zero-setup transport: each mail becomes an `.eml` file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::{Mail, MailError, Mailer, build_message};

/// Writes each mail to `<dir>/<time>-<id>.eml` (mode 0600: the files hold
/// one-time tokens). The file name sorts by time.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

impl FileMailer {
    /// Mail goes to files in `dir` (created when the first mail is written).
    pub fn new(dir: PathBuf, from: &str) -> Self {
        Self {
            dir,
            from: from.to_owned(),
        }
    }

    fn write(&self, mail: &Mail) -> Result<PathBuf, MailError> {
        let message = build_message(&self.from, mail)?.formatted();
        std::fs::create_dir_all(&self.dir)?;
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::now_v7().simple()
        );
        let path = self.dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&message)?;
        file.sync_all()?;
        Ok(path)
    }
}

#[async_trait::async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let this = self.clone();
        let owned = mail.clone();
        let path = tokio::task::spawn_blocking(move || this.write(&owned))
            .await
            .map_err(|e| MailError::Io(std::io::Error::other(e)))??;
        tracing::info!(kind = mail.kind, to = %mail.to, path = %path.display(), "mail written to a file");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mail_becomes_a_private_eml_file_with_its_body() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = FileMailer::new(dir.path().join("mail"), "Parley <parley@localhost>");
        let mail = Mail {
            to: "alice@example.com".to_owned(),
            subject: "Hello".to_owned(),
            body: "token: abc123".to_owned(),
            kind: "test",
        };
        mailer.send(&mail).await.expect("sent");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .expect("the mail dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
        let text = std::fs::read_to_string(&files[0]).expect("read");
        assert!(text.contains("To: alice@example.com"), "{text}");
        assert!(text.contains("Subject: Hello"), "{text}");
        assert!(text.contains("token: abc123"), "{text}");
        let mode = std::fs::metadata(&files[0])
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_bad_recipient_is_an_error_not_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = FileMailer::new(dir.path().join("mail"), "parley@localhost");
        let mail = Mail {
            to: "not an address".to_owned(),
            subject: "x".to_owned(),
            body: "y".to_owned(),
            kind: "test",
        };
        assert!(matches!(mailer.send(&mail).await, Err(MailError::Build(_))));
    }
}
