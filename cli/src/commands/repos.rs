//! `ocelot repos add|list|remove`.

use crate::args::ReposCommand;
use crate::client::{self, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

pub(crate) async fn run(admin: &str, command: ReposCommand) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    match command {
        ReposCommand::Add {
            name,
            url,
            default_branch,
        } => {
            let repo = client
                .add_repo(pb::AddRepoRequest {
                    name,
                    url,
                    default_branch,
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            eprintln!(
                "added repo {} ({}, default branch {})",
                repo.name, repo.url, repo.default_branch
            );
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
                    .map(|r| json!({"name": r.name, "url": r.url, "default_branch": r.default_branch}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if repos.is_empty() {
                eprintln!("no repos: add one with `ocelot repos add NAME URL`");
            } else {
                println!("{:<24} {:<12} URL", "NAME", "BRANCH");
                for repo in &repos {
                    println!("{:<24} {:<12} {}", repo.name, repo.default_branch, repo.url);
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
    }
    Ok(ExitStatus::Passed)
}
