//! `sandcron-plugin`: write a sandcron job as one function.
//!
//! ```ignore
//! use sandcron_plugin::{Context, log};
//!
//! fn run(ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
//!     log::info(&format!("run {} of job {}", ctx.run_id, ctx.job_name));
//!     Ok(input)
//! }
//!
//! sandcron_plugin::job!(run);
//! ```
//!
//! Or with typed JSON input and output (serde):
//!
//! ```ignore
//! use sandcron_plugin::Context;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Greeting { name: String }
//!
//! #[derive(Serialize)]
//! struct Reply { text: String }
//!
//! fn run(_ctx: Context, input: Greeting) -> Result<Reply, String> {
//!     Ok(Reply { text: format!("Hello, {}!", input.name) })
//! }
//!
//! sandcron_plugin::json_job!(run);
//! ```
//!
//! [`run_info`] tells the job's time zone and its offset at an instant.
//!
//! The bindings are generated from the `wit/` folder two levels up: the
//! repository's, the one source of the plugin contract, or the copy in a
//! project that `sandcron new` wrote (which puts this crate in
//! `sdk/sandcron-plugin/`). This crate only wraps them in plain Rust types
//! (`&str`, `Vec<u8>`, `Option`, `Result<_, String>`).

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "job",
        pub_export_macro: true,
        export_macro_name: "__export_job_world",
        default_bindings_module: "sandcron_plugin::bindings",
    });
}

use bindings::sandcron::plugin as wit;

pub use wit::types::Trigger;

/// What the daemon tells a run about itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// The tenant that owns the job.
    pub tenant: String,
    /// The job's id.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// This run's id.
    pub run_id: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// What started the run.
    pub trigger: Trigger,
    /// When the run was due, in milliseconds since the Unix epoch (UTC).
    pub scheduled_at_ms: i64,
}

impl From<wit::types::RunContext> for Context {
    fn from(ctx: wit::types::RunContext) -> Self {
        Context {
            tenant: ctx.tenant,
            job_id: ctx.job_id,
            job_name: ctx.job_name,
            run_id: ctx.run_id,
            attempt: ctx.attempt,
            trigger: ctx.trigger,
            scheduled_at_ms: ctx.scheduled_at,
        }
    }
}

/// Turns `fn run(ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String>`
/// into the component's `run` export.
#[macro_export]
macro_rules! job {
    ($run:path) => {
        #[doc(hidden)]
        pub struct __SandcronJob;

        impl $crate::bindings::Guest for __SandcronJob {
            fn run(
                ctx: $crate::bindings::sandcron::plugin::types::RunContext,
                input: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $run($crate::Context::from(ctx), input)
            }
        }

        $crate::bindings::__export_job_world!(__SandcronJob with_types_in $crate::bindings);
    };
}

/// Turns `fn run(ctx: Context, input: I) -> Result<O, E>` into the
/// component's `run` export, where `I` is read from the job's JSON input
/// (`serde::Deserialize`), `O` becomes the run's output as JSON
/// (`serde::Serialize`) and `E`'s `Display` text is the message of a failed
/// run (kind `plugin_error`). See [`json::run`] for the empty input.
#[macro_export]
macro_rules! json_job {
    ($run:path) => {
        #[doc(hidden)]
        fn __sandcron_json_run(
            ctx: $crate::Context,
            input: ::std::vec::Vec<u8>,
        ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
            $crate::json::run(ctx, &input, $run)
        }

        $crate::job!(__sandcron_json_run);
    };
}

/// Typed JSON input and output (what [`json_job!`] uses).
pub mod json {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::Context;

    /// Reads the input as `I`, calls `handler`, and writes its answer as
    /// JSON; an error of either step, or the handler's, is the `Err` text.
    pub fn run<I, O, E>(
        ctx: Context,
        input: &[u8],
        handler: impl FnOnce(Context, I) -> Result<O, E>,
    ) -> Result<Vec<u8>, String>
    where
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display,
    {
        let input = parse_input(input)?;
        let output = handler(ctx, input).map_err(|error| error.to_string())?;
        serde_json::to_vec(&output).map_err(|error| format!("the output cannot be written as JSON: {error}"))
    }

    /// The input as `I`. A job without input (JSON `null`) runs with no
    /// bytes: that reads as `null` (for `Option<T>` or `()`), or as `{}`
    /// when `I` does not take `null` (a struct whose fields all have
    /// defaults).
    pub fn parse_input<I: DeserializeOwned>(input: &[u8]) -> Result<I, String> {
        if input.iter().all(u8::is_ascii_whitespace) {
            return serde_json::from_str("null")
                .or_else(|_| serde_json::from_str("{}"))
                .map_err(|error| format!("this job needs an input: {error}"));
        }
        serde_json::from_slice(input).map_err(|error| format!("the input is not the JSON this job reads: {error}"))
    }
}

/// Lines in the run's log.
pub mod log {
    use super::wit::log::{Level, log};

    /// Logs at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// Durable key-value state private to this job.
pub mod kv {
    use super::wit::kv;

    /// The value stored under `key`, if any.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }
    /// The value under `key` as UTF-8 text, if any and if it is text.
    pub fn get_string(key: &str) -> Option<String> {
        get(key).and_then(|bytes| String::from_utf8(bytes).ok())
    }
    /// The value under `key` read as JSON, if any; an error when it is not
    /// that JSON.
    pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
        match get(key) {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| format!("kv {key:?} is not the JSON expected: {error}")),
        }
    }
    /// Stores `value` under `key`.
    pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), String> {
        kv::set(key, value.as_ref())
    }
    /// Stores `value` as JSON under `key`.
    pub fn set_json(key: &str, value: &impl serde::Serialize) -> Result<(), String> {
        let bytes = serde_json::to_vec(value).map_err(|error| format!("kv {key:?}: {error}"))?;
        set(key, bytes)
    }
    /// Removes `key`.
    pub fn delete(key: &str) -> Result<(), String> {
        kv::delete(key)
    }
    /// Keys that start with `prefix`, in order.
    pub fn keys(prefix: &str) -> Vec<String> {
        kv::keys(prefix)
    }
}

/// Outbound HTTP to the hosts the job may reach.
pub mod http {
    pub use super::wit::http::{Request, Response};

    /// Sends `request`; an error says why the host refused or failed it.
    pub fn fetch(request: &Request) -> Result<Response, String> {
        super::wit::http::fetch(request)
    }

    /// A GET of `url` with no headers and the host's default timeout.
    pub fn get(url: &str) -> Result<Response, String> {
        fetch(&Request {
            method: "GET".to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        })
    }
}

/// Facts about the run beyond its [`Context`], asked of the host when needed.
pub mod run_info {
    use super::wit::run_info;

    /// The IANA zone of the job's schedule (its cron line's zone; "UTC"
    /// for other schedules and jobs without one).
    pub fn timezone() -> String {
        run_info::timezone()
    }

    /// The offset from UTC, in seconds east, of the job's zone at an instant
    /// in milliseconds since the Unix epoch (e.g. the context's `scheduled_at_ms`):
    /// 32400 in Asia/Tokyo, 3600 or 7200 in Europe/Berlin by the season.
    pub fn utc_offset(at_ms: i64) -> i32 {
        run_info::utc_offset(at_ms)
    }
}

/// Secrets the job was granted.
pub mod secrets {
    /// The secret's value, or `None` when it does not exist or is not granted.
    pub fn get(name: &str) -> Option<String> {
        super::wit::secrets::get(name)
    }
}
