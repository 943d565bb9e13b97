//! The gRPC router: the standard health service and the `ocelot.v1.Admin` service.

mod artifacts;
pub(crate) mod builds;
mod caches;
mod credentials;
mod deliveries;
mod polls;
mod repos;
pub(crate) mod scope;
mod server_info;
mod tokens;

use crate::state::AppState;
use anyhow::Context;
use ocelot_proto::v1::admin_server::AdminServer;
use std::future::Future;
use tokio_stream::wrappers::TcpListenerStream;

/// The `ocelot.v1.Admin` implementation: thin adapters over the store, trigger and watch.
#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    state: AppState,
}

/// The TLS identity from `--tls-cert` and `--tls-key` (PEM files); `None` serves plain
/// HTTP/2.
pub(crate) fn tls_identity(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Option<tonic::transport::Identity>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
    };
    let cert_pem = read(cert, "certificate")?;
    let key_pem = read(key, "key")?;
    anyhow::ensure!(
        String::from_utf8_lossy(&cert_pem).contains("-----BEGIN CERTIFICATE-----"),
        "{} is not a PEM certificate",
        cert.display()
    );
    anyhow::ensure!(
        String::from_utf8_lossy(&key_pem).contains("PRIVATE KEY-----"),
        "{} is not a PEM private key",
        key.display()
    );
    Ok(Some(tonic::transport::Identity::from_pem(
        cert_pem, key_pem,
    )))
}

pub(crate) async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    tls: Option<tonic::transport::Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AdminServer<AdminApi>>().await;
    // NOT_SERVING while Postgres or NATS is down (the API answers, but cannot do its work)
    let readiness = tokio::spawn(report_readiness(state.clone(), health_reporter));
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        tracing::info!("serving the API over TLS");
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .context("configuring TLS")?;
    }
    let served = server
        .add_service(health_service)
        .add_service(crate::auth::Authorized::new(
            AdminServer::new(AdminApi {
                state: state.clone(),
            }),
            state,
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    readiness.abort();
    served.context("serving gRPC")
}

/// How often the admin checks its dependencies for the health service.
const READINESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the health service's status (overall and `ocelot.v1.Admin`) in line with whether
/// Postgres and NATS answer.
async fn report_readiness(state: AppState, reporter: tonic_health::server::HealthReporter) {
    let mut ready = true;
    loop {
        tokio::time::sleep(READINESS_EVERY).await;
        let problems =
            ocelot_core::health::dependency_problems(&state.store, &state.bus, READINESS_EVERY)
                .await;
        let now_ready = problems.is_empty();
        if now_ready == ready {
            continue;
        }
        ready = now_ready;
        let status = if ready {
            tracing::info!("dependencies answer again: serving");
            tonic_health::ServingStatus::Serving
        } else {
            tracing::warn!(problems = %problems.join("; "), "health: not serving");
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        if ready {
            reporter.set_serving::<AdminServer<AdminApi>>().await;
        } else {
            reporter.set_not_serving::<AdminServer<AdminApi>>().await;
        }
    }
}

#[tonic::async_trait]
impl ocelot_proto::v1::admin_server::Admin for AdminApi {
    async fn trigger_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::TriggerBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::TriggerBuildResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        builds::trigger(&self.state, &scope, request.into_inner()).await
    }

    type WatchBuildStream = crate::watch::EventStream;

    async fn watch_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::WatchBuildRequest>,
    ) -> Result<tonic::Response<Self::WatchBuildStream>, tonic::Status> {
        let scope = scope::of(&request)?;
        let request = request.into_inner();
        scope::check_build(&self.state, &scope, request.id.into()).await?;
        let resume_after = ocelot_core::events::Position {
            attempt: request.after_attempt.into(),
            seq: request.after_seq.into(),
        };
        let attempt = request.attempt.into();
        crate::watch::watch(&self.state, request.id.into(), attempt, resume_after).await
    }

    async fn get_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::GetBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::BuildDetail>, tonic::Status> {
        let scope = scope::of(&request)?;
        builds::get(&self.state, &scope, request.into_inner()).await
    }

    async fn list_builds(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListBuildsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListBuildsResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        builds::list(&self.state, &scope, request.into_inner()).await
    }

    async fn add_repo(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddRepoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::AddRepoResponse>, tonic::Status> {
        scope::may_add_repo(&scope::of(&request)?, &request.get_ref().name)?;
        repos::add(&self.state, request.into_inner()).await
    }

    async fn list_repos(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListReposRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListReposResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        repos::list(&self.state, &scope, request.into_inner()).await
    }

    async fn remove_repo(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemoveRepoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemoveRepoResponse>, tonic::Status> {
        let name = &request.get_ref().name;
        scope::check_repo(&scope::of(&request)?, name, name)?;
        repos::remove(&self.state, request.into_inner()).await
    }

    /// About no repo: worker ids, tags and capacity, for every token.
    async fn list_workers(
        &self,
        _request: tonic::Request<ocelot_proto::v1::ListWorkersRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListWorkersResponse>, tonic::Status> {
        let workers = self.state.bus.list_workers().await.map_err(|error| {
            tonic::Status::unavailable(format!("cannot read the worker registry: {error}"))
        })?;
        Ok(tonic::Response::new(
            ocelot_proto::v1::ListWorkersResponse {
                workers: workers
                    .into_iter()
                    .map(|w| ocelot_proto::v1::Worker {
                        id: w.id,
                        tags: w.tags,
                        capacity: w.capacity,
                        running: w.running,
                        executor: w.executor,
                        host: w.host,
                        version: w.version,
                        started_at_ms: w.started_at_ms,
                        seen_at_ms: w.seen_at_ms,
                        paused: w.paused.unwrap_or_default(),
                    })
                    .collect(),
            },
        ))
    }

    async fn cancel_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::CancelBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::CancelBuildResponse>, tonic::Status> {
        let caller = crate::auth::caller(&request)?.name.clone();
        let build_id = request.get_ref().build_id.into();
        scope::check_build(&self.state, &scope::of(&request)?, build_id).await?;
        crate::cancel::cancel(&self.state, build_id, &caller).await
    }

    async fn rerun_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::RerunBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::TriggerBuildResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        builds::rerun(&self.state, &scope, request.into_inner()).await
    }

    async fn set_repo_options(
        &self,
        request: tonic::Request<ocelot_proto::v1::SetRepoOptionsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::Repo>, tonic::Status> {
        let scope = scope::of(&request)?;
        scope::check_named_repo(&self.state, &scope, &request.get_ref().name).await?;
        repos::set_options(&self.state, request.into_inner()).await
    }

    async fn hook_repo(
        &self,
        request: tonic::Request<ocelot_proto::v1::HookRepoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::HookRepoResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        scope::check_named_repo(&self.state, &scope, &request.get_ref().name).await?;
        repos::hook(&self.state, request.into_inner()).await
    }

    async fn add_poll(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddPollRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::Poll>, tonic::Status> {
        let scope = scope::of(&request)?;
        scope::check_named_repo(&self.state, &scope, &request.get_ref().repo).await?;
        polls::add(&self.state, request.into_inner()).await
    }

    async fn list_polls(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListPollsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListPollsResponse>, tonic::Status> {
        polls::list(&self.state, &scope::of(&request)?).await
    }

    async fn remove_poll(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemovePollRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemovePollResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        scope::check_named_repo(&self.state, &scope, &request.get_ref().repo).await?;
        polls::remove(&self.state, request.into_inner()).await
    }

    async fn add_credential(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddCredentialRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::Credential>, tonic::Status> {
        let scope = scope::of(&request)?;
        credentials::check_scope(&scope, request.get_ref().scope.as_ref())?;
        credentials::add(&self.state, request.into_inner()).await
    }

    async fn list_credentials(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListCredentialsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListCredentialsResponse>, tonic::Status> {
        credentials::list(&self.state, &scope::of(&request)?).await
    }

    async fn remove_credential(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemoveCredentialRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemoveCredentialResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        credentials::check_scope(&scope, request.get_ref().scope.as_ref())?;
        credentials::remove(&self.state, request.into_inner()).await
    }

    async fn create_token(
        &self,
        request: tonic::Request<ocelot_proto::v1::CreateTokenRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::CreateTokenResponse>, tonic::Status> {
        tokens::create(&self.state, request.into_inner()).await
    }

    async fn list_tokens(
        &self,
        _request: tonic::Request<ocelot_proto::v1::ListTokensRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListTokensResponse>, tonic::Status> {
        tokens::list(&self.state).await
    }

    async fn list_artifacts(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListArtifactsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListArtifactsResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        artifacts::list(&self.state, &scope, request.into_inner()).await
    }

    type GetArtifactStream = artifacts::ChunkStream;

    async fn get_artifact(
        &self,
        request: tonic::Request<ocelot_proto::v1::GetArtifactRequest>,
    ) -> Result<tonic::Response<Self::GetArtifactStream>, tonic::Status> {
        let scope = scope::of(&request)?;
        artifacts::get(&self.state, &scope, request.into_inner()).await
    }

    async fn list_caches(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListCachesRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListCachesResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        caches::list(&self.state, &scope, request.into_inner()).await
    }

    async fn clear_caches(
        &self,
        request: tonic::Request<ocelot_proto::v1::ClearCachesRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ClearCachesResponse>, tonic::Status> {
        let scope = scope::of(&request)?;
        caches::clear(&self.state, &scope, request.into_inner()).await
    }

    async fn revoke_token(
        &self,
        request: tonic::Request<ocelot_proto::v1::RevokeTokenRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RevokeTokenResponse>, tonic::Status> {
        tokens::revoke(&self.state, request.into_inner()).await
    }

    /// About no repo: the admin's version and dashboard URL, for every token.
    async fn get_server_info(
        &self,
        _request: tonic::Request<ocelot_proto::v1::GetServerInfoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ServerInfo>, tonic::Status> {
        server_info::get(&self.state)
    }
}
