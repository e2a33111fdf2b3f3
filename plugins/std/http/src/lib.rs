//! `std.http`, the daemon's built-in plugin: one HTTP request, described by
//! the job's input and templated with the run's facts.
//!
//! ```json
//! {"url": "https://hooks.example.com/ping?run={{run_id}}", "method": "POST",
//!  "headers": {"x-job": "{{job}}"}, "body": {"at": "{{timestamp}}"},
//!  "expect": ["2xx", 409], "timeout": "5s"}
//! ```
//!
//! It is an ordinary component of world `job`: the request goes through
//! the host's `http` import, so the job's `http_allow`, the tenant's cap and
//! the SSRF wall apply as to any plugin. The logic ([`request`],
//! [`template`], [`expect`], [`answer`]) is plain Rust that compiles
//! natively for its tests; only the glue below talks to the host.

pub mod answer;
pub mod expect;
pub mod request;
pub mod template;

#[cfg(target_arch = "wasm32")]
mod job {
    use std::time::Instant;

    use sandcron_plugin::http::{Request, fetch};
    use sandcron_plugin::{Context, log, run_info};

    use crate::template::{Facts, Renderer};

    fn run(ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
        let scheduled_at_ms = ctx.scheduled_at_ms;
        let facts = Facts {
            run_id: ctx.run_id,
            job: ctx.job_name,
            attempt: ctx.attempt,
            scheduled_at_ms,
        };
        let renderer = Renderer::new(facts, || run_info::utc_offset(scheduled_at_ms));
        let mut call = crate::request::plan(&input, &renderer)?;
        let started = Instant::now();
        let response = fetch(&Request {
            method: call.method.clone(),
            url: call.url.clone(),
            headers: call.headers.clone(),
            body: std::mem::take(&mut call.body),
            timeout_ms: call.timeout_ms,
        })?;
        // Integer arithmetic: formatting a float adds 22 KB of code.
        let micros = started.elapsed().as_micros();
        log::info(&format!(
            "{} {} -> {} ({} bytes) in {}.{:03} ms",
            call.method,
            call.url,
            response.status,
            response.body.len(),
            micros / 1000,
            micros % 1000
        ));
        crate::answer::judge(&call, response.status, &response.headers, &response.body)
    }

    sandcron_plugin::job!(run);
}
