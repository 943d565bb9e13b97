//! Rendering cache keys: `{{ checksum "..." }}` is the SHA-256 of the checkout's regular
//! files its patterns match (read on the worker's host before any script runs, never
//! through a symbolic link), with their paths, in path order.

use super::PlannedCache;
use ocelot_core::pipeline::{ArtifactPattern, Cache, KeyTemplate, KeyValues, MAX_KEY_BYTES};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The hex digits of a checksum put in a key.
const CHECKSUM_HEX: usize = 24;

/// Each cache's plan, or the line saying why it is skipped; and notes for the log.
pub(super) type Rendered = (Result<PlannedCache, String>, Vec<String>);

/// Renders every cache's key and restore prefixes (reading the checkout on a blocking
/// thread).
pub(super) async fn render_all(caches: &[Cache], branch: &str, checkout: &Path) -> Vec<Rendered> {
    let caches = caches.to_vec();
    let branch = branch.to_string();
    let checkout = checkout.to_path_buf();
    let rendered = tokio::task::spawn_blocking(move || {
        caches
            .iter()
            .map(|cache| render(cache, &branch, &checkout))
            .collect::<Vec<_>>()
    })
    .await;
    match rendered {
        Ok(rendered) => rendered,
        Err(error) => vec![(
            Err(format!(
                "cache: skipped: the keys could not be computed ({error})"
            )),
            Vec::new(),
        )],
    }
}

fn render(cache: &Cache, branch: &str, checkout: &Path) -> Rendered {
    let values = KeyValues {
        branch,
        arch: std::env::consts::ARCH,
        os: std::env::consts::OS,
    };
    let mut notes = Vec::new();
    let mut render_one = |template: &KeyTemplate| {
        template.render(&values, |patterns| {
            let (sum, note) = checksum(checkout, patterns);
            notes.extend(note);
            sum
        })
    };
    let key = render_one(&cache.key);
    let restore_prefixes: Vec<String> = cache.restore_keys.iter().map(&mut render_one).collect();
    if key.len() > MAX_KEY_BYTES {
        return (
            Err(format!(
                "cache `{}`: skipped: its key is longer than {MAX_KEY_BYTES} bytes",
                cache.key
            )),
            notes,
        );
    }
    let plan = PlannedCache {
        key,
        restore_prefixes,
        paths: cache.paths.clone(),
        save: true,
    };
    (Ok(plan), notes)
}

/// The checksum of the files `patterns` match, and a note when none does.
fn checksum(checkout: &Path, patterns: &[ArtifactPattern]) -> (String, Option<String>) {
    let files = matching_files(checkout, patterns);
    let names: Vec<&str> = patterns.iter().map(ArtifactPattern::as_str).collect();
    if files.is_empty() {
        return (
            "nofile".to_string(),
            Some(format!(
                "cache: checksum of {}: no regular file matches (the key says `nofile`)",
                names.join(", ")
            )),
        );
    }
    let mut total = Sha256::new();
    for (relative, path) in files {
        match file_sha256(&path) {
            Ok(sum) => {
                total.update(relative.as_bytes());
                total.update([0]);
                total.update(sum);
                total.update([b'\n']);
            }
            Err(error) => {
                return (
                    "unreadable".to_string(),
                    Some(format!(
                        "cache: checksum: `{relative}` could not be read: {error}"
                    )),
                );
            }
        }
    }
    let hex = hex::encode(total.finalize());
    (hex[..CHECKSUM_HEX].to_string(), None)
}

/// The regular files of the checkout the patterns match (symbolic links are not followed
/// nor hashed; `.git` is skipped), sorted by their `/`-separated relative path.
fn matching_files(checkout: &Path, patterns: &[ArtifactPattern]) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(checkout)
        .follow_links(false)
        .into_iter()
        .filter_entry(|entry| entry.depth() != 1 || entry.file_name() != ".git");
    for entry in walk.flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(checkout) else {
            continue;
        };
        let Some(relative) = relative.to_str().map(|r| r.replace('\\', "/")) else {
            continue;
        };
        if patterns.iter().any(|p| p.matches(&relative)) {
            files.push((relative, entry.path().to_path_buf()));
        }
    }
    files.sort();
    files
}

fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(key: &str, restore: &[&str]) -> Cache {
        Cache {
            key: KeyTemplate::parse(key).unwrap(),
            paths: vec![ArtifactPattern::parse("target").unwrap()],
            restore_keys: restore
                .iter()
                .map(|r| KeyTemplate::parse(r).unwrap())
                .collect(),
        }
    }

    #[test]
    fn checksums_follow_the_files_and_never_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), "v1").unwrap();
        let template = cache(
            r#"cargo-{{ checksum "Cargo.lock" }}"#,
            &["cargo-{{ branch }}-"],
        );
        let (plan, notes) = render(&template, "main", dir.path());
        let first = plan.unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(first.key.len(), "cargo-".len() + CHECKSUM_HEX);
        assert_eq!(first.restore_prefixes, ["cargo-main-"]);
        let (again, _) = render(&template, "main", dir.path());
        assert_eq!(again.unwrap().key, first.key);
        std::fs::write(dir.path().join("Cargo.lock"), "v2").unwrap();
        let (changed, _) = render(&template, "main", dir.path());
        assert_ne!(changed.unwrap().key, first.key);
        // a link to a file outside the checkout is not read
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::remove_file(dir.path().join("Cargo.lock")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("Cargo.lock")).unwrap();
        let (linked, notes) = render(&template, "main", dir.path());
        assert_eq!(linked.unwrap().key, "cargo-nofile");
        assert!(notes[0].contains("no regular file"), "{notes:?}");
    }

    #[test]
    fn globs_hash_every_matching_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.lock"), "1").unwrap();
        let template = cache(r#"{{ checksum "**/*.lock" }}"#, &[]);
        let (one, _) = render(&template, "main", dir.path());
        std::fs::write(dir.path().join("y.lock"), "2").unwrap();
        let (two, _) = render(&template, "main", dir.path());
        assert_ne!(one.unwrap().key, two.unwrap().key);
    }
}
