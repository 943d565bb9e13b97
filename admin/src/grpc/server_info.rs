//! `GetServerInfo`: what this admin is (its version, where its dashboard is), for
//! `ocelot version`. About no repo: every valid token may ask.

use crate::state::AppState;
use ocelot_proto::v1 as pb;
use tonic::{Response, Status};

/// This admin's version and dashboard URL (empty when `--dashboard-url` is not set).
pub(super) fn get(state: &AppState) -> Result<Response<pb::ServerInfo>, Status> {
    Ok(Response::new(pb::ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        dashboard_url: state.dashboard_url.clone().unwrap_or_default(),
    }))
}
