//! Mail over SMTP, against a small SMTP server run by the test.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use voxreach_tests::TestApp;

/// Accepts SMTP sessions on a local port and keeps each message's DATA.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(vec![]));
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test.local ESMTP\r\n").await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        b"250-test.local\r\n250 OK\r\n"
                    } else if command.starts_with("DATA") {
                        write.write_all(b"354 end with .\r\n").await.ok();
                        let mut data = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            data.push_str(&line);
                            data.push('\n');
                        }
                        kept.lock().unwrap().push(data);
                        b"250 OK queued\r\n"
                    } else if command.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.ok();
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn mail_is_encrypted_until_sent_over_smtp_and_erased_after() {
    let (port, received) = smtp_server().await;
    let app = TestApp::spawn_with(|w| {
        w.smtp = Some(infrastructure::mailer::SmtpSettings {
            url: format!("smtp://127.0.0.1:{port}"),
            from: "VoxReach <no-reply@voxreach.test>".parse().unwrap(),
        });
    })
    .await;
    app.register("grace@example.com", "Graces").await;
    app.request_password_reset("grace@example.com").await;
    app.last_email_to("grace@example.com")
        .await
        .expect("the reset mail is queued");
    let stored: (Option<String>, String) =
        sqlx::query_as("SELECT body, sealed_body FROM email_outbox WHERE recipient = 'grace@example.com'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored.0, None);
    assert!(!stored.1.contains("token="), "the link is encrypted at rest");

    let delivery = app
        .state
        .scheduled
        .iter()
        .find(|job| job.name() == "mail-delivery")
        .expect("delivery runs when SMTP is configured");
    assert_eq!(delivery.run().await.unwrap(), 1);
    let messages = received.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("To: grace@example.com"), "{}", messages[0]);
    assert!(messages[0].contains("reset-password?token="), "{}", messages[0]);
    let sent: (Option<chrono::DateTime<chrono::Utc>>, Option<String>) =
        sqlx::query_as("SELECT sent_at, sealed_body FROM email_outbox WHERE recipient = 'grace@example.com'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(sent.0.is_some() && sent.1.is_none(), "sent, and the body erased");
    assert_eq!(delivery.run().await.unwrap(), 0, "sent once");
    let (_, ready) = app.get("/health/ready", None).await;
    assert_eq!(ready["mail"], "configured");
}

#[tokio::test]
async fn without_smtp_mail_waits_and_readiness_says_so() {
    let app = TestApp::spawn().await;
    assert!(app.state.scheduled.iter().all(|job| job.name() != "mail-delivery"));
    let (_, ready) = app.get("/health/ready", None).await;
    assert!(ready["mail"].as_str().unwrap().starts_with("not_configured"), "{ready}");
}
