//! `sandcron:plugin@0.1.0`, world `job`: the bindings generated from
//! `wit/plugin.wit` and the host side of each of its imports (log, kv,
//! http, secrets, run-info), adapted to [`RunState`]'s operations. When a
//! newer world is released, this version's WIT is kept unchanged beside
//! it (its `path` below then points at that copy).

use std::time::Duration;

use crate::model::Trigger;
use crate::outbound::FetchRequest;
use crate::sandbox::host::{self, RunState};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job",
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::sandcron::plugin::{http, kv, log, run_info, secrets, types};

/// A run's context as this world shows it.
pub fn run_context(context: &host::RunContext) -> types::RunContext {
    types::RunContext {
        tenant: context.tenant.clone(),
        job_id: context.job_id.clone(),
        job_name: context.job_name.clone(),
        run_id: context.run_id.clone(),
        attempt: context.attempt,
        trigger: match context.trigger {
            Trigger::Schedule => types::Trigger::Schedule,
            Trigger::Manual => types::Trigger::Manual,
            Trigger::Retry => types::Trigger::Retry,
            Trigger::Dependency => types::Trigger::Dependency,
            // This world has no `start`: such a run is its schedule's.
            Trigger::Start | Trigger::Backfill => types::Trigger::Schedule,
        },
        scheduled_at: context.scheduled_at_ms,
    }
}

impl types::Host for RunState {}

impl log::Host for RunState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => "TRACE",
            log::Level::Debug => "DEBUG",
            log::Level::Info => "INFO",
            log::Level::Warn => "WARN",
            log::Level::Error => "ERROR",
        };
        self.log_line(level, &message);
        Ok(())
    }
}

impl kv::Host for RunState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.kv_get(key).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.kv_set(key, value).await
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        self.kv_delete(key).await
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        self.kv_keys(prefix).await
    }
}

impl http::Host for RunState {
    async fn fetch(&mut self, request: http::Request) -> wasmtime::Result<Result<http::Response, String>> {
        let fetch = FetchRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        };
        Ok(self.http_fetch(fetch).await?.map(|response| http::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }))
    }
}

impl secrets::Host for RunState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.secret(&name)
    }
}

impl run_info::Host for RunState {
    async fn timezone(&mut self) -> wasmtime::Result<String> {
        Ok(self.job_zone().await?.name().to_string())
    }

    async fn utc_offset(&mut self, at: i64) -> wasmtime::Result<i32> {
        self.job_utc_offset(at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_of_world_0_1_sees_triggers_it_lacks_as_schedule() {
        let seen = |trigger| {
            let context = host::RunContext {
                tenant: "t".into(),
                job_id: "j".into(),
                job_name: "n".into(),
                run_id: "r".into(),
                attempt: 1,
                trigger,
                scheduled_at_ms: 0,
            };
            run_context(&context).trigger
        };
        assert!(matches!(seen(Trigger::Start), types::Trigger::Schedule));
        assert!(matches!(seen(Trigger::Backfill), types::Trigger::Schedule));
        assert!(matches!(seen(Trigger::Schedule), types::Trigger::Schedule));
        assert!(matches!(seen(Trigger::Manual), types::Trigger::Manual));
        assert!(matches!(seen(Trigger::Retry), types::Trigger::Retry));
        assert!(matches!(seen(Trigger::Dependency), types::Trigger::Dependency));
    }
}
