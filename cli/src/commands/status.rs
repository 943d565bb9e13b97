//! `ocelot status [BUILD]`: one build with its stages (`BUILD`: an id, `latest` or a commit
//! prefix, see `resolve`), or a list of builds (newest first).

use crate::args::StatusArgs;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use crate::render::terminal::plain;
use ocelot_domain::wire;
use ocelot_proto::v1 as pb;
use serde_json::json;

fn build_json(build: &pb::Build) -> serde_json::Value {
    let state = wire::build_state_from_i32(build.state)
        .map(|s| s.as_str())
        .unwrap_or("unknown");
    json!({
        "id": build.id,
        "repo": build.repo,
        "number": build.number,
        "commit": build.commit,
        "branch": build.branch,
        "trigger": build.trigger,
        "state": state,
        "attempt": build.attempt,
        "worker": build.worker,
        "tag": build.tag,
        "reason": build.reason,
        "queued_at_ms": build.queued_at_ms,
        "started_at_ms": build.started_at_ms,
        "finished_at_ms": build.finished_at_ms,
        "env": build
            .env
            .iter()
            .map(|p| (p.name.clone(), json!(p.value)))
            .collect::<serde_json::Map<_, _>>(),
        "force": build.force,
        "stage": (!build.stage.is_empty()).then_some(&build.stage),
    })
}

/// The lines of `ocelot status BUILD` that say what the build was given (none for a plain
/// build): each `--env`, `--force`, `--stage`. Values may come from anyone who could
/// trigger: no escapes, and a line break shows as `\n`.
fn param_lines(build: &pb::Build) -> Vec<String> {
    let mut lines: Vec<String> = build
        .env
        .iter()
        .map(|p| {
            let value = p.value.replace('\n', "\\n");
            format!("  env      {}={}", plain(&p.name), plain(&value))
        })
        .collect();
    if build.force {
        lines.push("  forced   built whatever `branches` in ocelot.yml says (--force)".into());
    }
    if !build.stage.is_empty() {
        lines.push(format!(
            "  stage    {} and the stages it needs (--stage)",
            plain(&build.stage)
        ));
    }
    lines
}

fn state_name(state: i32) -> &'static str {
    wire::build_state_from_i32(state)
        .map(|s| s.as_str())
        .unwrap_or("unknown")
}

fn duration(build: &pb::Build) -> String {
    match (build.started_at_ms, build.finished_at_ms) {
        (0, _) => "-".to_string(),
        (start, 0) => format!("{:.0}s+", (now_ms() - start).max(0) as f64 / 1000.0),
        (start, end) => format!("{:.1}s", (end - start).max(0) as f64 / 1000.0),
    }
}

/// What a stage of a graph needs, as `ocelot status BUILD` draws it after the stage:
/// `← needs a, b`; nothing for a stage that needs nothing or stages that ran in order.
fn needs_text(needs: &[String]) -> Option<String> {
    if needs.is_empty() {
        return None;
    }
    let names: Vec<String> = needs.iter().map(|n| plain(n).into_owned()).collect();
    Some(format!("← needs {}", names.join(", ")))
}

fn now_ms() -> i64 {
    ocelot_domain::model::unix_ms(std::time::SystemTime::now())
}

pub(crate) async fn run(admin: &AdminTarget, args: StatusArgs) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    if let Some(asked) = args.build {
        let id = super::resolve::build_id(&mut client, Some(asked)).await?;
        let detail = client
            .get_build(pb::GetBuildRequest { id: id.into() })
            .await
            .map_err(client::from_status)?
            .into_inner();
        let build = detail.build.ok_or_else(|| {
            CliError::new(ExitStatus::Errored, "the admin answered without a build")
        })?;
        if args.json {
            let mut value = build_json(&build);
            value["stages"] = detail
                .stages
                .iter()
                .map(|stage| {
                    json!({
                        "index": stage.index,
                        "name": stage.name,
                        "state": wire::stage_state_from_i32(stage.state).as_str(),
                        "exit_code": stage.exit_code,
                        "started_at_ms": stage.started_at_ms,
                        "finished_at_ms": stage.finished_at_ms,
                        "needs": stage.needs,
                    })
                })
                .collect();
            if !detail.pending_reason.is_empty() {
                value["pending_reason"] = json!(detail.pending_reason);
            }
            if !detail.deliveries.is_empty() {
                value["deliveries"] = super::deliveries::json(&detail.deliveries);
            }
            println!("{value}");
        } else {
            println!(
                "build {}  {} #{}  {}",
                build.id,
                build.repo,
                build.number,
                state_name(build.state)
            );
            // the branch, the reason and stage names may come from a repo: no escapes
            println!("  commit   {} ({})", build.commit, plain(&build.branch));
            println!(
                "  trigger  {}  attempt {}  worker {}",
                build.trigger,
                build.attempt,
                if build.worker.is_empty() {
                    "-"
                } else {
                    &build.worker
                }
            );
            println!("  duration {}", duration(&build));
            for line in param_lines(&build) {
                println!("{line}");
            }
            if !build.reason.is_empty() {
                println!("  reason   {}", plain(&build.reason));
            }
            if !detail.pending_reason.is_empty() {
                println!("  waiting  {}", detail.pending_reason);
            }
            if build.attempt > 1 {
                println!(
                    "  earlier  attempts 1..{} were lost or handed back: `ocelot watch {} --attempt N` shows their logs",
                    build.attempt - 1,
                    build.id
                );
            }
            for stage in &detail.stages {
                let took = if stage.finished_at_ms > 0 && stage.started_at_ms > 0 {
                    format!(
                        "{:.1}s",
                        (stage.finished_at_ms - stage.started_at_ms) as f64 / 1000.0
                    )
                } else {
                    String::new()
                };
                let code = stage
                    .exit_code
                    .map(|c| format!("exit {c}"))
                    .unwrap_or_default();
                let line = format!(
                    "  stage {:<20} {:<10} {:<8} {}",
                    plain(&stage.name),
                    wire::stage_state_from_i32(stage.state).as_str(),
                    code,
                    took
                );
                match needs_text(&stage.needs) {
                    Some(needs) => println!("{line:<50} {needs}"),
                    None => println!("{line}"),
                }
            }
            for line in super::deliveries::lines(&detail.deliveries) {
                println!("{line}");
            }
        }
        let state = wire::build_state_from_i32(build.state).ok();
        return Ok(match state {
            Some(state) if state.is_final() => ExitStatus::of_build(state),
            _ => ExitStatus::Passed,
        });
    }
    let builds = client
        .list_builds(pb::ListBuildsRequest {
            repo: args.repo.unwrap_or_default(),
            branch: args.branch.unwrap_or_default(),
            state: args
                .state
                .map(|s| pb::BuildState::from(s).into())
                .unwrap_or(0),
            limit: args.limit,
            commit_prefix: String::new(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .builds;
    if args.json {
        let list: Vec<_> = builds.iter().map(build_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else if builds.is_empty() {
        eprintln!("no builds");
    } else {
        println!(
            "{:<8} {:<20} {:<6} {:<24} {:<8} {:<10} TIME",
            "ID", "REPO", "#", "BRANCH", "COMMIT", "STATE"
        );
        for build in &builds {
            println!(
                "{:<8} {:<20} {:<6} {:<24} {:<8} {:<10} {}",
                build.id,
                build.repo,
                build.number,
                plain(&build.branch),
                build.commit.get(..7).unwrap_or(&build.commit),
                state_name(build.state),
                duration(build)
            );
        }
    }
    Ok(ExitStatus::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_show_one_a_line_without_escapes() {
        let build = pb::Build {
            env: vec![
                pb::EnvParam {
                    name: "A".into(),
                    value: "two\nlines\x1b[31m".into(),
                },
                pb::EnvParam {
                    name: "B".into(),
                    value: "x=y".into(),
                },
            ],
            force: true,
            stage: "test".into(),
            ..Default::default()
        };
        assert_eq!(
            param_lines(&build),
            [
                "  env      A=two\\nlines",
                "  env      B=x=y",
                "  forced   built whatever `branches` in ocelot.yml says (--force)",
                "  stage    test and the stages it needs (--stage)",
            ]
        );
        assert!(param_lines(&pb::Build::default()).is_empty());
        let json = build_json(&build);
        assert_eq!(
            json["env"],
            json!({"A": "two\nlines\u{1b}[31m", "B": "x=y"})
        );
        assert_eq!(json["force"], json!(true));
        assert_eq!(json["stage"], json!("test"));
        assert_eq!(build_json(&pb::Build::default())["stage"], json!(null));
    }
}
