//! `ocelot repos add|list|remove`.

use crate::args::ReposCommand;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

pub(crate) async fn run(
    admin: &AdminTarget,
    command: ReposCommand,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    match command {
        ReposCommand::Add {
            name,
            url,
            default_branch,
            webhook_secret,
            hooks_url,
            json,
            hook,
        } => {
            let added = client
                .add_repo(pb::AddRepoRequest {
                    name: name.clone(),
                    url,
                    default_branch,
                    webhook_secret: webhook_secret.unwrap_or_default(),
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            let repo = added.repo.ok_or_else(|| {
                CliError::new(ExitStatus::Errored, "the admin answered without a repo")
            })?;
            let base = hooks_url.trim_end_matches('/');
            let hooks: Vec<(&str, String)> = ["github", "gitlab", "bitbucket", "gitea"]
                .into_iter()
                .map(|provider| (provider, format!("{base}/hooks/{provider}")))
                .collect();
            if json {
                let urls: serde_json::Map<String, serde_json::Value> = hooks
                    .iter()
                    .map(|(provider, url)| (provider.to_string(), json!(url)))
                    .collect();
                println!(
                    "{}",
                    json!({"name": repo.name, "url": repo.url, "default_branch": repo.default_branch,
                           "webhook_secret": added.webhook_secret, "webhook_urls": urls})
                );
            } else {
                eprintln!(
                    "added repo {} ({}, default branch {})",
                    repo.name, repo.url, repo.default_branch
                );
                eprintln!(
                    "webhook secret (shown once; paste it into the git host's webhook settings):"
                );
                println!("{}", added.webhook_secret);
                eprintln!(
                    "webhook URL, by provider (content type application/json; events: push, pull/merge requests, tags):"
                );
                for (provider, url) in &hooks {
                    eprintln!("  {provider:<10} {url}");
                }
            }
            if hook {
                hook_repo(&mut client, name, hooks_url.clone(), false).await?;
            }
        }
        ReposCommand::Hook {
            name,
            remove,
            hooks_url,
        } => {
            hook_repo(&mut client, name, hooks_url, remove).await?;
        }
        ReposCommand::List { json } => {
            let repos = client
                .list_repos(pb::ListReposRequest {})
                .await
                .map_err(client::from_status)?
                .into_inner()
                .repos;
            if json {
                let list: Vec<_> = repos
                    .iter()
                    .map(|r| {
                        json!({"name": r.name, "url": r.url, "default_branch": r.default_branch,
                                    "secrets_for_forks": r.secrets_for_forks,
                                    "allow_host": r.allow_host,
                                    "forge": r.forge, "forge_api_url": r.forge_api_url})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if repos.is_empty() {
                eprintln!("no repos: add one with `ocelot repos add NAME URL`");
            } else {
                println!("{:<24} {:<12} {:<5} URL", "NAME", "BRANCH", "HOST");
                for repo in &repos {
                    let host = if repo.allow_host { "yes" } else { "no" };
                    println!(
                        "{:<24} {:<12} {:<5} {}",
                        repo.name, repo.default_branch, host, repo.url
                    );
                }
            }
        }
        ReposCommand::Remove { name } => {
            client
                .remove_repo(pb::RemoveRepoRequest { name: name.clone() })
                .await
                .map_err(client::from_status)?;
            eprintln!("removed repo {name}");
        }
        ReposCommand::Set {
            name,
            secrets_for_forks,
            allow_host,
            forge,
            api_url,
        } => {
            let repo = client
                .set_repo_options(pb::SetRepoOptionsRequest {
                    name,
                    secrets_for_forks,
                    allow_host,
                    forge,
                    forge_api_url: api_url,
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            eprintln!(
                "repo {}: pull requests from forks {} its build secrets",
                repo.name,
                if repo.secrets_for_forks {
                    "get"
                } else {
                    "do not get"
                }
            );
            eprintln!(
                "repo {}: builds naming no image {} on `--executor host` workers (pull requests never do)",
                repo.name,
                if repo.allow_host {
                    "may run"
                } else {
                    "do not run"
                }
            );
            if repo.forge.is_empty() {
                eprintln!(
                    "repo {}: no known forge: no commit statuses (set one with --forge)",
                    repo.name
                );
            } else {
                eprintln!(
                    "repo {}: commit statuses go to {} at {} (with the repo's vcs credential)",
                    repo.name, repo.forge, repo.forge_api_url
                );
            }
        }
    }
    Ok(ExitStatus::Passed)
}

/// Creates (or removes) the forge webhook through the admin, which holds the credentials.
async fn hook_repo(
    client: &mut client::Client,
    name: String,
    hooks_url: String,
    remove: bool,
) -> Result<(), CliError> {
    let answer = client
        .hook_repo(pb::HookRepoRequest {
            name: name.clone(),
            hooks_url,
            remove,
        })
        .await
        .map_err(client::from_status)?
        .into_inner();
    if remove {
        eprintln!(
            "repo {name}: removed {} {} webhook(s) to {}",
            answer.removed, answer.forge, answer.hook_url
        );
    } else {
        eprintln!(
            "repo {name}: created the {} webhook to {} (push and pull/merge request events)",
            answer.forge, answer.hook_url
        );
    }
    Ok(())
}
