//! Saving one cache: the workspace's tar stream (read from the container, never following
//! a link) is filtered to the cache's paths on a blocking thread and written again as one
//! tar of workspace-relative names, which goes to the storage in parts as it is made
//! (hashed on the way), within `--max-cache-mib`. The entry is recorded only if no other
//! build saved the key first; the loser deletes its own object.

use super::{CACHE_STAGE, CacheJob, CacheScope, PlannedCache, human_bytes, seconds};
use crate::artifacts::{link_leaves, workspace_path};
use crate::attempt_log::AttemptLog;
use futures::StreamExt;
use ocelot_core::pipeline::ArtifactPattern;
use ocelot_core::store::NewCache;
use std::collections::HashSet;
use std::time::{Instant, SystemTime};

/// Bytes between the filter and the upload.
const PIPE_BYTES: usize = 1024 * 1024;

/// Saves `plan`'s cache under its key in the build's own scope; every outcome is a line.
pub(super) async fn save(
    job: &CacheJob<'_>,
    scope: &CacheScope,
    plan: &PlannedCache,
    log: &mut AttemptLog,
) {
    let started = Instant::now();
    let context = job.context;
    match context
        .store
        .cache_exists(job.build.repo_id, scope.from_fork, &scope.own, &plan.key)
        .await
    {
        Ok(false) => {}
        Ok(true) => {
            log.system(
                CACHE_STAGE,
                format!(
                    "cache `{}`: another build saved it meanwhile: not saved again",
                    plan.key
                ),
            )
            .await;
            return;
        }
        Err(error) => {
            log.system(
                CACHE_STAGE,
                format!(
                    "cache `{}`: not saved: the caches could not be read ({error})",
                    plan.key
                ),
            )
            .await;
            return;
        }
    }
    let object_key = format!(
        "caches/{}/{}.tar",
        job.build.repo_id,
        uuid::Uuid::new_v4().simple()
    );
    let packed = pack_and_upload(job, plan, &object_key).await;
    let (stored, files) = match packed {
        Ok(Packed::Stored { stored, files }) => (stored, files),
        Ok(Packed::Nothing) => {
            log.system(
                CACHE_STAGE,
                format!(
                    "cache `{}`: not saved: its paths ({}) match no file",
                    plan.key,
                    plan.paths
                        .iter()
                        .map(ArtifactPattern::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .await;
            return;
        }
        Err(why) => {
            log.system(
                CACHE_STAGE,
                format!("cache `{}`: not saved: {why}", plan.key),
            )
            .await;
            return;
        }
    };
    let recorded = context
        .store
        .record_cache(&NewCache {
            repo_id: job.build.repo_id,
            scope: &scope.own,
            from_fork: scope.from_fork,
            key: &plan.key,
            size: stored.size,
            sha256: &stored.sha256,
            object_key: &object_key,
            build_id: job.build.id,
            expires_at: SystemTime::now() + context.cache_settings.cache_expire_in,
        })
        .await;
    let line = match recorded {
        Ok(true) => format!(
            "cache `{}`: saved ({files} files, {}) for branch {} in {}",
            plan.key,
            human_bytes(stored.size),
            scope.own,
            seconds(started.elapsed())
        ),
        Ok(false) => {
            delete_object(job, &object_key).await;
            format!(
                "cache `{}`: another build saved it meanwhile: kept theirs",
                plan.key
            )
        }
        Err(error) => {
            delete_object(job, &object_key).await;
            format!(
                "cache `{}`: not saved: it could not be recorded ({error})",
                plan.key
            )
        }
    };
    log.system(CACHE_STAGE, line).await;
}

async fn delete_object(job: &CacheJob<'_>, key: &str) {
    if let Err(error) = job.context.storage.delete(key).await {
        tracing::warn!(%error, key, "deleting an unrecorded cache object");
    }
}

/// What packing left in the storage.
enum Packed {
    Stored {
        stored: ocelot_core::storage::Stored,
        files: u64,
    },
    /// The paths matched no file: nothing was stored.
    Nothing,
}

/// Filters the workspace into a tar streamed to the object `object_key`.
async fn pack_and_upload(
    job: &CacheJob<'_>,
    plan: &PlannedCache,
    object_key: &str,
) -> Result<Packed, String> {
    let archive = job.environment.workspace_archive();
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(archive));
    let (pipe_reader, pipe_writer) = tokio::io::duplex(PIPE_BYTES);
    let output = tokio_util::io::SyncIoBridge::new(pipe_writer);
    let paths = plan.paths.clone();
    let filtering = tokio::task::spawn_blocking(move || filter_archive(reader, &paths, output));
    let limit = job
        .context
        .cache_settings
        .max_cache_mib
        .saturating_mul(1024 * 1024);
    let mut writer = job.context.storage.writer(object_key);
    let mut stream = tokio_util::io::ReaderStream::with_capacity(pipe_reader, PIPE_BYTES);
    let mut failure = None;
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(error) => {
                failure = Some(format!("the workspace could not be read ({error})"));
                break;
            }
        };
        if writer.size().saturating_add(piece.len() as u64) > limit {
            failure = Some(format!(
                "it is larger than {} (--max-cache-mib)",
                human_bytes(limit)
            ));
            break;
        }
        if let Err(error) = writer.write(&piece).await {
            failure = Some(format!("it could not be stored ({error})"));
            break;
        }
    }
    // the filter's next write fails once the pipe's reader is gone: it stops
    drop(stream);
    let filtered = filtering.await;
    let files = match (failure, filtered) {
        (Some(why), _) => {
            writer.abort().await;
            return Err(why);
        }
        (None, Ok(Ok(files))) => files,
        (None, Ok(Err(error))) => {
            writer.abort().await;
            return Err(format!("the workspace could not be read ({error})"));
        }
        (None, Err(error)) => {
            writer.abort().await;
            return Err(format!("the packing task failed ({error})"));
        }
    };
    if files == 0 {
        writer.abort().await;
        return Ok(Packed::Nothing);
    }
    let stored = writer
        .finish()
        .await
        .map_err(|error| format!("it could not be stored ({error})"))?;
    Ok(Packed::Stored { stored, files })
}

/// Copies the entries of the workspace tar (`workspace/...`) that `patterns` keep into a
/// tar of workspace-relative names: directories, regular files, links that stay inside
/// the workspace (a hard link only to a file kept before it). Returns the files kept.
fn filter_archive(
    reader: impl std::io::Read,
    patterns: &[ArtifactPattern],
    output: impl std::io::Write,
) -> std::io::Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(output);
    let mut kept: HashSet<String> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(path) = workspace_path(&raw) else {
            continue;
        };
        if !patterns.iter().any(|p| p.matches(&path)) {
            continue;
        }
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_dir() {
            header.set_size(0);
            builder.append_data(&mut header, &path, std::io::empty())?;
        } else if kind.is_file() {
            builder.append_data(&mut header, &path, &mut entry)?;
            kept.insert(path);
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name()?.map(|t| t.to_string_lossy().into_owned()) else {
                continue;
            };
            if !link_leaves(&path, &target) {
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)?;
            }
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()?
                .and_then(|t| workspace_path(&t))
                .filter(|t| kept.contains(t));
            if let Some(target) = target {
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)?;
            }
        }
    }
    let mut output = builder.into_inner()?;
    output.flush()?;
    Ok(u64::try_from(kept.len()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace tar as Docker gives it.
    fn workspace_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(0o755);
            header.set_size(data.len() as u64);
            match link {
                Some(link) => builder.append_link(&mut header, path, link).unwrap(),
                None => builder.append_data(&mut header, path, data).unwrap(),
            }
        };
        add("workspace/", tar::EntryType::Directory, b"", None);
        add("workspace/target/", tar::EntryType::Directory, b"", None);
        add(
            "workspace/target/app",
            tar::EntryType::Regular,
            b"binary",
            None,
        );
        add(
            "workspace/target/copy",
            tar::EntryType::Link,
            b"",
            Some("workspace/target/app"),
        );
        add(
            "workspace/target/out",
            tar::EntryType::Symlink,
            b"",
            Some("/etc/passwd"),
        );
        add(
            "workspace/target/in",
            tar::EntryType::Symlink,
            b"",
            Some("app"),
        );
        add(
            "workspace/src.rs",
            tar::EntryType::Regular,
            b"fn main",
            None,
        );
        builder.into_inner().unwrap()
    }

    #[test]
    fn only_the_paths_are_kept_and_no_link_leaves() {
        let mut output = Vec::new();
        let patterns = [ArtifactPattern::parse("target").unwrap()];
        let files = filter_archive(workspace_tar().as_slice(), &patterns, &mut output).unwrap();
        assert_eq!(files, 1);
        let mut archive = tar::Archive::new(output.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["target", "target/app", "target/copy", "target/in"]);
        let unpacked = tempfile::tempdir().unwrap();
        tar::Archive::new(output.as_slice())
            .unpack(unpacked.path())
            .unwrap();
        assert_eq!(
            std::fs::read(unpacked.path().join("target/copy")).unwrap(),
            b"binary"
        );
    }

    #[test]
    fn nothing_matched_keeps_nothing() {
        let patterns = [ArtifactPattern::parse("vendor").unwrap()];
        let files = filter_archive(workspace_tar().as_slice(), &patterns, Vec::new()).unwrap();
        assert_eq!(files, 0);
    }
}
