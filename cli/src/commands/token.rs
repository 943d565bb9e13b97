//! `ocelot token create|list|revoke`: API tokens, through the API (admin scope).

use crate::args::TokenCommand;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

pub(crate) async fn run(
    admin: &AdminTarget,
    command: TokenCommand,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    match command {
        TokenCommand::Create { name, scope, repos } => {
            let created = client
                .create_token(pb::CreateTokenRequest {
                    name: name.clone(),
                    scope: scope.clone(),
                    repos: repos.clone(),
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            let limit = if repos.is_empty() {
                String::new()
            } else {
                format!(", repos {}", repos.join(","))
            };
            eprintln!("token `{name}` ({scope}{limit}) created; it is shown once:");
            println!("{}", created.token);
        }
        TokenCommand::List { json } => {
            let tokens = client
                .list_tokens(pb::ListTokensRequest {})
                .await
                .map_err(client::from_status)?
                .into_inner()
                .tokens;
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| json!({"name": t.name, "scope": t.scope, "created_at_ms": t.created_at_ms,
                                    "last_used_at_ms": t.last_used_at_ms, "revoked": t.revoked_at_ms != 0,
                                    "repos": t.repos}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for token in &tokens {
                    let state = if token.revoked_at_ms != 0 {
                        "revoked"
                    } else {
                        "active"
                    };
                    let repos = if token.repos.is_empty() {
                        "all repos".to_string()
                    } else {
                        token.repos.join(",")
                    };
                    println!("{:<24} {:<8} {state:<8} {repos}", token.name, token.scope);
                }
            }
        }
        TokenCommand::Revoke { name } => {
            client
                .revoke_token(pb::RevokeTokenRequest { name: name.clone() })
                .await
                .map_err(client::from_status)?;
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(ExitStatus::Passed)
}
