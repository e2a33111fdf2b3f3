//! Webhooks: a job names URLs and the events they want (`started`,
//! `succeeded`, `failed` of its runs; none listed is these three;
//! `recovered`: its first success after failed runs, `paused`: the job was
//! paused, when listed); a workflow the same
//! for its workflow runs (`workflow.started`, `workflow.succeeded`,
//! `workflow.failed`). The notifier listens to
//! the event bus, so it never holds up a run; each delivery is a POST of a
//! JSON event through the same SSRF wall as plugin HTTP, signed with
//! HMAC-SHA256 under a key derived per tenant from the daemon's master key,
//! and retried with exponential backoff until a 2xx or its last attempt.
//!
//! Signature: `X-Sandcron-Signature: sha256=<hex>` over
//! `<X-Sandcron-Timestamp>.<body>`, so a receiver can refuse replays of old
//! deliveries by their timestamp.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::{Semaphore, broadcast};

use crate::events::{Event, EventBus, EventData};
use crate::mail::Mailer;
use crate::model::RunStatus;
use crate::model::job::{Webhook, WebhookEvent};
use crate::model::workflow_run::WorkflowRunStatus;
use crate::outbound::{FetchRequest, HttpGrant, Outbound};
use crate::store::Store;
use crate::tenancy::Tenants;
use crate::vault::Vault;

/// Attempts per delivery (the first and its retries).
pub const ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled for each next one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Deliveries in flight at once; more wait for a place, and past
/// [`MAX_PENDING`] waiting ones are dropped (and logged).
const IN_FLIGHT: usize = 32;
const MAX_PENDING: usize = 10_000;
/// Time per delivery attempt.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The key derivation purpose of webhook signing keys.
const SIGNING: &str = "webhook-signing";

/// HMAC-SHA256 of the concatenated parts, hex.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The signature header's value for a body sent at `timestamp`, keyed with
/// the tenant's signing secret (the whole `whsec_...` text).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let stamp = timestamp.to_string();
    format!(
        "sha256={}",
        hmac_hex(secret.as_bytes(), &[stamp.as_bytes(), b".", body])
    )
}

/// The tenant's webhook signing secret, as the API shows it to the tenant.
pub fn signing_secret(vault: &Vault, tenant: &str) -> String {
    format!("whsec_{}", hex::encode(vault.derived_key(SIGNING, tenant)))
}

/// What a run or workflow event means to a webhook, if anything: the
/// webhook event and the delivery's event name.
fn webhook_event(event: &Event) -> Option<(WebhookEvent, &'static str)> {
    let workflow = match &event.data {
        EventData::Workflow(workflow) => Some(workflow.status),
        _ => None,
    };
    match (event.kind, event.run_status(), workflow) {
        ("run.started", _, _) => Some((WebhookEvent::Started, "run.started")),
        ("run.finished", Some(RunStatus::Succeeded), _) => Some((WebhookEvent::Succeeded, "run.succeeded")),
        ("run.finished", Some(RunStatus::Failed), _) => Some((WebhookEvent::Failed, "run.failed")),
        ("run.recovered", _, _) => Some((WebhookEvent::Recovered, "run.recovered")),
        ("job.paused", _, _) => Some((WebhookEvent::Paused, "job.paused")),
        ("workflow.started", _, _) => Some((WebhookEvent::Started, "workflow.started")),
        ("workflow.finished", _, Some(WorkflowRunStatus::Succeeded)) => {
            Some((WebhookEvent::Succeeded, "workflow.succeeded"))
        }
        ("workflow.finished", _, Some(WorkflowRunStatus::Failed)) => Some((WebhookEvent::Failed, "workflow.failed")),
        _ => None,
    }
}

/// One webhook call (or e-mail) to make.
struct Delivery {
    id: String,
    tenant: String,
    url: String,
    event: &'static str,
    run: serde_json::Value,
    body: Vec<u8>,
}

/// The plain-text e-mail of a run, job or workflow event.
fn mail_text(delivery: &Delivery) -> (String, String) {
    let run = &delivery.run;
    if run.get("run_id").is_none() && run.get("workflow_run_id").is_none() {
        let text = |field: &str| run[field].as_str().unwrap_or("-").to_string();
        let subject = format!("[sandcron] {}: {}", text("name"), delivery.event);
        let body = format!(
            "Tenant:    {}\nJob:       {} ({})\nEvent:     {}\nWhy:       {}\n",
            delivery.tenant,
            text("name"),
            text("job_id"),
            delivery.event,
            text("reason"),
        );
        return (subject, body);
    }
    if let Some(id) = run["workflow_run_id"].as_str() {
        let text = |field: &str| run[field].as_str().unwrap_or("-").to_string();
        let subject = format!(
            "[sandcron] workflow {}: {} ({})",
            text("workflow"),
            delivery.event,
            text("status")
        );
        let mut body = format!(
            "Tenant:    {}\nWorkflow:  {}\nRun:       {id}\nEvent:     {}\nStatus:    {}\nStarted:   {}\nFinished:  {}\n",
            delivery.tenant,
            text("workflow"),
            delivery.event,
            text("status"),
            text("started_at"),
            text("finished_at"),
        );
        if let Some(error) = run["error"].as_str() {
            body.push_str(&format!("Error:     {error}\n"));
        }
        return (subject, body);
    }
    let text = |field: &str| run[field].as_str().unwrap_or("-").to_string();
    let subject = format!(
        "[sandcron] {}: {} ({})",
        text("job_name"),
        delivery.event,
        text("status")
    );
    let mut body = format!(
        "Tenant:    {}\nJob:       {} ({})\nRun:       {} (attempt {}, trigger {})\nEvent:     {}\nStatus:    {}\nDue:       {}\nStarted:   {}\nFinished:  {}\n",
        delivery.tenant,
        text("job_name"),
        text("job_id"),
        text("run_id"),
        run["attempt"],
        text("trigger"),
        delivery.event,
        text("status"),
        text("scheduled_at"),
        text("started_at"),
        text("finished_at"),
    );
    if let Some(ms) = run["duration_ms"].as_u64() {
        body.push_str(&format!("Duration:  {ms} ms\n"));
    }
    if let Some(error) = run["error"].as_object() {
        body.push_str(&format!(
            "Error:     {}: {}\n",
            error.get("kind").and_then(|kind| kind.as_str()).unwrap_or("-"),
            error.get("message").and_then(|message| message.as_str()).unwrap_or("-")
        ));
    }
    (subject, body)
}

/// Sends webhooks for run events.
pub struct Notifier {
    store: Arc<dyn Store>,
    tenants: Arc<Tenants>,
    outbound: Arc<Outbound>,
    vault: Arc<Vault>,
    mailer: Option<Arc<Mailer>>,
    places: Semaphore,
    pending: AtomicUsize,
}

impl Notifier {
    /// A notifier posting through `outbound` and mailing through `mailer`.
    pub fn new(
        store: Arc<dyn Store>,
        tenants: Arc<Tenants>,
        outbound: Arc<Outbound>,
        vault: Arc<Vault>,
        mailer: Option<Arc<Mailer>>,
    ) -> Notifier {
        Notifier {
            store,
            tenants,
            outbound,
            vault,
            mailer,
            places: Semaphore::new(IN_FLIGHT),
            pending: AtomicUsize::new(0),
        }
    }

    /// The webhooks of a job (two reads per run, most of them of jobs with
    /// none: the store answers from its cache of jobs' hooks, which every
    /// write of a job updates); None if it is gone.
    fn webhooks_of(&self, tenant: &str, job_id: &str) -> Option<Vec<Webhook>> {
        match self.store.job_hooks(tenant, job_id) {
            Ok(hooks) => hooks.map(|hooks| hooks.webhooks),
            Err(error) => {
                tracing::warn!(%error, job_id, "cannot read the job for its webhooks");
                None
            }
        }
    }

    /// The webhooks of a workflow; None if it is gone.
    fn workflow_webhooks(&self, tenant: &str, name: &str) -> Option<Vec<Webhook>> {
        match self.store.workflow(tenant, name) {
            Ok(workflow) => workflow.map(|workflow| workflow.webhooks),
            Err(error) => {
                tracing::warn!(%error, workflow = name, "cannot read the workflow for its webhooks");
                None
            }
        }
    }

    /// Listens to `bus` until it closes.
    pub fn start(self: Arc<Self>, bus: &EventBus) {
        let mut events = bus.listen();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => self.consider(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "webhook notifier fell behind; some deliveries were not made");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Queues the deliveries an event asks for.
    fn consider(self: &Arc<Self>, event: &Event) {
        let Some((wanted, name)) = webhook_event(event) else {
            return;
        };
        let job_id = event.job_id();
        let webhooks = match &event.data {
            EventData::Workflow(workflow) => self.workflow_webhooks(&event.tenant, &workflow.workflow),
            _ => self.webhooks_of(&event.tenant, job_id),
        };
        let Some(webhooks) = webhooks else {
            return;
        };
        for webhook in webhooks.iter() {
            // None listed: the runs' three (as before `recovered` and `paused`).
            let default = matches!(
                wanted,
                WebhookEvent::Started | WebhookEvent::Succeeded | WebhookEvent::Failed
            );
            if !(webhook.on.contains(&wanted) || webhook.on.is_empty() && default) {
                continue;
            }
            if webhook.url.starts_with("mailto:") && self.mailer.is_none() {
                tracing::warn!(job_id, url = %webhook.url, "e-mail is not configured (smtp_url); not sent");
                continue;
            }
            let id = crate::model::new_id();
            let subject = match &event.data {
                EventData::Workflow(_) => "workflow_run",
                EventData::Job(_) => "job",
                EventData::Run(_) => "run",
            };
            let body = json!({
                "id": id,
                "event": name,
                "tenant": event.tenant,
                "at": event.at,
                subject: event.data,
            });
            let delivery = Delivery {
                id,
                tenant: event.tenant.clone(),
                url: webhook.url.clone(),
                event: name,
                run: serde_json::to_value(&event.data).unwrap_or_default(),
                body: serde_json::to_vec(&body).unwrap_or_default(),
            };
            if self.pending.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(url = %delivery.url, "too many webhook deliveries waiting; this one is dropped");
                continue;
            }
            let notifier = self.clone();
            tokio::spawn(async move {
                notifier.deliver(delivery).await;
                notifier.pending.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// Tries a delivery until it is taken (a 2xx answer, or the SMTP
    /// server's acceptance) or its last attempt.
    async fn deliver(&self, delivery: Delivery) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let outcome = {
                let Ok(_place) = self.places.acquire().await else {
                    return;
                };
                match (delivery.url.strip_prefix("mailto:"), &self.mailer) {
                    (Some(address), Some(mailer)) => {
                        let (subject, body) = mail_text(&delivery);
                        mailer.send(address, &subject, body).await
                    }
                    _ => self.post(&delivery, attempt).await,
                }
            };
            match outcome {
                Ok(()) => {
                    tracing::debug!(delivery = %delivery.id, url = %delivery.url, attempt, "notification delivered");
                    return;
                }
                Err(problem) => {
                    tracing::info!(delivery = %delivery.id, url = %delivery.url, attempt, %problem, "notification not delivered")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        tracing::warn!(delivery = %delivery.id, url = %delivery.url, "notification given up after {ATTEMPTS} attempts");
    }

    /// One signed POST of a webhook delivery.
    async fn post(&self, delivery: &Delivery, attempt: u32) -> Result<(), String> {
        let secret = signing_secret(&self.vault, &delivery.tenant);
        let grant = HttpGrant::any_host(self.tenants.get(&delivery.tenant).and_then(|tenant| tenant.http_allow));
        let timestamp = chrono::Utc::now().timestamp();
        let request = FetchRequest {
            method: "POST".into(),
            url: delivery.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-sandcron-event".into(), delivery.event.into()),
                ("x-sandcron-delivery".into(), delivery.id.clone()),
                ("x-sandcron-attempt".into(), attempt.to_string()),
                ("x-sandcron-timestamp".into(), timestamp.to_string()),
                (
                    "x-sandcron-signature".into(),
                    signature(&secret, timestamp, &delivery.body),
                ),
            ],
            body: delivery.body.clone(),
            timeout: Some(TIMEOUT),
        };
        let mut budget = 1;
        let response = self
            .outbound
            .fetch_without_redirects(&grant, request, Instant::now() + TIMEOUT, &mut budget)
            .await?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC-style known answer for the HMAC itself.
        assert_eq!(
            hmac_hex(b"key", &[b"The quick brown fox ", b"jumps over the lazy dog"]),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            signature("key", 17, b"{}"),
            format!("sha256={}", hmac_hex(b"key", &[b"17.{}"]))
        );
        let one = signature("whsec_a", 1_700_000_000, b"{\"a\":1}");
        assert_ne!(one, signature("whsec_a", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(one, signature("whsec_a", 1_700_000_000, b"{\"a\":2}"));
        assert_ne!(one, signature("whsec_b", 1_700_000_000, b"{\"a\":1}"));
    }

    #[test]
    fn signing_secrets_differ_per_tenant_and_stay_put() {
        let vault = Vault::new([3; 32]);
        assert_eq!(signing_secret(&vault, "acme"), signing_secret(&vault, "acme"));
        assert_ne!(signing_secret(&vault, "acme"), signing_secret(&vault, "beta"));
        assert_ne!(
            signing_secret(&vault, "acme"),
            signing_secret(&Vault::new([4; 32]), "acme")
        );
    }
}
