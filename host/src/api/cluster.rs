//! `GET /v1/cluster` (admin): the nodes sharing this daemon's database,
//! which leads and how busy each is. One daemon on sled is a cluster of
//! one node, its leader.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, require_admin};
use super::state::AppState;
use super::views::{ClusterView, NodeView};

/// `GET /v1/cluster` (admin): every node, with which leads.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "status",
    operation_id = "get_cluster",
    responses((status = 200, description = "the nodes", body = ClusterView), (status = 403, description = "admin only", body = ErrorBody), Refusals)
)]
pub async fn get(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<ClusterView>, ApiError> {
    require_admin(&caller)?;
    let nodes = match state.cluster() {
        Some(cluster) => cluster.nodes()?.into_iter().map(NodeView::from).collect(),
        None => vec![NodeView {
            id: state.node_id().to_string(),
            leader: true,
            last_seen: chrono::Utc::now(),
            running_runs: u32::try_from(state.executor().running()).unwrap_or(u32::MAX),
        }],
    };
    Ok(Json(ClusterView {
        node: state.node_id().to_string(),
        backend: if state.cluster().is_some() { "postgres" } else { "sled" },
        nodes,
    }))
}
