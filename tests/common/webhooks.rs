//! A webhook receiver on 127.0.0.1 for the tests, keeping every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;

/// A request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A receiver on 127.0.0.1: `/flaky` answers 500 to its first request, `/slow`
/// answers after 5 s, anything else 204.
pub async fn receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().fallback(axum::routing::any(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let path = uri.path().to_string();
                let earlier = {
                    let mut seen = seen.lock().unwrap();
                    let earlier = seen.iter().filter(|got| got.path == path).count();
                    seen.push(Received {
                        path: path.clone(),
                        headers: headers
                            .iter()
                            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_string()))
                            .collect(),
                        body: body.to_vec(),
                    });
                    earlier
                };
                match path.as_str() {
                    "/flaky" if earlier == 0 => StatusCode::INTERNAL_SERVER_ERROR,
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        StatusCode::NO_CONTENT
                    }
                    _ => StatusCode::NO_CONTENT,
                }
            }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

/// The requests to `path` once there are `count`, or those there are after `wait`.
pub async fn wait_for(got: &Arc<Mutex<Vec<Received>>>, path: &str, count: usize, wait: Duration) -> Vec<Received> {
    super::gathered(got, count, wait, |received| received.path == path).await
}
