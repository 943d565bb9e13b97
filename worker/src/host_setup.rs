//! What a worker started with `--executor host` checks before it takes a job: it runs as
//! root (to run each build as its own unprivileged uid), has enough build uids, and its
//! cache directory lets build users reach their own workspace and nothing else.

use crate::Settings;
use crate::executor::host::{UidPool, make_traversable};
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

/// The build uids of a host worker, once it is known to be able to use them.
pub(crate) fn check(settings: &Settings) -> anyhow::Result<Arc<UidPool>> {
    let euid = rustix::process::geteuid().as_raw();
    anyhow::ensure!(
        euid == 0,
        "a worker started with `--executor host` runs each build as its own unprivileged uid \
         and so must run as root (it runs as uid {euid}); run it as root, or use \
         `--executor docker`"
    );
    let range = settings.host_build_uids.with_context(|| {
        format!(
            "a worker started with `--executor host` needs `--host-build-uids FIRST-LAST` (or \
             {}): uids no user and no other worker on this host uses, at least --concurrency \
             ({}) of them, e.g. 200000-200999",
            ocelot_core::env_vars::OCELOT_HOST_BUILD_UIDS,
            settings.concurrency
        )
    })?;
    anyhow::ensure!(
        range.len() >= settings.concurrency,
        "--host-build-uids {range} holds {} uids, fewer than --concurrency {}: each running \
         build needs its own",
        range.len(),
        settings.concurrency
    );
    if let Some(key) = &settings.secrets.master_key_file {
        let mode = std::fs::metadata(key)
            .with_context(|| format!("reading the master key file {}", key.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o004 == 0,
            "the master key file {} is readable by every user (mode {:o}), the host builds' \
             too: `chmod o-r {}`",
            key.display(),
            mode & 0o7777,
            key.display()
        );
    }
    Ok(UidPool::new(range))
}

/// Build users may pass through the cache directory to their workspace (mode 0711: not
/// list it), never read the git mirrors (0700), and must be able to reach it at all.
pub(crate) fn protect_cache_dir(cache_dir: &Path, workspaces: &Path) -> anyhow::Result<()> {
    let mirrors = cache_dir.join("mirrors");
    std::fs::create_dir_all(&mirrors).with_context(|| format!("creating {}", mirrors.display()))?;
    std::fs::set_permissions(&mirrors, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", mirrors.display()))?;
    let mut dir = workspaces.to_path_buf();
    loop {
        make_traversable(&dir).map_err(anyhow::Error::msg)?;
        if dir == cache_dir || !dir.pop() {
            break;
        }
    }
    // the directories above the cache directory are the operator's: they must let build
    // users through (o+x), else no host build could enter its workspace
    let absolute = std::path::absolute(cache_dir)
        .with_context(|| format!("resolving {}", cache_dir.display()))?;
    for ancestor in absolute.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .with_context(|| format!("reading {}", ancestor.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o001 != 0,
            "host builds run as unprivileged users, who cannot pass through {} (mode {:o}) to \
             their workspaces under --cache-dir {}: allow it (`chmod o+x {}`) or choose another \
             --cache-dir",
            ancestor.display(),
            mode & 0o7777,
            cache_dir.display(),
            ancestor.display()
        );
    }
    Ok(())
}
