//! Outbound HTTP for plugins (the `http` import), through reqwest: only to
//! hosts the job's `http_allow` lists (and the tenant's cap allows), only
//! http and https, only to addresses the SSRF wall ([`wall`]) lets through,
//! with redirects followed by hand so each hop is checked again, and caps on
//! requests per run, bytes per response and time per request.

pub mod wall;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use wall::{Lookup, Wall, WallResolver};

/// Requests one run may make (each redirect hop counts).
pub const MAX_REQUESTS_PER_RUN: u32 = 100;
/// Largest response body, bytes.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Largest request body, bytes.
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
/// Time per request when the plugin names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most time one request may take.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// Who may reach what: the job's patterns and the tenant's cap on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpGrant {
    /// The job's `http_allow`.
    pub job: Vec<String>,
    /// The tenant's admin-set allow-list; None is no cap.
    pub tenant: Option<Vec<String>>,
    /// Any host the tenant's cap allows, whatever `job` says (webhooks,
    /// whose URLs the job names one by one). The wall still applies.
    pub any_host: bool,
}

impl HttpGrant {
    /// Any host within the tenant's cap (webhook deliveries).
    pub fn any_host(tenant: Option<Vec<String>>) -> HttpGrant {
        HttpGrant {
            job: Vec::new(),
            tenant,
            any_host: true,
        }
    }
}

/// A plugin's request.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// GET, POST, ...
    pub method: String,
    /// Absolute http(s) URL.
    pub url: String,
    /// Header pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The plugin's own timeout.
    pub timeout: Option<Duration>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Status code.
    pub status: u16,
    /// Header pairs (values not UTF-8 are shown lossily).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Does `pattern` (`host`, `*.domain`, either with `:port`) admit `host` on
/// `port`? Without a port, any port of the host matches; `*.example.com`
/// matches its subdomains, not `example.com` itself. Case-insensitive.
pub fn pattern_admits(pattern: &str, host: &str, port: u16) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let (pattern_host, pattern_port) = match pattern.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host.to_string(), port.parse::<u16>().ok())
        }
        _ => (pattern.clone(), None),
    };
    if pattern_port.is_some_and(|wanted| wanted != port) {
        return false;
    }
    let bare = |text: &str| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_string()
    };
    let host = bare(&host.to_ascii_lowercase());
    match pattern_host.strip_prefix("*.") {
        Some(domain) => host.ends_with(&format!(".{}", bare(domain))),
        None => host == bare(&pattern_host),
    }
}

fn admitted_by(patterns: &[String], host: &str, port: u16) -> bool {
    patterns.iter().any(|pattern| pattern_admits(pattern, host, port))
}

/// The daemon's HTTP client behind the wall.
pub struct Outbound {
    client: reqwest::Client,
    wall: Arc<Wall>,
}

impl Outbound {
    /// A client that lets `allowed` ranges through the wall and resolves
    /// `pinned` names without DNS.
    pub fn new(allowed: Vec<ipnet::IpNet>, pinned: HashMap<String, Vec<IpAddr>>) -> anyhow::Result<Outbound> {
        Outbound::with_lookup(allowed, pinned, wall::system_lookup())
    }

    /// [`Outbound::new`] with a given resolver (tests).
    pub fn with_lookup(
        allowed: Vec<ipnet::IpNet>,
        pinned: HashMap<String, Vec<IpAddr>>,
        lookup: Lookup,
    ) -> anyhow::Result<Outbound> {
        let wall = Arc::new(Wall::new(allowed));
        let resolver = WallResolver::new(wall.clone(), pinned, lookup);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            // A proxy would connect for us, past the wall.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("sandcron/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound { client, wall })
    }

    /// Is `url` one the grant and the wall allow, before any connection?
    fn check_target(&self, grant: &HttpGrant, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("only http and https URLs are allowed, not {}:", url.scheme()));
        }
        let Some(host) = url.host_str() else {
            return Err("the URL has no host".to_string());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if grant.job.is_empty() && !grant.any_host {
            return Err("this job has no http_allow list, so it may not reach any host".to_string());
        }
        if !grant.any_host && !admitted_by(&grant.job, host, port) {
            return Err(format!("{host}:{port} is not in this job's http_allow {:?}", grant.job));
        }
        if let Some(cap) = &grant.tenant
            && !admitted_by(cap, host, port)
        {
            return Err(format!("{host}:{port} is outside the hosts this tenant may reach"));
        }
        // IP literals are connected to without a lookup: check them here.
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.wall.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.wall.check(IpAddr::V6(ip)),
            _ => Ok(()),
        }
    }

    /// Sends `request` for a run, following redirects (each hop checked as
    /// the first was and counted against `budget`), before `deadline`.
    pub async fn fetch(
        &self,
        grant: &HttpGrant,
        request: FetchRequest,
        deadline: Instant,
        budget: &mut u32,
    ) -> Result<FetchResponse, String> {
        self.send(grant, request, deadline, budget, MAX_REDIRECTS).await
    }

    /// [`Outbound::fetch`] answering a redirect as it is (webhooks).
    pub async fn fetch_without_redirects(
        &self,
        grant: &HttpGrant,
        request: FetchRequest,
        deadline: Instant,
        budget: &mut u32,
    ) -> Result<FetchResponse, String> {
        self.send(grant, request, deadline, budget, 0).await
    }

    async fn send(
        &self,
        grant: &HttpGrant,
        request: FetchRequest,
        deadline: Instant,
        budget: &mut u32,
        max_redirects: usize,
    ) -> Result<FetchResponse, String> {
        let method_text = request.method.to_ascii_uppercase();
        let mut url = Url::parse(&request.url).map_err(|error| format!("{:?} is not a URL: {error}", request.url))?;
        let mut method = reqwest::Method::from_bytes(method_text.as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        if request.body.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "the request body is {} bytes; the limit is {MAX_REQUEST_BYTES}",
                request.body.len()
            ));
        }
        let mut headers = plugin_headers(&request.headers)?;
        let mut body = request.body;
        let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
        for hop in 0..=max_redirects {
            self.check_target(grant, &url)?;
            if *budget == 0 {
                return Err(format!("this run has made its {MAX_REQUESTS_PER_RUN} requests"));
            }
            *budget -= 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the run's deadline has passed".to_string());
            }
            let send = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send();
            let response = match tokio::time::timeout(timeout.min(left), send).await {
                Err(_) => return Err(format!("no answer within {} ms", timeout.min(left).as_millis())),
                Ok(Err(error)) => return Err(describe(&error)),
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            if status.is_redirection()
                && max_redirects > 0
                && let Some(location) = location
            {
                if hop == max_redirects {
                    return Err(format!("more than {max_redirects} redirects"));
                }
                let next = url
                    .join(&location)
                    .map_err(|error| format!("redirect to {location:?}: {error}"))?;
                let switch_to_get = status == reqwest::StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST);
                if switch_to_get {
                    method = reqwest::Method::GET;
                    body.clear();
                    headers.remove(reqwest::header::CONTENT_TYPE);
                    headers.remove(reqwest::header::CONTENT_LENGTH);
                }
                if next.origin() != url.origin() {
                    // What the plugin meant for one origin is not sent to
                    // another: only headers that carry no credential or
                    // state go on, and no body (307/308 would resend it).
                    headers = headers_for_another_origin(&headers);
                    if !body.is_empty() {
                        body.clear();
                        headers.remove(reqwest::header::CONTENT_TYPE);
                    }
                }
                url = next;
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now()).min(timeout);
            return match tokio::time::timeout(remaining, read_capped(response)).await {
                Err(_) => Err(format!("the response did not arrive within {} ms", timeout.as_millis())),
                Ok(result) => result,
            };
        }
        Err(format!("more than {max_redirects} redirects"))
    }
}

/// Headers the connection itself owns: the client sets them from the URL
/// and the body. A plugin setting `Host` could reach, through a shared
/// front end, a site it was not granted; the others could smuggle a
/// second request or change how the body is framed.
const CONNECTION_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// Headers that follow a redirect to another origin.
const CROSS_ORIGIN_SAFE_HEADERS: [&str; 4] = ["accept", "accept-language", "content-type", "user-agent"];

/// A plugin's headers as a map, refusing malformed ones and those the
/// connection owns.
fn plugin_headers(pairs: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
        if CONNECTION_HEADERS.contains(&name.as_str()) {
            return Err(format!(
                "header {name} is set by the host from the URL and body; a plugin may not set it"
            ));
        }
        let value = HeaderValue::from_str(value).map_err(|_| format!("the value of header {name} is not valid"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The headers that may follow a redirect to another origin.
fn headers_for_another_origin(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for (name, value) in headers {
        if CROSS_ORIGIN_SAFE_HEADERS.contains(&name.as_str()) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

async fn read_capped(mut response: reqwest::Response) -> Result<FetchResponse, String> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(format!(
            "the response body is larger than the {MAX_RESPONSE_BYTES}-byte limit"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "the response body is larger than the {MAX_RESPONSE_BYTES}-byte limit"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(FetchResponse { status, headers, body })
}

/// A reqwest error with its causes (the wall's refusal is one of them).
fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = current.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_admit_exact_hosts_subdomains_and_ports() {
        assert!(pattern_admits("api.example.com", "api.example.com", 443));
        assert!(pattern_admits("API.example.com", "api.EXAMPLE.com", 80));
        assert!(!pattern_admits("api.example.com", "example.com", 443));
        assert!(!pattern_admits("api.example.com", "api.example.com.evil.net", 443));
        assert!(pattern_admits("*.example.com", "a.example.com", 443));
        assert!(pattern_admits("*.example.com", "a.b.example.com", 443));
        assert!(!pattern_admits("*.example.com", "example.com", 443));
        assert!(!pattern_admits("*.example.com", "badexample.com", 443));
        assert!(pattern_admits("example.com:8443", "example.com", 8443));
        assert!(!pattern_admits("example.com:8443", "example.com", 443));
        assert!(pattern_admits("127.0.0.1", "127.0.0.1", 39001));
        assert!(pattern_admits("[::1]", "[::1]", 80));
        assert!(pattern_admits("[::1]:8080", "[::1]", 8080));
        assert!(!pattern_admits("[::1]:8080", "[::1]", 8081));
    }

    #[test]
    fn plugins_may_not_set_the_headers_the_connection_owns() {
        let pairs = |name: &str| vec![(name.to_string(), "x".to_string())];
        for name in [
            "Host",
            "host",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "Upgrade",
            "TE",
        ] {
            let refusal = plugin_headers(&pairs(name)).unwrap_err();
            assert!(refusal.contains("may not set"), "{name}: {refusal}");
        }
        let allowed = plugin_headers(&[
            ("Authorization".into(), "Bearer t".into()),
            ("X-Trace".into(), "1".into()),
            ("Accept".into(), "application/json".into()),
        ])
        .unwrap();
        assert_eq!(allowed.len(), 3);
        assert!(
            plugin_headers(&pairs("bad header"))
                .unwrap_err()
                .contains("not a header name")
        );
    }

    #[test]
    fn only_safe_headers_follow_a_redirect_to_another_origin() {
        let headers = plugin_headers(&[
            ("Authorization".into(), "Bearer t".into()),
            ("Cookie".into(), "a=b".into()),
            ("X-Api-Key".into(), "k".into()),
            ("X-Custom".into(), "c".into()),
            ("Accept".into(), "application/json".into()),
            ("Accept-Language".into(), "en".into()),
            ("Content-Type".into(), "text/plain".into()),
            ("User-Agent".into(), "job".into()),
        ])
        .unwrap();
        let kept = headers_for_another_origin(&headers);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "accept-language", "content-type", "user-agent"]);
    }

    fn outbound() -> Outbound {
        let lookup: Lookup = Arc::new(|_name: String| Box::pin(async { Ok(vec!["127.0.0.1".parse().unwrap()]) }));
        Outbound::with_lookup(Vec::new(), HashMap::new(), lookup).unwrap()
    }

    fn grant(job: &[&str], tenant: Option<&[&str]>) -> HttpGrant {
        HttpGrant {
            job: job.iter().map(|text| text.to_string()).collect(),
            tenant: tenant.map(|list| list.iter().map(|text| text.to_string()).collect()),
            any_host: false,
        }
    }

    fn target(outbound: &Outbound, grant: &HttpGrant, url: &str) -> Result<(), String> {
        outbound.check_target(grant, &Url::parse(url).unwrap())
    }

    #[tokio::test]
    async fn targets_are_checked_before_any_connection() {
        let outbound = outbound();
        let open = grant(&["*.example.com", "127.0.0.1", "[::1]", "2130706433", "0x7f.1"], None);
        assert!(target(&outbound, &open, "https://api.example.com/x").is_ok());
        assert!(
            target(&outbound, &grant(&[], None), "https://api.example.com/")
                .unwrap_err()
                .contains("no http_allow")
        );
        assert!(
            target(&outbound, &open, "https://example.org/")
                .unwrap_err()
                .contains("not in this job's")
        );
        assert!(
            target(&outbound, &open, "ftp://api.example.com/")
                .unwrap_err()
                .contains("only http")
        );
        assert!(
            target(&outbound, &open, "file:///etc/passwd")
                .unwrap_err()
                .contains("only http")
        );
        // IP literals in any spelling are judged by the wall.
        for url in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            assert!(target(&outbound, &open, url).unwrap_err().contains("loopback"), "{url}");
        }
        let capped = grant(&["*.example.com"], Some(&["api.example.com"]));
        assert!(target(&outbound, &capped, "https://api.example.com/").is_ok());
        assert!(
            target(&outbound, &capped, "https://other.example.com/")
                .unwrap_err()
                .contains("outside the hosts this tenant")
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_without_a_connection() {
        let outbound = outbound();
        let mut budget = 3;
        let request = FetchRequest {
            method: "GET".into(),
            url: "http://rebind.example.com:9/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let error = outbound
            .fetch(&grant(&["*.example.com"], None), request, deadline, &mut budget)
            .await
            .unwrap_err();
        assert!(error.contains("127.0.0.1 is a loopback address"), "{error}");
        assert_eq!(budget, 2);
    }

    #[tokio::test]
    async fn a_run_that_has_spent_its_requests_gets_no_more() {
        let outbound = outbound();
        let request = FetchRequest {
            method: "GET".into(),
            url: "https://api.example.com/".into(),
            headers: vec![("x-a".into(), "b".into())],
            body: Vec::new(),
            timeout: None,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut budget = 0;
        let error = outbound
            .fetch(
                &grant(&["api.example.com"], None),
                request.clone(),
                deadline,
                &mut budget,
            )
            .await
            .unwrap_err();
        assert!(error.contains("made its 100 requests"), "{error}");
        // Bad methods, headers and oversized bodies are refused before sending.
        let mut budget = 5;
        for (bad, why) in [
            (
                FetchRequest {
                    method: "GE T".into(),
                    ..request.clone()
                },
                "not an HTTP method",
            ),
            (
                FetchRequest {
                    headers: vec![("bad header".into(), "x".into())],
                    ..request.clone()
                },
                "not a header name",
            ),
            (
                FetchRequest {
                    body: vec![0; MAX_REQUEST_BYTES + 1],
                    ..request.clone()
                },
                "request body is",
            ),
            (
                FetchRequest {
                    url: "not a url".into(),
                    ..request.clone()
                },
                "is not a URL",
            ),
        ] {
            let error = outbound
                .fetch(&grant(&["api.example.com"], None), bad, deadline, &mut budget)
                .await
                .unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        assert_eq!(budget, 5, "refusals before sending cost nothing");
        let past = Instant::now() - Duration::from_millis(1);
        let error = outbound
            .fetch(&grant(&["api.example.com"], None), request, past, &mut budget)
            .await
            .unwrap_err();
        assert!(error.contains("deadline has passed"), "{error}");
    }
}
