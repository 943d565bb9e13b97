//! `ocelot cache list -r REPO` and `ocelot cache clear -r REPO [--key PREFIX] [--branch B]`.

use crate::args::CacheCommand;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

pub(crate) async fn run(
    admin: &AdminTarget,
    command: CacheCommand,
) -> Result<ExitStatus, CliError> {
    match command {
        CacheCommand::List { repo, json } => list(admin, repo, json).await,
        CacheCommand::Clear {
            repo,
            key_prefix,
            branch,
            json,
        } => clear(admin, repo, key_prefix, branch, json).await,
    }
}

fn cache_json(cache: &pb::CacheEntry) -> serde_json::Value {
    json!({"key": cache.key, "branch": cache.branch, "from_fork": cache.from_fork,
           "size": cache.size, "sha256": cache.sha256,
           "build_id": (cache.build_id != 0).then_some(cache.build_id),
           "created_at_ms": cache.created_at_ms, "used_at_ms": cache.used_at_ms,
           "expires_at_ms": cache.expires_at_ms})
}

/// `12.3 MiB`.
fn size_text(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64;
    if value >= MIB {
        format!("{:.1} MiB", value / MIB)
    } else {
        format!("{:.1} KiB", value / 1024.0)
    }
}

/// `2026-11-30 14:02` (UTC) of a Unix time in milliseconds.
fn time_text(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or_default());
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.get(..16).unwrap_or(&text).replace('T', " ")
}

async fn list(admin: &AdminTarget, repo: String, json: bool) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let caches = client
        .list_caches(pb::ListCachesRequest { repo: repo.clone() })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .caches;
    if json {
        let list: Vec<_> = caches.iter().map(cache_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else if caches.is_empty() {
        eprintln!(
            "repo {repo} has no saved caches (a build saves them with `cache:` in ocelot.yml)"
        );
    } else {
        println!(
            "{:<48} {:<20} {:>10} {:<16} {:<16}",
            "KEY", "BRANCH", "SIZE", "LAST USED", "EXPIRES"
        );
        for cache in &caches {
            let branch = if cache.from_fork {
                format!("{} (fork)", cache.branch)
            } else {
                cache.branch.clone()
            };
            println!(
                "{:<48} {:<20} {:>10} {:<16} {:<16}",
                cache.key,
                branch,
                size_text(cache.size),
                time_text(cache.used_at_ms),
                time_text(cache.expires_at_ms)
            );
        }
    }
    Ok(ExitStatus::Passed)
}

async fn clear(
    admin: &AdminTarget,
    repo: String,
    key_prefix: String,
    branch: Option<String>,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let cleared = client
        .clear_caches(pb::ClearCachesRequest {
            repo: repo.clone(),
            key_prefix,
            branch: branch.unwrap_or_default(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .cleared;
    if json {
        println!("{}", json!({"repo": repo, "cleared": cleared}));
    } else {
        println!("cleared {cleared} cache(s) of {repo}");
    }
    Ok(ExitStatus::Passed)
}
