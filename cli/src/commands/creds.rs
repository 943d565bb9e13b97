//! `ocelot creds add|list|remove`: values go in from a file or standard input, never argv,
//! and never come out.

use crate::args::{CredScope, CredsCommand};
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use pb::credential_scope::Scope;
use serde_json::json;
use std::io::Read;

fn scope(scope: CredScope) -> pb::CredentialScope {
    pb::CredentialScope {
        scope: match (scope.repo, scope.prefix) {
            (Some(repo), _) => Some(Scope::Repo(repo)),
            (None, prefix) => Some(Scope::Prefix(prefix.unwrap_or_default())),
        },
    }
}

fn scope_text(scope: &Option<pb::CredentialScope>) -> String {
    match scope.as_ref().and_then(|s| s.scope.as_ref()) {
        Some(Scope::Repo(repo)) => format!("repo {repo}"),
        Some(Scope::Prefix(prefix)) => format!("prefix {prefix}"),
        None => "-".to_string(),
    }
}

/// The non-secret details a listing shows.
fn details_text(credential: &pb::Credential) -> String {
    let mut parts = Vec::new();
    if !credential.username.is_empty() {
        parts.push(format!("user {}", credential.username));
    }
    if !credential.registry.is_empty() {
        parts.push(format!("registry {}", credential.registry));
    }
    if credential.checks_host_key {
        parts.push("host key checked".to_string());
    }
    if !credential.host.is_empty() {
        parts.push(format!("host {}", credential.host));
    } else if credential.kind == "vcs" {
        parts.push("NO HOST: sent nowhere; add it again with --host".to_string());
    }
    if !credential.path.is_empty() {
        parts.push(format!("path {}", credential.path));
    }
    if !credential.url.is_empty() {
        parts.push(format!("url {}", credential.url));
    } else if credential.kind == "notify" {
        parts.push("slack webhook".to_string());
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ")
    }
}

/// A `--path ~/...` the shell expanded arrives as this user's home: the file would go to
/// that absolute path in the build, not to the build user's home. Says so (it may be meant).
fn warn_if_expanded_home(path: &str) {
    let Some(home) = std::env::var_os("HOME") else {
        return;
    };
    let home = home.to_string_lossy();
    let home = home.trim_end_matches('/');
    if let Some(rest) = path.strip_prefix(home).and_then(|p| p.strip_prefix('/'))
        && !home.is_empty()
    {
        eprintln!(
            "note: --path {path} is an absolute path (your shell turned `~` into {home}); for the build user's home write '~/{rest}' in quotes"
        );
    }
}

fn read_value(from_file: Option<std::path::PathBuf>) -> Result<Vec<u8>, CliError> {
    let mut value = Vec::new();
    match from_file {
        Some(path) => {
            value = std::fs::read(&path).map_err(|e| {
                CliError::new(
                    ExitStatus::Usage,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
        }
        None => {
            std::io::stdin().read_to_end(&mut value).map_err(|e| {
                CliError::new(
                    ExitStatus::Usage,
                    format!("cannot read standard input: {e}"),
                )
            })?;
        }
    }
    if value.is_empty() {
        return Err(CliError::new(
            ExitStatus::Usage,
            "no value: pipe it to standard input or give --from-file",
        ));
    }
    Ok(value)
}

pub(crate) async fn run(
    admin: &AdminTarget,
    command: CredsCommand,
) -> Result<ExitStatus, CliError> {
    match command {
        CredsCommand::Add {
            kind,
            name,
            scope: cred_scope,
            from_file,
            username,
            registry,
            known_hosts_file,
            host,
            path,
            url,
        } => {
            if let Some(path) = &path {
                warn_if_expanded_home(path);
            }
            let known_hosts = match known_hosts_file {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    CliError::new(
                        ExitStatus::Usage,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
                None => String::new(),
            };
            let value = read_value(from_file)?;
            let mut client = client::connect(admin).await?;
            let stored = client
                .add_credential(pb::AddCredentialRequest {
                    name,
                    kind,
                    scope: Some(scope(cred_scope)),
                    value,
                    username: username.unwrap_or_default(),
                    registry: registry.unwrap_or_default(),
                    known_hosts,
                    host: host.unwrap_or_default(),
                    path: path.unwrap_or_default(),
                    url: url.unwrap_or_default(),
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            let bound = if stored.host.is_empty() {
                String::new()
            } else {
                format!(" (sent to {} only)", stored.host)
            };
            eprintln!(
                "stored {} credential {} for {}{bound}",
                stored.kind,
                stored.name,
                scope_text(&stored.scope)
            );
        }
        CredsCommand::List { json } => {
            let mut client = client::connect(admin).await?;
            let credentials = client
                .list_credentials(pb::ListCredentialsRequest {})
                .await
                .map_err(client::from_status)?
                .into_inner()
                .credentials;
            if json {
                let list: Vec<_> = credentials
                    .iter()
                    .map(|c| {
                        json!({"name": c.name, "kind": c.kind, "scope": scope_text(&c.scope),
                               "username": c.username, "registry": c.registry,
                               "checks_host_key": c.checks_host_key, "host": c.host,
                               "path": c.path, "url": c.url,
                               "created_at_ms": c.created_at_ms, "updated_at_ms": c.updated_at_ms})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if credentials.is_empty() {
                eprintln!(
                    "no credentials: add one with `printf %s VALUE | ocelot creds add env NAME -r REPO`"
                );
            } else {
                println!("{:<9} {:<28} {:<28} DETAILS", "KIND", "NAME", "SCOPE");
                for credential in &credentials {
                    println!(
                        "{:<9} {:<28} {:<28} {}",
                        credential.kind,
                        credential.name,
                        scope_text(&credential.scope),
                        details_text(credential)
                    );
                }
            }
        }
        CredsCommand::Remove {
            kind,
            name,
            scope: cred_scope,
        } => {
            let mut client = client::connect(admin).await?;
            client
                .remove_credential(pb::RemoveCredentialRequest {
                    name: name.clone(),
                    kind,
                    scope: Some(scope(cred_scope)),
                })
                .await
                .map_err(client::from_status)?;
            eprintln!("removed credential {name}");
        }
    }
    Ok(ExitStatus::Passed)
}
