//! Artifacts: after a stage that names `artifacts:`, the files of the workspace its patterns
//! match are streamed to the object storage and recorded in Postgres. The workspace is read
//! as one tar stream (from the container, or packed from the host's directory), never
//! following a link, so nothing outside it can be read whatever links the build made; a
//! symlink that points outside is refused with a log line, one inside is skipped. Each file
//! goes to the storage in parts as it is read (hashed on the way), within the build's size
//! and count limits (`--max-artifact-mib`, `--max-artifacts`): a file past them is refused
//! with a log line, and the build's result stands whatever happens to its artifacts. The
//! build's file credentials are removed before (by the stage runner) and their workspace
//! paths skipped here too.

use crate::executor::Environment;
use crate::log_sink::SystemLog;
use bytes::Bytes;
use futures::Stream;
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::pipeline::{ArtifactPattern, Artifacts};
use ocelot_core::storage::Storage;
use ocelot_core::store::{NewArtifact, Store};
use std::io::Read;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The top directory of the workspace's tar stream.
const ARCHIVE_ROOT: &str = "workspace";
/// Bytes read from the tar stream at a time.
const READ_BYTES: usize = 1024 * 1024;
/// Read pieces waiting for the upload (memory used: this many times [`READ_BYTES`]).
const QUEUED_PIECES: usize = 4;

/// The worker's artifact limits.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ArtifactLimits {
    /// The bytes of artifacts a build keeps, in MiB: a file past it is refused (a line in
    /// the build's log says so; the build's result stands)
    #[arg(
        long = "max-artifact-mib",
        env = "OCELOT_MAX_ARTIFACT_MIB",
        default_value_t = 1024
    )]
    pub max_mib: u64,
    /// The artifacts (files) a build keeps: past it, files are refused with a log line
    #[arg(
        long = "max-artifacts",
        env = "OCELOT_MAX_ARTIFACTS",
        default_value_t = 1000
    )]
    pub max_count: u64,
    /// How long artifacts are kept when their stage says no `expire_in`
    #[arg(long = "artifacts-expire-in", env = "OCELOT_ARTIFACTS_EXPIRE_IN", value_parser = ocelot_core::pipeline::parse_duration, default_value = "30d")]
    pub expire_in: Duration,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            max_mib: 1024,
            max_count: 1000,
            expire_in: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What a build may still keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    max_bytes: u64,
    max_count: u64,
    bytes: u64,
    count: u64,
}

impl Budget {
    pub(crate) fn new(limits: &ArtifactLimits) -> Self {
        Budget {
            max_bytes: limits.max_mib.saturating_mul(1024 * 1024),
            max_count: limits.max_count,
            bytes: 0,
            count: 0,
        }
    }

    /// Takes a file of `size` bytes, or says why it cannot.
    fn take(&mut self, size: u64) -> Result<(), String> {
        if self.count >= self.max_count {
            return Err(format!(
                "the build keeps at most {} artifacts (--max-artifacts)",
                self.max_count
            ));
        }
        if self.bytes.saturating_add(size) > self.max_bytes {
            return Err(format!(
                "{} would take the build's artifacts past {} (--max-artifact-mib; {} kept so far)",
                human_bytes(size),
                human_bytes(self.max_bytes),
                human_bytes(self.bytes)
            ));
        }
        self.count += 1;
        self.bytes += size;
        Ok(())
    }
}

/// `1.5 MiB`, `12 KiB`, `100 bytes`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64;
    if value >= KIB * KIB {
        format!("{:.1} MiB", value / (KIB * KIB))
    } else if value >= KIB {
        format!("{:.1} KiB", value / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// What the tar reader found, in order.
#[derive(Debug)]
enum Found {
    /// A file to keep: its bytes follow, then [`Found::End`].
    File {
        path: String,
        size: u64,
    },
    Data(Bytes),
    End,
    /// A line for the log (a refused or skipped entry).
    Note(String),
}

/// The build whose artifacts are collected, and where they go.
pub(crate) struct Collection<'a> {
    pub(crate) store: &'a Store,
    pub(crate) storage: &'a Storage,
    pub(crate) build_id: BuildId,
    pub(crate) attempt: Attempt,
    pub(crate) stage: &'a str,
    pub(crate) artifacts: &'a Artifacts,
    /// `expire_in` when the stage gives none.
    pub(crate) default_expiry: Duration,
    /// Workspace paths never kept (where the build's file credentials go), whatever matches.
    pub(crate) skipped: &'a [String],
}

/// Collects the stage's artifacts from `environment`; every outcome is a log line.
pub(crate) async fn collect(
    job: &Collection<'_>,
    environment: &Environment,
    budget: &mut Budget,
    log: &mut impl SystemLog,
) {
    let patterns: Vec<String> = job
        .artifacts
        .paths
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    log.system(
        job.stage,
        format!("artifacts: collecting {}", patterns.join(", ")),
    )
    .await;
    let archive = environment.workspace_archive();
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(archive));
    let (sender, mut receiver) = mpsc::channel::<Found>(QUEUED_PIECES);
    let paths = job.artifacts.paths.clone();
    let skipped = job.skipped.to_vec();
    let start_budget = *budget;
    let reading = tokio::task::spawn_blocking(move || {
        read_archive(reader, &paths, &skipped, start_budget, &sender)
    });

    let expires_at =
        SystemTime::now().checked_add(job.artifacts.expire_in.unwrap_or(job.default_expiry));
    let mut kept = 0u64;
    let mut kept_bytes = 0u64;
    let mut upload: Option<(String, u64, ocelot_core::storage::ObjectWriter, String)> = None;
    while let Some(found) = receiver.recv().await {
        match found {
            Found::Note(line) => log.system(job.stage, line).await,
            Found::File { path, size } => {
                let key = format!(
                    "artifacts/{}/{}",
                    job.build_id,
                    uuid::Uuid::new_v4().simple()
                );
                upload = Some((path, size, job.storage.writer(&key), key));
            }
            Found::Data(piece) => {
                if let Some((path, _, writer, _)) = upload.as_mut()
                    && let Err(error) = writer.write(&piece).await
                {
                    let path = path.clone();
                    if let Some((_, _, writer, _)) = upload.take() {
                        writer.abort().await;
                    }
                    log.system(
                        job.stage,
                        format!("artifact `{path}` could not be stored: {error}"),
                    )
                    .await;
                }
            }
            Found::End => {
                let Some((path, size, writer, key)) = upload.take() else {
                    continue;
                };
                match finish(job, &path, size, writer, &key, expires_at).await {
                    Ok(line) => {
                        kept += 1;
                        kept_bytes += size;
                        log.system(job.stage, line).await;
                    }
                    Err(line) => log.system(job.stage, line).await,
                }
            }
        }
    }
    if let Some((_, _, writer, _)) = upload.take() {
        writer.abort().await;
    }
    match reading.await {
        Ok(Ok(read)) => {
            *budget = read.budget;
            for (pattern, matched) in patterns.iter().zip(read.matched) {
                if !matched {
                    log.system(job.stage, format!("artifacts: `{pattern}` matched no file"))
                        .await;
                }
            }
        }
        Ok(Err(error)) => {
            log.system(
                job.stage,
                format!("artifacts: the workspace could not be read: {error}"),
            )
            .await;
        }
        Err(error) => {
            tracing::warn!(%error, "the artifact reader failed");
            log.system(job.stage, "artifacts: the workspace could not be read")
                .await;
        }
    }
    log.system(
        job.stage,
        format!(
            "artifacts: {kept} kept ({}) in {}",
            human_bytes(kept_bytes),
            job.storage.location()
        ),
    )
    .await;
}

/// Completes one upload and records it: the log line to write either way.
async fn finish(
    job: &Collection<'_>,
    path: &str,
    size: u64,
    writer: ocelot_core::storage::ObjectWriter,
    key: &str,
    expires_at: Option<SystemTime>,
) -> Result<String, String> {
    let stored = writer
        .finish()
        .await
        .map_err(|e| format!("artifact `{path}` could not be stored: {e}"))?;
    if stored.size != size {
        let _ = job.storage.delete(key).await;
        return Err(format!(
            "artifact `{path}` changed while it was read ({} of {size} bytes): not kept",
            stored.size
        ));
    }
    let recorded = job
        .store
        .record_artifact(&NewArtifact {
            build_id: job.build_id,
            attempt: job.attempt,
            stage: job.stage,
            path,
            size,
            sha256: &stored.sha256,
            object_key: key,
            expires_at,
        })
        .await;
    if let Err(error) = recorded {
        let _ = job.storage.delete(key).await;
        return Err(format!("artifact `{path}` could not be recorded: {error}"));
    }
    Ok(format!(
        "artifact `{path}` kept: {}, sha256 {}",
        human_bytes(size),
        stored.sha256
    ))
}

/// What the reader leaves: the budget after the stage, and which patterns matched.
struct ReadOutcome {
    budget: Budget,
    matched: Vec<bool>,
}

/// Reads the tar stream (blocking): sends each file to keep, piece by piece, and a note for
/// each entry refused.
fn read_archive(
    reader: impl std::io::Read,
    patterns: &[ArtifactPattern],
    skipped: &[String],
    mut budget: Budget,
    sender: &mpsc::Sender<Found>,
) -> std::io::Result<ReadOutcome> {
    let mut matched = vec![false; patterns.len()];
    let mut archive = tar::Archive::new(reader);
    let send = |found: Found| {
        sender
            .blocking_send(found)
            .map_err(|_| std::io::Error::other("the upload stopped"))
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(path) = workspace_path(&raw) else {
            if raw.components().any(|c| c == Component::ParentDir) || raw.is_absolute() {
                send(Found::Note(format!(
                    "artifact `{}` refused: its name leaves the workspace",
                    raw.display()
                )))?;
            }
            continue;
        };
        let hits: Vec<usize> = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| p.matches(&path))
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        for &i in &hits {
            matched[i] = true;
        }
        if skipped.contains(&path) {
            send(Found::Note(format!(
                "artifact `{path}` skipped: a file credential is written there"
            )))?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let note = if kind.is_symlink() && link_leaves(&path, &target) {
                format!("artifact `{path}` refused: a symlink to `{target}`, outside the workspace")
            } else {
                format!(
                    "artifact `{path}` skipped: a link to `{target}` (name its target to keep it)"
                )
            };
            send(Found::Note(note))?;
            continue;
        }
        if !kind.is_file() {
            send(Found::Note(format!(
                "artifact `{path}` skipped: not a regular file"
            )))?;
            continue;
        }
        let size = entry.header().size()?;
        if let Err(why) = budget.take(size) {
            send(Found::Note(format!("artifact `{path}` refused: {why}")))?;
            continue;
        }
        send(Found::File {
            path: path.clone(),
            size,
        })?;
        let mut buffer = vec![0u8; READ_BYTES];
        loop {
            let n = entry.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            send(Found::Data(Bytes::copy_from_slice(&buffer[..n])))?;
        }
        send(Found::End)?;
    }
    Ok(ReadOutcome { budget, matched })
}

/// The path of a tar entry relative to the workspace (`workspace/a/b` → `a/b`), `None` for
/// the workspace itself and for names that are absolute or hold `..`.
pub(crate) fn workspace_path(raw: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if parts.first().map(String::as_str) != Some(ARCHIVE_ROOT) || parts.len() < 2 {
        return None;
    }
    Some(parts[1..].join("/"))
}

/// Whether a symlink at workspace path `path` pointing to `target` leads out of the
/// workspace (an absolute target always counts as out).
pub(crate) fn link_leaves(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return true;
                }
            }
            other => depth.push(other),
        }
    }
    false
}

/// A host workspace as the same tar stream Docker gives (`workspace/...`), packed on a
/// blocking thread into a pipe, never following a link.
pub(crate) fn pack_directory(
    dir: std::path::PathBuf,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    let (reader, writer) = tokio::io::duplex(READ_BYTES);
    let writer = tokio_util::io::SyncIoBridge::new(writer);
    tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        let packed = builder
            .append_dir_all(ARCHIVE_ROOT, &dir)
            .and_then(|()| builder.into_inner())
            .and_then(|mut writer| std::io::Write::flush(&mut writer).map(|()| writer))
            .and_then(|mut writer| writer.shutdown());
        if let Err(error) = packed {
            tracing::warn!(%error, dir = %dir.display(), "packing the workspace for artifacts");
        }
    });
    tokio_util::io::ReaderStream::new(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_are_kept_inside_the_workspace() {
        assert_eq!(
            workspace_path(Path::new("workspace/out/app")).as_deref(),
            Some("out/app")
        );
        assert_eq!(workspace_path(Path::new("workspace")), None);
        assert_eq!(workspace_path(Path::new("workspace/../etc/passwd")), None);
        assert_eq!(workspace_path(Path::new("/workspace/x")), None);
        assert_eq!(workspace_path(Path::new("other/x")), None);
    }

    #[test]
    fn links_that_leave_are_told_apart() {
        assert!(link_leaves("out/l", "/etc/passwd"));
        assert!(link_leaves("out/l", "../../x"));
        assert!(!link_leaves("out/l", "../app"));
        assert!(!link_leaves("l", "./app"));
    }

    #[test]
    fn the_paths_of_file_credentials_are_never_read() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in [
            ("workspace/conf/settings.xml", "secret settings"),
            ("workspace/conf/other.txt", "plain"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o600);
            header.set_size(content.len() as u64);
            builder
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let patterns = [ArtifactPattern::parse("conf/*").unwrap()];
        let (sender, mut receiver) = mpsc::channel(64);
        let read = read_archive(
            archive.as_slice(),
            &patterns,
            &["conf/settings.xml".to_string()],
            Budget::new(&ArtifactLimits::default()),
            &sender,
        )
        .unwrap();
        assert_eq!(read.matched, vec![true]);
        let mut files = Vec::new();
        let mut notes = Vec::new();
        let mut data = Vec::new();
        while let Ok(found) = receiver.try_recv() {
            match found {
                Found::File { path, .. } => files.push(path),
                Found::Note(note) => notes.push(note),
                Found::Data(bytes) => data.extend_from_slice(&bytes),
                Found::End => {}
            }
        }
        assert_eq!(files, vec!["conf/other.txt".to_string()]);
        assert_eq!(data, b"plain");
        assert_eq!(
            notes,
            vec!["artifact `conf/settings.xml` skipped: a file credential is written there"]
        );
    }

    #[test]
    fn the_budget_refuses_past_its_limits() {
        let mut budget = Budget::new(&ArtifactLimits {
            max_mib: 1,
            max_count: 2,
            expire_in: Duration::from_secs(1),
        });
        assert!(budget.take(600 * 1024).is_ok());
        let refused = budget.take(600 * 1024).unwrap_err();
        assert!(refused.contains("--max-artifact-mib"), "{refused}");
        assert!(budget.take(10).is_ok());
        let refused = budget.take(1).unwrap_err();
        assert!(refused.contains("--max-artifacts"), "{refused}");
    }
}
