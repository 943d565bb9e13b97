//! Who looks at the dashboard: the holder of an API token (any scope: the dashboard only
//! reads). The page sends it once (`POST /api/login`, typed in or from the link `ocelot open`
//! prints) and gets it back as an HttpOnly, SameSite=Strict cookie; scripts (curl) may send
//! `Authorization: Bearer TOKEN` instead. The token is checked again on every request, so a
//! revoked token stops working at once; its repo limit holds as in the CLI.

use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use ocelot_core::store::ApiToken;

/// The cookie that carries the token.
const COOKIE: &str = "ocelot_token";
/// How long the browser keeps it (the token's own revocation ends it sooner).
const COOKIE_MAX_AGE_SECONDS: u32 = 7 * 24 * 3600;

/// A request that came with a valid token.
#[derive(Debug)]
pub(super) struct Viewer(pub(super) ApiToken);

/// A refusal, as JSON (`{"error": ...}`) with its status.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Refusal {
    fn from(status: tonic::Status) -> Self {
        let code = match status.code() {
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal::new(code, status.message())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// The token a request carries: the `Authorization: Bearer` header, else the cookie.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value.to_str().ok()?.strip_prefix("Bearer ");
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

async fn check(state: &AppState, token: &str) -> Result<ApiToken, Refusal> {
    match state.store.authenticate(token).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "the API token is unknown or revoked: sign in with another (`ocelot token create --scope read`)",
        )),
        Err(error) => {
            tracing::warn!(%error, "dashboard: cannot check an API token");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token now (the database does not answer); try again",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let token = presented_token(&parts.headers).ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "sign in with an API token (a read token is enough: `ocelot token create --scope read`)",
            )
        })?;
        Ok(Viewer(check(state, token).await?))
    }
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct Login {
    token: String,
}

fn who(token: &ApiToken) -> serde_json::Value {
    serde_json::json!({
        "name": token.name,
        "scope": token.scope.to_string(),
        "repos": token.repos.to_string(),
    })
}

/// `POST /api/login {"token": ...}`: checks the token and hands it back as the cookie.
pub(super) async fn login(
    State(state): State<AppState>,
    Json(login): Json<Login>,
) -> Result<Response, Refusal> {
    let token = login.token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "that is not an API token (they are printed by `ocelot token create`)",
        ));
    }
    let found = check(&state, token).await?;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_SECONDS}"
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "the token holds invalid characters",
        )
    })?;
    tracing::info!(token = %found.name, "dashboard sign-in");
    Ok(([(header::SET_COOKIE, cookie)], Json(who(&found))).into_response())
}

/// `POST /api/logout`: forgets the cookie.
pub(super) async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /api/me`: the signed-in token's name, scope and repos (401 when none).
pub(super) async fn me(Viewer(token): Viewer) -> Json<serde_json::Value> {
    Json(who(&token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ocelot_token=fromcookie"),
        );
        assert_eq!(presented_token(&headers), Some("fromcookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer fromheader"),
        );
        assert_eq!(presented_token(&headers), Some("fromheader"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_token(&headers), None);
    }

    #[test]
    fn no_token_is_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("other=1"));
        assert_eq!(presented_token(&headers), None);
    }
}
