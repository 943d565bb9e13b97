//! Bearer-token authorisation of every RPC, in one place: a tower layer in front of the
//! `ocelot.v1.Admin` service that reads the method from the request's path, looks up the
//! scope it needs ([`required_scope`]), and lets the call through only with a token (metadata
//! `authorization: Bearer ...`) that exists, is not revoked and has that scope. The caller's
//! token then travels in the request's extensions ([`caller`]). The health service is not
//! behind it: load balancers call it without a token.
//!
//! A token may be limited to some repos. [`repo_rule`] says, for every RPC, how that limit
//! applies; this layer enforces [`RepoRule::EveryRepoOnly`], the handlers the others
//! (`grpc::scope`). Checking a token costs no database write (see `Store::authenticate`).

use crate::state::AppState;
use ocelot_core::auth::TokenScope;
use ocelot_core::store::ApiToken;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

const HINT: &str = "set OCELOT_TOKEN (an admin makes one with `ocelot token create` or `ocelot-admin token create`)";

/// The scope each RPC of `ocelot.v1.Admin` needs; a method not listed needs `admin`.
pub(crate) fn required_scope(method: &str) -> TokenScope {
    match method {
        "WatchBuild" | "GetBuild" | "ListBuilds" | "ListRepos" | "ListWorkers" | "ListPolls"
        | "ListArtifacts" | "GetArtifact" | "ListCaches" | "GetServerInfo" => TokenScope::Read,
        "TriggerBuild" | "CancelBuild" | "RerunBuild" | "ClearCaches" => TokenScope::Trigger,
        _ => TokenScope::Admin,
    }
}

/// How a token limited to some repos (`--repos`) is held to them, per RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoRule {
    /// The call names a repo, or a build of one: outside the token's repos it gets the same
    /// answer as a repo or build that does not exist (adding a repo: refused).
    OneRepo,
    /// A listing: only the token's repos (with a repo named, as [`RepoRule::OneRepo`]).
    Filtered,
    /// About no repo (the worker registry: ids, tags, capacity; the server's version).
    NoRepo,
    /// Only for tokens that see every repo (tokens: a limited token must not make an
    /// unlimited one).
    EveryRepoOnly,
}

/// How each RPC of `ocelot.v1.Admin` applies a token's repo limit; a method not listed is
/// [`RepoRule::EveryRepoOnly`] (closed until someone decides).
pub(crate) fn repo_rule(method: &str) -> RepoRule {
    match method {
        "TriggerBuild" | "WatchBuild" | "GetBuild" | "CancelBuild" | "RerunBuild" | "AddRepo"
        | "RemoveRepo" | "SetRepoOptions" | "HookRepo" | "AddPoll" | "RemovePoll"
        | "AddCredential" | "RemoveCredential" | "ListArtifacts" | "GetArtifact" | "ListCaches"
        | "ClearCaches" => RepoRule::OneRepo,
        "ListBuilds" | "ListRepos" | "ListPolls" | "ListCredentials" => RepoRule::Filtered,
        "ListWorkers" | "GetServerInfo" => RepoRule::NoRepo,
        _ => RepoRule::EveryRepoOnly,
    }
}

/// The token the authorisation layer accepted for this call.
pub(crate) fn caller<T>(request: &tonic::Request<T>) -> Result<&ApiToken, Status> {
    request
        .extensions()
        .get::<ApiToken>()
        .ok_or_else(|| Status::internal("the call passed no authorisation"))
}

/// Wraps a gRPC service so that every call is authorised first.
#[derive(Debug, Clone)]
pub(crate) struct Authorized<S> {
    inner: S,
    state: AppState,
}

impl<S> Authorized<S> {
    pub(crate) fn new(inner: S, state: AppState) -> Self {
        Authorized { inner, state }
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Authorized<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // the clone that was polled ready serves this call (tower's rule for cloned services)
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let method = request.uri().path().rsplit('/').next().unwrap_or_default();
            let needed = required_scope(method);
            match authorize(&state, request.headers(), needed, repo_rule(method)).await {
                Ok(token) => {
                    request.extensions_mut().insert(token);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// The caller's token, if it allows `needed`.
async fn authorize(
    state: &AppState,
    headers: &http::HeaderMap,
    needed: TokenScope,
    rule: RepoRule,
) -> Result<ApiToken, Status> {
    let header = headers
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated(format!("unauthenticated: no API token; {HINT}")))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Status::unauthenticated(
                "unauthenticated: the authorization metadata must be `Bearer TOKEN`",
            )
        })?;
    let found = state.store.authenticate(token).await.map_err(|error| {
        tracing::warn!(%error, "cannot check an API token");
        crate::error::store_status(&error)
    })?;
    let Some(found) = found else {
        return Err(Status::unauthenticated(format!(
            "unauthenticated: the API token is unknown or revoked; {HINT}"
        )));
    };
    if !found.scope.allows(needed) {
        return Err(Status::permission_denied(format!(
            "the token `{}` has the scope `{}`; this needs `{needed}`",
            found.name, found.scope
        )));
    }
    if rule == RepoRule::EveryRepoOnly && !found.repos.is_all() {
        return Err(Status::permission_denied(format!(
            "the token `{}` is limited to the repos `{}`; this needs a token for every repo",
            found.name, found.repos
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_needs_read_triggering_needs_trigger_the_rest_admin() {
        assert_eq!(required_scope("WatchBuild"), TokenScope::Read);
        assert_eq!(required_scope("ListWorkers"), TokenScope::Read);
        // any valid token may ask what the server is
        assert_eq!(required_scope("GetServerInfo"), TokenScope::Read);
        assert_eq!(required_scope("CancelBuild"), TokenScope::Trigger);
        assert_eq!(required_scope("AddCredential"), TokenScope::Admin);
        assert_eq!(required_scope("ListCredentials"), TokenScope::Admin);
        assert_eq!(required_scope("ListTokens"), TokenScope::Admin);
        // a method this table does not know is never open to less than admin
        assert_eq!(required_scope("SomethingNew"), TokenScope::Admin);
    }

    /// Every RPC of the proto has a decided repo rule: the layer's table covers the
    /// service's methods (the e2e test `token_scopes` calls each one).
    #[test]
    fn every_rpc_has_a_repo_rule() {
        let proto = include_str!("../../proto/proto/ocelot/v1/admin.proto");
        let methods: Vec<&str> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .filter_map(|rest| rest.split('(').next())
            .map(str::trim)
            .collect();
        assert!(methods.len() >= 20, "{methods:?}");
        let token_rpcs = ["CreateToken", "ListTokens", "RevokeToken"];
        for method in methods {
            let rule = repo_rule(method);
            if token_rpcs.contains(&method) {
                assert_eq!(rule, RepoRule::EveryRepoOnly, "{method}");
            } else {
                assert_ne!(
                    rule,
                    RepoRule::EveryRepoOnly,
                    "{method} has no repo rule: decide one in `repo_rule`"
                );
            }
        }
        assert_eq!(repo_rule("SomethingNew"), RepoRule::EveryRepoOnly);
    }
}
