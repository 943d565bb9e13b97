//! `ocelot poll add|list|remove`: polling of repositories without webhooks.

use crate::args::PollCommand;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

fn when(ms: i64) -> String {
    if ms == 0 {
        return "never".to_string();
    }
    let now = ocelot_domain::model::unix_ms(std::time::SystemTime::now());
    let seconds = (ms - now) / 1000;
    match seconds {
        s if s >= 0 => format!("in {s}s"),
        s => format!("{}s ago", -s),
    }
}

pub(crate) async fn run(admin: &AdminTarget, command: PollCommand) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    match command {
        PollCommand::Add {
            repo,
            branches,
            every,
            cron,
            build_now,
        } => {
            let poll = client
                .add_poll(pb::AddPollRequest {
                    repo,
                    branches,
                    every: every.unwrap_or_default(),
                    cron: cron.unwrap_or_default(),
                    build_now,
                })
                .await
                .map_err(client::from_status)?
                .into_inner();
            let schedule = if poll.cron.is_empty() {
                format!("every {}", poll.every)
            } else {
                format!("cron \"{}\"", poll.cron)
            };
            eprintln!(
                "polling {} ({}) {schedule}; first poll {}{}",
                poll.repo,
                poll.branches.join(","),
                when(poll.next_due_ms),
                if poll.build_now {
                    ", building the current heads"
                } else {
                    ", recording the current heads"
                }
            );
        }
        PollCommand::List { json } => {
            let polls = client
                .list_polls(pb::ListPollsRequest {})
                .await
                .map_err(client::from_status)?
                .into_inner()
                .polls;
            if json {
                let list: Vec<_> = polls
                    .iter()
                    .map(|p| {
                        json!({"repo": p.repo, "branches": p.branches, "every": p.every, "cron": p.cron,
                               "next_due_ms": p.next_due_ms, "last_polled_at_ms": p.last_polled_at_ms,
                               "last_error": p.last_error, "failures": p.failures, "heads": p.heads})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if polls.is_empty() {
                eprintln!("no polls: add one with `ocelot poll add -r REPO --every 1m`");
            } else {
                for poll in &polls {
                    let schedule = if poll.cron.is_empty() {
                        format!("every {}", poll.every)
                    } else {
                        format!("cron {}", poll.cron)
                    };
                    println!(
                        "{}  [{}]  {schedule}  last poll {}  next {}",
                        poll.repo,
                        poll.branches.join(","),
                        when(poll.last_polled_at_ms),
                        when(poll.next_due_ms)
                    );
                    if !poll.last_error.is_empty() {
                        println!(
                            "  last error ({} in a row): {}",
                            poll.failures, poll.last_error
                        );
                    }
                    let mut heads: Vec<_> = poll.heads.iter().collect();
                    heads.sort();
                    for (branch, commit) in heads {
                        println!("  {branch:<30} {}", commit.get(..12).unwrap_or(commit));
                    }
                }
            }
        }
        PollCommand::Remove { repo } => {
            client
                .remove_poll(pb::RemovePollRequest { repo: repo.clone() })
                .await
                .map_err(client::from_status)?;
            eprintln!("stopped polling {repo}");
        }
    }
    Ok(ExitStatus::Passed)
}
