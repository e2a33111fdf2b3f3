//! An SMTP server on 127.0.0.1 that accepts every message and keeps it (a
//! few lines of the protocol; nothing leaves the machine), for the tests of
//! e-mail notices and digests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub text: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> String {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.text
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].to_string())
            .unwrap_or_default()
    }

    /// The body, quoted-printable soft breaks and escapes undone.
    pub fn body(&self) -> String {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let joined = body.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = joined.as_bytes();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'='
                && index + 2 < bytes.len()
                && let Ok(byte) = u8::from_str_radix(&joined[index + 1..index + 3], 16)
            {
                out.push(byte);
                index += 3;
                continue;
            }
            out.push(bytes[index]);
            index += 1;
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    }
}

/// An SMTP server that accepts every message and keeps it.
pub async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
    let kept = mails.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut to = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("MAIL FROM") {
                        to.clear();
                        b"250 OK\r\n"
                    } else if command.starts_with("RCPT TO") {
                        to.push(
                            line[8..]
                                .trim()
                                .trim_matches(|c| c == '<' || c == '>' || c == ':')
                                .to_string(),
                        );
                        b"250 OK\r\n"
                    } else if command == "DATA" {
                        let _ = write.write_all(b"354 go on\r\n").await;
                        let mut text = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            text.push_str(&line);
                            text.push_str("\r\n");
                        }
                        kept.lock().unwrap().push(Mail { to: to.clone(), text });
                        b"250 OK kept\r\n"
                    } else if command == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, mails)
}

/// The mails `wanted` picks, once there is one or `wait` has passed.
pub async fn mails_matching(
    mails: &Arc<Mutex<Vec<Mail>>>,
    wait: Duration,
    wanted: impl Fn(&Mail) -> bool,
) -> Vec<Mail> {
    super::gathered(mails, 1, wait, wanted).await
}
