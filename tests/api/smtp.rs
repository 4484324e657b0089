//! Mail through a real SMTP server: `smtp_url` set, the verification mail
//! of a registration arrives at a server the test runs on loopback, and its
//! token works.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Reply, spawn_app_with};
use crate::mailbox::SmtpSink;

#[tokio::test]
async fn with_smtp_url_set_mail_goes_to_the_smtp_server() {
    let sink = SmtpSink::start();
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(parley::config::Secret::new(url));
        s.mail_from = "Parley Test <noreply@parley.test>".to_owned();
    })
    .await;

    app.register_user("alice").await;
    let mail = sink.wait_for_mail("alice@example.com").await;

    assert!(
        mail.has_header("From: \"Parley Test\" <noreply@parley.test>")
            || mail.has_header("From: Parley Test <noreply@parley.test>"),
        "{}",
        mail.raw
    );
    assert!(
        mail.raw.contains("Confirm your email address"),
        "{}",
        mail.raw
    );
    let token = mail.token();
    let verified = app
        .post_json("/auth/email/verify", &json!({"token": token}))
        .await;
    Reply::of(verified)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(
        app.mail_files().is_empty(),
        "with SMTP on, nothing is written to the data dir"
    );
}
