//! Black-box tests of e-mail: run notifications to `mailto:` webhooks and
//! tenants' digests, delivered to an SMTP sink on 127.0.0.1 that this test
//! runs itself (a few lines of the protocol; nothing leaves the machine).

mod common;

use std::time::Duration;

use common::TestDaemon;
use common::smtp::{mails_matching, smtp_sink};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn run_notifications_and_digests_arrive_by_mail() {
    let (port, mails) = smtp_sink().await;
    let url = format!("smtp://127.0.0.1:{port}");
    let daemon = TestDaemon::start_with(
        &[],
        &[
            ("SANDCRON_SMTP_URL", url.as_str()),
            ("SANDCRON_SMTP_FROM", "jobs <jobs@example.com>"),
        ],
    );
    daemon
        .job_with(
            "crash",
            "trap",
            json!({"webhooks": [{"url": "mailto:ops@example.com", "on": ["failed"]}]}),
        )
        .await;
    daemon.job_with("greet", "hello", json!({})).await;

    // The digest, every second; its window starts now.
    for (body, code) in [
        (json!({"cron": "61 * * * *", "to": ["a@example.com"]}), "invalid_cron"),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "to": ["a@example.com"]}),
            "unknown_timezone",
        ),
        (json!({"cron": "* * * * *", "to": ["not an address"]}), "invalid_field"),
        (json!({"cron": "* * * * *", "to": []}), "invalid_field"),
        (json!({"cron": "* * * * *"}), "invalid_field"),
    ] {
        let answer = daemon.call(Method::PUT, "/v1/digest", Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, code),
            "{body}: {}",
            answer.body
        );
    }
    let set = daemon
        .call(
            Method::PUT,
            "/v1/digest",
            Some(json!({"cron": "*/2 * * * * *", "timezone": "Europe/Berlin", "to": ["lead@example.com"]})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert!(set.body["next_at"].is_string(), "{}", set.body);

    let crash = daemon.run_job("crash", None).await;
    assert_eq!(crash["status"], "failed");
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");

    let notices = mails_matching(&mails, Duration::from_secs(10), |mail| mail.to == ["ops@example.com"]).await;
    assert_eq!(notices.len(), 1, "one failure notice: {notices:?}");
    let notice = &notices[0];
    assert!(
        notice.header("Subject").contains("crash: run.failed (failed)"),
        "{}",
        notice.text
    );
    assert!(notice.header("From").contains("jobs@example.com"), "{}", notice.text);
    let body = notice.body();
    assert!(
        body.contains(crash["id"].as_str().unwrap()) && body.contains("Error:     trap"),
        "{body}"
    );

    // A digest covering both runs comes within a few seconds.
    let digests = mails_matching(&mails, Duration::from_secs(10), |mail| {
        mail.to == ["lead@example.com"] && mail.body().contains("Runs: 2 (failed 1, succeeded 1)")
    })
    .await;
    assert!(!digests.is_empty(), "{:#?}", mails.lock().unwrap());
    let digest = &digests[0];
    assert!(
        digest
            .header("Subject")
            .starts_with("[sandcron] default: 2 runs, 1 failed"),
        "{}",
        digest.text
    );
    let body = digest.body();
    assert!(body.contains("Failures by kind:") && body.contains("trap"), "{body}");
    assert!(
        body.contains("Slowest jobs") && body.contains("greet") && body.contains("crash"),
        "{body}"
    );
    // The mail leaves before the daemon records it as sent: wait for the record.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let shown = daemon.call(Method::GET, "/v1/digest", None).await;
        if shown.body["last_sent_at"].is_string() || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(shown.body["last_sent_at"].is_string(), "{}", shown.body);

    // One sent on demand; then the digest is stopped.
    let sent = daemon.call(Method::POST, "/v1/digest/send", None).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let stopped = daemon.call(Method::DELETE, "/v1/digest", None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    let gone = daemon.call(Method::GET, "/v1/digest", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_mail_server_digests_are_refused_clearly() {
    let daemon = TestDaemon::start();
    let answer = daemon
        .call(
            Method::PUT,
            "/v1/digest",
            Some(json!({"cron": "0 8 * * *", "to": ["a@example.com"]})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "email_not_configured")
    );
    let bad = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "x", "plugin": "hello", "webhooks": [{"url": "mailto:nobody"}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}
