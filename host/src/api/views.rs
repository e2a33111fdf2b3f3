//! What the API answers with: a type per body, made from the model's
//! records (`From` or a constructor), so an answer and its schema in the
//! OpenAPI document come from one definition. A view shows what a client
//! may see of a record: never a job's or run's tenant, a run's input (only
//! its size), a token's hash or a secret's value. Nested values that are
//! the same in the store and the API (limits, policies, enums) are the
//! model's own types.

mod daemon;
mod jobs;
mod tenants;
mod workflows;

pub use daemon::{
    ClusterView, HealthStatus, HealthView, NextFireView, NodeView, SchedulePreviewView, SchedulerState, SchedulerView,
    StatusView, StorageErrorsView, StorageReportView, StorageState, UnhealthyView,
};
pub use jobs::{
    BackfillView, FiresView, JobList, JobPreviewView, JobPutView, JobView, OutputEncoding, PluginList,
    PluginVersionView, PluginView, RunList, RunView, RunWithOutputView, output_text,
};
pub use tenants::{
    CalendarList, CalendarView, DigestSentView, DigestView, NewTenantView, NewTokenView, QuotasView, SecretList,
    SecretView, TenantList, TenantUsageView, TenantView, TenantWithUsageView, TokenList, WebhookSecretView,
};
pub use workflows::{WorkflowList, WorkflowRunList, WorkflowRunView, WorkflowView};

#[cfg(test)]
mod tests;
