//! Bearer-token authorisation of every RPC: the token (metadata `authorization: Bearer ...`)
//! must exist, not be revoked, and have a scope that includes what the RPC needs.

use crate::AppState;
use ocelot_core::auth::TokenScope;
use ocelot_core::store::ApiToken;
use tonic::{Request, Status};

const HINT: &str = "set OCELOT_TOKEN (an admin makes one with `ocelot token create` or `ocelot-admin token create`)";

/// The caller's token, if it allows `needed`.
pub(crate) async fn authorize<T>(
    state: &AppState,
    request: &Request<T>,
    needed: TokenScope,
) -> Result<ApiToken, Status> {
    let header = request
        .metadata()
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
        Status::unavailable("cannot check the API token: the database is unavailable")
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
    Ok(found)
}
