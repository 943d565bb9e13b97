//! The gRPC router: the standard health service and the `ocelot.v1.Admin` service.

mod builds;
mod credentials;
mod polls;
mod repos;

use crate::AppState;
use anyhow::Context;
use ocelot_proto::v1::admin_server::AdminServer;
use std::future::Future;
use tokio_stream::wrappers::TcpListenerStream;

/// The `ocelot.v1.Admin` implementation: thin adapters over the store, trigger and watch.
#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    state: AppState,
}

pub(crate) async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AdminServer<AdminApi>>().await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AdminServer::new(AdminApi { state }))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("serving gRPC")
}

#[tonic::async_trait]
impl ocelot_proto::v1::admin_server::Admin for AdminApi {
    async fn trigger_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::TriggerBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::TriggerBuildResponse>, tonic::Status> {
        builds::trigger(&self.state, request.into_inner()).await
    }

    type WatchBuildStream = crate::watch::EventStream;

    async fn watch_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::WatchBuildRequest>,
    ) -> Result<tonic::Response<Self::WatchBuildStream>, tonic::Status> {
        crate::watch::watch(&self.state, request.into_inner().id).await
    }

    async fn get_build(
        &self,
        request: tonic::Request<ocelot_proto::v1::GetBuildRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::BuildDetail>, tonic::Status> {
        builds::get(&self.state, request.into_inner()).await
    }

    async fn list_builds(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListBuildsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListBuildsResponse>, tonic::Status> {
        builds::list(&self.state, request.into_inner()).await
    }

    async fn add_repo(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddRepoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::AddRepoResponse>, tonic::Status> {
        repos::add(&self.state, request.into_inner()).await
    }

    async fn list_repos(
        &self,
        request: tonic::Request<ocelot_proto::v1::ListReposRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListReposResponse>, tonic::Status> {
        repos::list(&self.state, request.into_inner()).await
    }

    async fn remove_repo(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemoveRepoRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemoveRepoResponse>, tonic::Status> {
        repos::remove(&self.state, request.into_inner()).await
    }

    async fn add_poll(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddPollRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::Poll>, tonic::Status> {
        polls::add(&self.state, request.into_inner()).await
    }

    async fn list_polls(
        &self,
        _request: tonic::Request<ocelot_proto::v1::ListPollsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListPollsResponse>, tonic::Status> {
        polls::list(&self.state).await
    }

    async fn remove_poll(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemovePollRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemovePollResponse>, tonic::Status> {
        polls::remove(&self.state, request.into_inner()).await
    }

    async fn add_credential(
        &self,
        request: tonic::Request<ocelot_proto::v1::AddCredentialRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::Credential>, tonic::Status> {
        credentials::add(&self.state, request.into_inner()).await
    }

    async fn list_credentials(
        &self,
        _request: tonic::Request<ocelot_proto::v1::ListCredentialsRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::ListCredentialsResponse>, tonic::Status> {
        credentials::list(&self.state).await
    }

    async fn remove_credential(
        &self,
        request: tonic::Request<ocelot_proto::v1::RemoveCredentialRequest>,
    ) -> Result<tonic::Response<ocelot_proto::v1::RemoveCredentialResponse>, tonic::Status> {
        credentials::remove(&self.state, request.into_inner()).await
    }
}
