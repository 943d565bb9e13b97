//! Where a `file` credential is written in a build: [`FilePath`], parsed from what
//! `ocelot creds add file --path` was given. `~/…` is under the home of the build's user,
//! an absolute path is that path, anything else is relative to the workspace. No `..`, no
//! control characters, and it names a file (not empty, not ending in `/`).

use std::fmt;

/// The largest value a `file` credential holds (1 MiB).
pub const MAX_FILE_CREDENTIAL_BYTES: usize = 1024 * 1024;

/// Where in the build a `file` credential goes, its parts normalised (no `.` or empty parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilePath {
    /// `~/PARTS`: under the home directory of the user the scripts run as.
    Home(Vec<String>),
    /// `/PARTS`.
    Absolute(Vec<String>),
    /// `PARTS`: under the build's workspace.
    Workspace(Vec<String>),
}

/// Why a path cannot be a `file` credential's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}` is not a file path for a file credential: {why} (e.g. `~/.kube/config`, `/etc/app/key.pem` or `config/settings.xml`, relative to the workspace)"
)]
pub struct FilePathError {
    path: String,
    why: &'static str,
}

impl FilePath {
    /// Checks and normalises `text`.
    pub fn parse(text: &str) -> Result<FilePath, FilePathError> {
        let refuse = |why| {
            Err(FilePathError {
                path: text.escape_debug().to_string(),
                why,
            })
        };
        if text.is_empty() {
            return refuse("it is empty");
        }
        if text.contains('\0') {
            return refuse("it holds a NUL byte");
        }
        if text.chars().any(char::is_control) {
            return refuse("it holds a control character (a line break, a tab, ...)");
        }
        if text.ends_with('/') {
            return refuse("it ends with `/`, so it names a directory, not a file");
        }
        let (make, rest): (fn(Vec<String>) -> FilePath, &str) = if text == "~" {
            return refuse("`~` is the home directory itself, not a file in it");
        } else if let Some(rest) = text.strip_prefix("~/") {
            (FilePath::Home, rest)
        } else if text.starts_with('~') {
            return refuse("only `~/` (the build user's home) is understood, not `~user`");
        } else if let Some(rest) = text.strip_prefix('/') {
            (FilePath::Absolute, rest)
        } else {
            (FilePath::Workspace, text)
        };
        let mut parts = Vec::new();
        for part in rest.split('/') {
            match part {
                "" | "." => {}
                ".." => return refuse("it has a `..` part"),
                part => parts.push(part.to_string()),
            }
        }
        if parts.is_empty() {
            return refuse("it names no file");
        }
        Ok(make(parts))
    }

    /// The parts after `~/`, `/` or the workspace.
    pub fn parts(&self) -> &[String] {
        match self {
            FilePath::Home(parts) | FilePath::Absolute(parts) | FilePath::Workspace(parts) => parts,
        }
    }

    /// The path under `home` and `workspace` (absolute directories on the machine or in
    /// the container the build runs in).
    pub fn resolve(&self, home: &str, workspace: &str) -> String {
        let base = match self {
            FilePath::Home(_) => home.trim_end_matches('/'),
            FilePath::Absolute(_) => "",
            FilePath::Workspace(_) => workspace.trim_end_matches('/'),
        };
        format!("{base}/{}", self.parts().join("/"))
    }
}

impl fmt::Display for FilePath {
    /// The normal form: `~/a/b`, `/a/b` or `a/b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self {
            FilePath::Home(_) => "~/",
            FilePath::Absolute(_) => "/",
            FilePath::Workspace(_) => "",
        };
        write!(f, "{prefix}{}", self.parts().join("/"))
    }
}

/// `path` relative to `dir` when it is strictly inside it (both absolute; `.` and empty
/// parts ignored): `/workspace/a/b` in `/workspace` is `a/b`.
pub fn relative_inside(path: &str, dir: &str) -> Option<String> {
    let parts = |text: &str| -> Vec<String> {
        text.split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_string)
            .collect()
    };
    let (path, dir) = (parts(path), parts(dir));
    if path.len() <= dir.len() || path[..dir.len()] != dir[..] {
        return None;
    }
    Some(path[dir.len()..].join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<String> {
        text.split('/').map(str::to_string).collect()
    }

    #[test]
    fn home_absolute_and_workspace_paths_are_told_apart_and_normalised() {
        assert_eq!(
            FilePath::parse("~/.kube/config"),
            Ok(FilePath::Home(parts(".kube/config")))
        );
        assert_eq!(
            FilePath::parse("/etc//app/./key.pem"),
            Ok(FilePath::Absolute(parts("etc/app/key.pem")))
        );
        assert_eq!(
            FilePath::parse("./config/settings.xml"),
            Ok(FilePath::Workspace(parts("config/settings.xml")))
        );
        assert_eq!(
            FilePath::parse("a~b").map(|p| p.to_string()).as_deref(),
            Ok("a~b")
        );
        for text in ["~/.kube/config", "/etc/app/key.pem", "config/settings.xml"] {
            assert_eq!(FilePath::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn paths_that_leave_or_name_no_file_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("a\nb", "control character"),
            ("~/.kube/", "ends with `/`"),
            ("/", "ends with `/`"),
            ("~", "home directory itself"),
            ("~root/.ssh/id", "`~user`"),
            ("../secret", "`..`"),
            ("a/../../b", "`..`"),
            ("~/../x", "`..`"),
            ("/etc/..", "`..`"),
            ("./.", "names no file"),
            ("~/.", "names no file"),
        ] {
            let error = FilePath::parse(text).unwrap_err().to_string();
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(error.contains("~/.kube/config"), "{error}");
        }
    }

    #[test]
    fn paths_resolve_under_home_or_workspace() {
        let resolve = |text: &str| {
            FilePath::parse(text)
                .unwrap()
                .resolve("/root", "/workspace")
        };
        assert_eq!(resolve("~/.kube/config"), "/root/.kube/config");
        assert_eq!(resolve("/etc/key.pem"), "/etc/key.pem");
        assert_eq!(resolve("conf/settings.xml"), "/workspace/conf/settings.xml");
        assert_eq!(FilePath::parse("~/x").unwrap().resolve("/", "/w"), "/x");
    }

    #[test]
    fn inside_is_strict_and_by_whole_parts() {
        assert_eq!(
            relative_inside("/workspace/a/b", "/workspace").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            relative_inside("/workspace//./a", "/workspace/").as_deref(),
            Some("a")
        );
        assert_eq!(relative_inside("/workspace", "/workspace"), None);
        assert_eq!(relative_inside("/workspace2/a", "/workspace"), None);
        assert_eq!(relative_inside("/root/.kube/config", "/workspace"), None);
    }
}
