//! The forge a repository lives on (GitHub, GitLab, Bitbucket Cloud, Gitea/Forgejo): told by
//! its URL's host or set by an admin (`ocelot repos set R --forge ... --api-url ...`), its API's
//! base URL, the repository's path there, and the commit-status state each build state maps to.

use crate::build_state::BuildState;
use crate::repo_url::{normalize_url, url_host};

/// A forge whose API takes commit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Bitbucket,
    Gitea,
}

/// A forge name that is none of `github`, `gitlab`, `bitbucket`, `gitea`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forge `{0}`: expected github, gitlab, bitbucket or gitea")]
pub struct UnknownForge(pub String);

impl Forge {
    pub const ALL: [Forge; 4] = [Forge::GitHub, Forge::GitLab, Forge::Bitbucket, Forge::Gitea];

    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Bitbucket => "bitbucket",
            Forge::Gitea => "gitea",
        }
    }

    /// The forge of a repository URL's host: github.com, gitlab.com and bitbucket.org only
    /// (a self-hosted forge is set with `ocelot repos set --forge`).
    pub fn from_url(url: &str) -> Option<Forge> {
        match url_host(url)?.as_str() {
            "github.com" => Some(Forge::GitHub),
            "gitlab.com" => Some(Forge::GitLab),
            "bitbucket.org" => Some(Forge::Bitbucket),
            _ => None,
        }
    }

    /// The public API's base URL; Gitea has none (each instance is its own).
    pub fn default_api_url(self) -> Option<&'static str> {
        match self {
            Forge::GitHub => Some("https://api.github.com"),
            Forge::GitLab => Some("https://gitlab.com/api/v4"),
            Forge::Bitbucket => Some("https://api.bitbucket.org/2.0"),
            Forge::Gitea => None,
        }
    }

    /// The state a commit status of this forge shows for `state`; `None`: no status (a
    /// skipped build).
    pub fn status_state(self, state: BuildState) -> Option<&'static str> {
        use BuildState as S;
        Some(match (self, state) {
            (_, S::Skipped) => return None,
            (Forge::GitHub | Forge::Gitea, S::Queued | S::Running) => "pending",
            (Forge::GitHub | Forge::Gitea, S::Passed) => "success",
            (Forge::GitHub | Forge::Gitea, S::Failed | S::TimedOut) => "failure",
            (Forge::GitHub | Forge::Gitea, S::Errored | S::Cancelled) => "error",
            (Forge::GitLab, S::Queued) => "pending",
            (Forge::GitLab, S::Running) => "running",
            (Forge::GitLab, S::Passed) => "success",
            (Forge::GitLab, S::Failed | S::TimedOut | S::Errored) => "failed",
            (Forge::GitLab, S::Cancelled) => "canceled",
            (Forge::Bitbucket, S::Queued | S::Running) => "INPROGRESS",
            (Forge::Bitbucket, S::Passed) => "SUCCESSFUL",
            (Forge::Bitbucket, S::Failed | S::TimedOut | S::Errored) => "FAILED",
            (Forge::Bitbucket, S::Cancelled) => "STOPPED",
        })
    }
}

impl std::str::FromStr for Forge {
    type Err = UnknownForge;

    fn from_str(text: &str) -> Result<Forge, UnknownForge> {
        Forge::ALL
            .into_iter()
            .find(|forge| forge.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| UnknownForge(text.to_string()))
    }
}

impl std::fmt::Display for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A repo's forge and its API's base URL: the forge an admin set (`set`, a stored name),
/// else the one `url`'s host tells; the API URL an admin set, else the forge's public one
/// (`None` for Gitea without one). `None`: no known forge.
pub fn resolve(
    set: Option<&str>,
    set_api_url: Option<&str>,
    url: &str,
) -> Result<Option<(Forge, Option<String>)>, UnknownForge> {
    let forge = match set {
        Some(name) => Some(name.parse::<Forge>()?),
        None => Forge::from_url(url),
    };
    Ok(forge.map(|forge| {
        let api_url = set_api_url
            .map(str::to_string)
            .or_else(|| forge.default_api_url().map(str::to_string));
        (forge, api_url)
    }))
}

/// The repository's path on its forge (`owner/repo`, GitLab's `group/sub/project`) from its
/// URL: everything after the host, without `.git`; `None` for a local path or a URL without
/// one.
pub fn repo_path(url: &str) -> Option<String> {
    let url = normalize_url(url);
    let path = if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let slash = rest.find('/')?;
        &rest[slash + 1..]
    } else {
        // scp-like `[user@]host:path`
        let (host, path) = url.split_once(':')?;
        if host.contains('/') {
            return None;
        }
        path
    };
    let path = path.trim_matches('/');
    (!path.is_empty() && !path.contains(['?', '#'])).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forges_come_from_hosts_and_names() {
        assert_eq!(
            Forge::from_url("https://github.com/o/r.git"),
            Some(Forge::GitHub)
        );
        assert_eq!(
            Forge::from_url("git@gitlab.com:g/s/p.git"),
            Some(Forge::GitLab)
        );
        assert_eq!(
            Forge::from_url("https://bitbucket.org/w/s"),
            Some(Forge::Bitbucket)
        );
        assert_eq!(Forge::from_url("https://git.example/o/r"), None);
        assert_eq!("GitHub".parse::<Forge>(), Ok(Forge::GitHub));
        assert!("sourcehut".parse::<Forge>().is_err());
        assert_eq!(Forge::Gitea.default_api_url(), None);
    }

    #[test]
    fn paths_lose_host_and_suffix() {
        assert_eq!(
            repo_path("https://github.com/o/r.git").as_deref(),
            Some("o/r")
        );
        assert_eq!(
            repo_path("git@gitlab.com:g/s/p.git").as_deref(),
            Some("g/s/p")
        );
        assert_eq!(repo_path("ssh://git@host:22/o/r/").as_deref(), Some("o/r"));
        assert_eq!(repo_path("https://github.com/"), None);
        assert_eq!(repo_path("/srv/git/r"), None);
    }

    #[test]
    fn every_final_state_has_a_status() {
        for forge in Forge::ALL {
            for state in BuildState::ALL {
                assert_eq!(
                    forge.status_state(state).is_none(),
                    state == BuildState::Skipped,
                    "{forge} {state:?}"
                );
            }
        }
        assert_eq!(
            Forge::GitLab.status_state(BuildState::Cancelled),
            Some("canceled")
        );
        assert_eq!(
            Forge::GitHub.status_state(BuildState::TimedOut),
            Some("failure")
        );
    }
}
