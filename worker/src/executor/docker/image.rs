//! The build's image: used as it is on the Docker host, or pulled (with the build's own
//! registry login). An image once pulled with a login is private: the worker records its
//! repository (in its cache directory, so that a restart remembers it) and any later build
//! using it pulls it again with its own login, which the registry checks; a build without
//! a login for it is refused. A build can never use another repo's private image that way.

use super::ContainerSpec;
use crate::executor::ExecutorError;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// When images are pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Only images the Docker host does not have, and private images (again, with the
    /// build's own login).
    #[default]
    IfNotPresent,
    /// Before every build (the registry checks every build's access; images that exist only
    /// on the Docker host cannot be used).
    Always,
}

/// What to do with a build's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullDecision {
    /// The Docker host's copy is used as it is.
    UseLocal,
    /// Pulled (with the build's login, if it has one).
    Pull,
    /// Private and the build has no login for its registry.
    Refuse,
}

/// What happens to an image: `present` on the Docker host, `private` (pulled with a login
/// before), and whether the build `has_login` for its registry.
pub(crate) fn decide(
    policy: PullPolicy,
    present: bool,
    private: bool,
    has_login: bool,
) -> PullDecision {
    match (policy, present, private, has_login) {
        (PullPolicy::Always, ..) | (PullPolicy::IfNotPresent, false, ..) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true, false, _) => PullDecision::UseLocal,
        (PullPolicy::IfNotPresent, true, true, true) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true, true, false) => PullDecision::Refuse,
    }
}

/// The reference to pull: without a tag or digest Docker would pull every tag, so `:latest`.
pub(super) fn pull_reference(image: &str) -> String {
    let last_component = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last_component.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The repository an image reference names, as Docker resolves it: tag and digest dropped,
/// Docker Hub made explicit (`alpine:3` and `docker.io/library/alpine` are one repository).
pub(crate) fn canonical_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (head, last) = match without_digest.rsplit_once('/') {
        Some((head, last)) => (Some(head), last),
        None => (None, without_digest),
    };
    let last = last.split(':').next().unwrap_or(last);
    let path = match head {
        Some(head) => format!("{head}/{last}"),
        None => last.to_string(),
    };
    let first = path.split('/').next().unwrap_or(&path);
    let has_registry =
        path.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let path = path.to_ascii_lowercase();
    if has_registry {
        return path;
    }
    if path.contains('/') {
        format!("docker.io/{path}")
    } else {
        format!("docker.io/library/{path}")
    }
}

/// The repositories of images this worker pulled with a registry login, kept in a file
/// (one per line) that survives restarts.
#[derive(Debug)]
pub(crate) struct PrivateImages {
    path: PathBuf,
    repositories: tokio::sync::Mutex<BTreeSet<String>>,
}

impl PrivateImages {
    /// Reads `path` (none yet: no private image).
    pub(crate) fn load(path: &Path) -> Result<Self, std::io::Error> {
        let repositories = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(error) => return Err(error),
        };
        Ok(PrivateImages {
            path: path.to_path_buf(),
            repositories: tokio::sync::Mutex::new(repositories),
        })
    }

    /// Whether any of `references` (an image's names) is a private image's repository.
    pub(crate) async fn any_private<'a>(
        &self,
        references: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let repositories = self.repositories.lock().await;
        references
            .into_iter()
            .any(|reference| repositories.contains(&canonical_repository(reference)))
    }

    /// Records `image`'s repository as private (before it is pulled, so that no other build
    /// uses it meanwhile), and writes the file.
    pub(crate) async fn record(&self, image: &str) -> Result<(), std::io::Error> {
        let mut repositories = self.repositories.lock().await;
        if !repositories.insert(canonical_repository(image)) {
            return Ok(());
        }
        let mut text = String::new();
        for repository in repositories.iter() {
            text.push_str(repository);
            text.push('\n');
        }
        // written beside it, then renamed: a crash leaves the old file or the new one
        let temporary = self.path.with_extension("tmp");
        tokio::fs::write(&temporary, text).await?;
        tokio::fs::rename(&temporary, &self.path).await
    }
}

/// A failed pull: a refused login (or a registry that wants one) is an authentication
/// error naming the registry; anything else means the image is unavailable.
fn pull_error(spec: &ContainerSpec<'_>, message: String) -> ExecutorError {
    let lowered = message.to_ascii_lowercase();
    if [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
    ]
    .iter()
    .any(|needle| lowered.contains(needle))
    {
        return ExecutorError::RegistryAuthentication {
            image: spec.image.to_string(),
            registry: ocelot_core::secrets::image_registry(spec.image).to_string(),
            message,
        };
    }
    ExecutorError::ImageUnavailable {
        image: spec.image.to_string(),
        worker: spec.worker_id.to_string(),
        message,
    }
}

/// The image `image` as the Docker host has it: its id and names (its own reference, its
/// tags and digests).
struct LocalImage {
    id: String,
    names: Vec<String>,
}

/// The image `image` on the Docker host, or `None` when the host does not have it.
async fn local_image(docker: &Docker, image: &str) -> Result<Option<LocalImage>, ExecutorError> {
    match docker.inspect_image(image).await {
        Ok(inspected) => {
            let mut names = vec![image.to_string()];
            names.extend(inspected.repo_tags.unwrap_or_default());
            names.extend(inspected.repo_digests.unwrap_or_default());
            Ok(Some(LocalImage {
                id: inspected.id.unwrap_or_default(),
                names,
            }))
        }
        Err(error) if super::is_not_found(&error) => Ok(None),
        Err(error) => Err(ExecutorError::Docker(format!(
            "inspecting image {image}: {error}"
        ))),
    }
}

/// Makes the build's image ready on the Docker host, as [`decide`] says; the id of the image
/// the build runs.
pub(super) async fn ensure_image(
    docker: &Docker,
    spec: &ContainerSpec<'_>,
) -> Result<String, ExecutorError> {
    let local = local_image(docker, spec.image).await?;
    let private = match &local {
        Some(local) => {
            spec.sandbox
                .private_images
                .any_private(local.names.iter().map(String::as_str))
                .await
        }
        None => false,
    };
    let decision = decide(
        spec.sandbox.pull,
        local.is_some(),
        private,
        spec.registry_login.is_some(),
    );
    match (decision, local) {
        (PullDecision::UseLocal, Some(local)) => Ok(local.id),
        (PullDecision::Refuse, _) => Err(ExecutorError::PrivateImage {
            image: spec.image.to_string(),
            registry: ocelot_core::secrets::image_registry(spec.image).to_string(),
        }),
        (PullDecision::Pull | PullDecision::UseLocal, _) => {
            pull(docker, spec).await?;
            match local_image(docker, spec.image).await? {
                Some(pulled) => Ok(pulled.id),
                None => Err(pull_error(
                    spec,
                    "the pull ended but the Docker host has no such image".into(),
                )),
            }
        }
    }
}

async fn pull(docker: &Docker, spec: &ContainerSpec<'_>) -> Result<(), ExecutorError> {
    tracing::info!(
        image = spec.image,
        login = spec.registry_login.is_some(),
        "pulling"
    );
    if spec.registry_login.is_some() {
        spec.sandbox
            .private_images
            .record(spec.image)
            .await
            .map_err(|e| {
                ExecutorError::Io(format!(
                    "recording {} as a private image in {}: {e}",
                    spec.image,
                    spec.sandbox.private_images.path.display()
                ))
            })?;
    }
    let reference = pull_reference(spec.image);
    let options = CreateImageOptionsBuilder::new()
        .from_image(&reference)
        .build();
    let credentials = spec.registry_login.map(|login| DockerCredentials {
        username: Some(login.username.clone()),
        password: Some(login.password.expose().to_string()),
        serveraddress: Some(login.registry.clone()),
        ..Default::default()
    });
    let pulled = async {
        let mut progress = docker.create_image(Some(options), None, credentials);
        while let Some(step) = progress.next().await {
            step.map_err(|e| pull_error(spec, e.to_string()))?;
        }
        Ok::<(), ExecutorError>(())
    };
    tokio::time::timeout(spec.pull_timeout, pulled)
        .await
        .map_err(|_| ExecutorError::ImageUnavailable {
            image: spec.image.to_string(),
            worker: spec.worker_id.to_string(),
            message: format!("the pull took longer than {:?}", spec.pull_timeout),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_name_a_tag() {
        assert_eq!(pull_reference("alpine"), "alpine:latest");
        assert_eq!(pull_reference("maven:3.5.2"), "maven:3.5.2");
        assert_eq!(
            pull_reference("registry:5000/team/app"),
            "registry:5000/team/app:latest"
        );
        assert_eq!(
            pull_reference("registry:5000/team/app:1"),
            "registry:5000/team/app:1"
        );
        assert_eq!(pull_reference("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn repositories_are_named_as_docker_resolves_them() {
        for same in [
            "alpine",
            "alpine:3.19",
            "docker.io/library/alpine",
            "library/alpine:latest",
            "alpine@sha256:abc",
        ] {
            assert_eq!(
                canonical_repository(same),
                "docker.io/library/alpine",
                "{same}"
            );
        }
        assert_eq!(canonical_repository("team/app:1"), "docker.io/team/app");
        assert_eq!(
            canonical_repository("registry:5000/team/app:1"),
            "registry:5000/team/app"
        );
        assert_eq!(
            canonical_repository("ghcr.io/Team/App@sha256:abc"),
            "ghcr.io/team/app"
        );
        assert_eq!(canonical_repository("localhost/app"), "localhost/app");
    }

    #[test]
    fn a_private_image_is_pulled_again_with_the_builds_own_login_or_refused() {
        use PullDecision::*;
        use PullPolicy::*;
        // a public image the host has: used as it is, login or not
        assert_eq!(decide(IfNotPresent, true, false, false), UseLocal);
        assert_eq!(decide(IfNotPresent, true, false, true), UseLocal);
        // missing: pulled
        assert_eq!(decide(IfNotPresent, false, false, false), Pull);
        assert_eq!(decide(IfNotPresent, false, true, true), Pull);
        // another build pulled it with a login: this build's login is checked by a pull...
        assert_eq!(decide(IfNotPresent, true, true, true), Pull);
        // ...and without one it is refused
        assert_eq!(decide(IfNotPresent, true, true, false), Refuse);
        // `always`: every build pulls
        for present in [false, true] {
            for private in [false, true] {
                for login in [false, true] {
                    assert_eq!(decide(Always, present, private, login), Pull);
                }
            }
        }
    }

    #[tokio::test]
    async fn private_images_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private-images");
        let images = PrivateImages::load(&path).unwrap();
        assert!(!images.any_private(["registry:5000/team/app:1"]).await);
        images.record("registry:5000/team/app:1").await.unwrap();
        images.record("registry:5000/team/app:2").await.unwrap();
        assert!(images.any_private(["registry:5000/team/app:latest"]).await);
        let again = PrivateImages::load(&path).unwrap();
        // another tag or a digest of the same repository is private too
        assert!(
            again
                .any_private(["sha256:1234", "registry:5000/team/app@sha256:ab"])
                .await
        );
        assert!(!again.any_private(["registry:5000/team/other"]).await);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "registry:5000/team/app\n"
        );
    }
}
