//! `ocelot artifacts BUILD`: a build's artifacts; `ocelot artifacts get BUILD [PATH...]
//! [-o DIR]`: downloads them with a progress bar, each written to a `.part` file beside its
//! place, checked against its SHA-256, then renamed. Whatever the stored names say, nothing
//! is written outside DIR: a name with `..`, an absolute one, or one that would pass through
//! a symlink in DIR is refused.

use crate::args::{ArtifactsArgs, ArtifactsCommand};
use crate::client::{self, AdminTarget, CliError, Client};
use crate::exit::ExitStatus;
use indicatif::{ProgressBar, ProgressStyle};
use ocelot_domain::ids::BuildId;
use ocelot_proto::v1 as pb;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

pub(crate) async fn run(admin: &AdminTarget, args: ArtifactsArgs) -> Result<ExitStatus, CliError> {
    match (args.command, args.build) {
        (
            Some(ArtifactsCommand::Get {
                build,
                paths,
                output,
                json,
            }),
            _,
        ) => get(admin, build, &paths, &output, json).await,
        (None, Some(build)) => list(admin, build, args.json).await,
        (None, None) => Err(CliError::new(
            ExitStatus::Usage,
            "name a build: `ocelot artifacts BUILD`",
        )),
    }
}

async fn artifacts_of(client: &mut Client, build: BuildId) -> Result<Vec<pb::Artifact>, CliError> {
    Ok(client
        .list_artifacts(pb::ListArtifactsRequest {
            build_id: build.into(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .artifacts)
}

fn artifact_json(artifact: &pb::Artifact) -> serde_json::Value {
    json!({"path": artifact.path, "size": artifact.size, "sha256": artifact.sha256,
           "stage": artifact.stage, "attempt": artifact.attempt,
           "created_at_ms": artifact.created_at_ms,
           "expires_at_ms": (artifact.expires_at_ms != 0).then_some(artifact.expires_at_ms)})
}

async fn list(admin: &AdminTarget, build: BuildId, json: bool) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let artifacts = artifacts_of(&mut client, build).await?;
    if json {
        let list: Vec<_> = artifacts.iter().map(artifact_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else if artifacts.is_empty() {
        eprintln!(
            "build {build} kept no artifacts (a stage keeps files with `artifacts:` in ocelot.yml)"
        );
    } else {
        println!("{:<40} {:>12} {:<64} STAGE", "PATH", "SIZE", "SHA-256");
        for artifact in &artifacts {
            println!(
                "{:<40} {:>12} {:<64} {}",
                artifact.path, artifact.size, artifact.sha256, artifact.stage
            );
        }
    }
    Ok(ExitStatus::Passed)
}

/// Where the artifact named `name` goes under `dir`, or why it may not be written: only
/// plain names, and no symlink on the way (one already in `dir` could lead out of it).
pub(crate) fn destination(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let relative = Path::new(name);
    if name.is_empty() || name.contains('\\') {
        return Err(format!(
            "artifact name `{name}` is not a plain relative path"
        ));
    }
    let mut target = dir.to_path_buf();
    let mut parts = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                target.push(part);
                parts += 1;
                if let Ok(meta) = std::fs::symlink_metadata(&target)
                    && meta.file_type().is_symlink()
                {
                    return Err(format!(
                        "artifact `{name}` would be written through the symlink {}",
                        target.display()
                    ));
                }
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "artifact name `{name}` leaves the target directory"
                ));
            }
        }
    }
    if parts == 0 {
        return Err(format!("artifact name `{name}` names no file"));
    }
    Ok(target)
}

fn progress_bar(artifact: &pb::Artifact, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(artifact.size);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(artifact.path.clone());
    bar
}

/// Downloads one artifact to `target` (through a `.part` file); its SHA-256 must match.
async fn download(
    client: &mut Client,
    build: BuildId,
    artifact: &pb::Artifact,
    target: &Path,
    json: bool,
) -> Result<(), String> {
    let mut stream = client
        .get_artifact(pb::GetArtifactRequest {
            build_id: build.into(),
            path: artifact.path.clone(),
        })
        .await
        .map_err(|status| client::from_status(status).message)?
        .into_inner();
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let mut part_name = target.file_name().unwrap_or_default().to_os_string();
    part_name.push(".part");
    let part = target.with_file_name(part_name);
    let _ = std::fs::remove_file(&part);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .map_err(|e| format!("creating {}: {e}", part.display()))?;
    let bar = progress_bar(artifact, json);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let received = loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk.data);
                if let Err(error) = file.write_all(&chunk.data) {
                    break Err(format!("writing {}: {error}", part.display()));
                }
                written += chunk.data.len() as u64;
                bar.set_position(written);
            }
            Ok(None) => break Ok(()),
            Err(status) => break Err(client::from_status(status).message),
        }
    };
    bar.finish_and_clear();
    let checked = received.and_then(|()| {
        let sha256 = hex::encode(hasher.finalize());
        if written != artifact.size || sha256 != artifact.sha256 {
            return Err(format!(
                "`{}` arrived damaged ({written} bytes, SHA-256 {sha256}; expected {} bytes, {}): not kept",
                artifact.path, artifact.size, artifact.sha256
            ));
        }
        file.sync_all()
            .map_err(|e| format!("writing {}: {e}", part.display()))
    });
    drop(file);
    match checked.and_then(|()| {
        std::fs::rename(&part, target)
            .map_err(|e| format!("renaming {} to {}: {e}", part.display(), target.display()))
    }) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            Err(error)
        }
    }
}

async fn get(
    admin: &AdminTarget,
    build: BuildId,
    wanted: &[String],
    dir: &Path,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let artifacts = artifacts_of(&mut client, build).await?;
    let chosen: Vec<&pb::Artifact> = if wanted.is_empty() {
        artifacts.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in wanted {
            let name = name.trim_start_matches("./");
            match artifacts.iter().find(|a| a.path == name) {
                Some(artifact) => chosen.push(artifact),
                None => {
                    return Err(CliError::new(
                        ExitStatus::Rejected,
                        format!(
                            "build {build} has no artifact `{name}` (`ocelot artifacts {build}` lists them)"
                        ),
                    ));
                }
            }
        }
        chosen
    };
    if chosen.is_empty() {
        eprintln!("build {build} kept no artifacts");
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::new(
            ExitStatus::Usage,
            format!("creating {}: {e}", dir.display()),
        )
    })?;
    let mut written = Vec::new();
    let mut failures = 0;
    for artifact in chosen {
        let outcome = match destination(dir, &artifact.path) {
            Ok(target) => download(&mut client, build, artifact, &target, json)
                .await
                .map(|()| target),
            Err(refused) => Err(format!("{refused}: refused")),
        };
        match outcome {
            Ok(target) => {
                if !json {
                    eprintln!(
                        "{} ({} bytes, SHA-256 checked)",
                        target.display(),
                        artifact.size
                    );
                }
                written.push(
                    json!({"path": artifact.path, "file": target.display().to_string(),
                                    "size": artifact.size, "sha256": artifact.sha256}),
                );
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {error}");
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(written));
    }
    Ok(if failures == 0 {
        ExitStatus::Passed
    } else {
        ExitStatus::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::destination;
    use std::path::Path;

    #[test]
    fn names_never_leave_the_directory() {
        let dir = Path::new("/tmp/ocelot-artifacts-test-none");
        assert_eq!(destination(dir, "a/b").unwrap(), dir.join("a/b"));
        assert!(destination(dir, "../x").is_err());
        assert!(destination(dir, "a/../../x").is_err());
        assert!(destination(dir, "/etc/passwd").is_err());
        assert!(destination(dir, "").is_err());
        assert!(destination(dir, ".").is_err());
    }
}
