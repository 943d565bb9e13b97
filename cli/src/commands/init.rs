//! `ocelot init [FILE] [--image IMAGE]`: writes a commented `ocelot.yml` to start from; an
//! existing file is never overwritten.

use crate::client::CliError;
use crate::exit::ExitStatus;
use std::io::Write;
use std::path::Path;

/// The file `init` writes; `{image}` is replaced by the image.
const TEMPLATE: &str = r#"# ocelot.yml: how Ocelot builds this repository (see the README's ocelot.yml reference).
# Check it with `ocelot validate`, run it with `ocelot build`.
image: {image}                # the container the stages run in
# branches: [main, "release/.*"]   # regexes of the branches that build (default: every one)
env: ["GREETING=hello"]       # KEY=value, for every stage
timeout: 30m                  # the whole build
stages:                       # in order; the first failing stage stops the build
  - name: build
    script:                   # one sh script that stops at the first failing line
      - echo "$GREETING from build $BUILD_NUMBER of $GIT_BRANCH"
  - name: test
    script:
      - echo "tests go here"
    # artifacts: [reports]    # files kept after the stage (`ocelot artifacts BUILD`)
# cache:                      # kept between builds: restored before the first stage
#   key: 'deps-{{ checksum "Cargo.lock" }}'
#   paths: [.cargo]
#   restore_keys: [deps-]
"#;

/// The file's text for `image`.
fn text(image: &str) -> String {
    TEMPLATE.replace("{image}", image)
}

pub(crate) fn run(file: &Path, image: &str) -> Result<ExitStatus, CliError> {
    if image.trim().is_empty() || image.contains(char::is_whitespace) {
        return Err(CliError::new(
            ExitStatus::Usage,
            format!("`{image}` is not an image name (e.g. `alpine:3`, `rust:1.85`)"),
        ));
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file);
    let mut handle = match created {
        Ok(handle) => handle,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::new(
                ExitStatus::Usage,
                format!(
                    "{} already exists: not overwritten (remove it first, or name another file)",
                    file.display()
                ),
            ));
        }
        Err(error) => {
            return Err(CliError::new(
                ExitStatus::Usage,
                format!("cannot create {}: {error}", file.display()),
            ));
        }
    };
    handle.write_all(text(image).as_bytes()).map_err(|e| {
        CliError::new(
            ExitStatus::Usage,
            format!("cannot write {}: {e}", file.display()),
        )
    })?;
    eprintln!(
        "wrote {} (image {image}); check it with `ocelot validate {}`",
        file.display(),
        file.display()
    );
    Ok(ExitStatus::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_written_is_valid_and_never_overwrites() {
        let pipeline = ocelot_domain::pipeline::parse(&text("rust:1.85")).unwrap();
        assert_eq!(pipeline.image.as_deref(), Some("rust:1.85"));
        assert_eq!(pipeline.stages.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ocelot.yml");
        assert_eq!(run(&file, "alpine:3").unwrap(), ExitStatus::Passed);
        std::fs::write(&file, "mine").unwrap();
        let refused = run(&file, "alpine:3").unwrap_err();
        assert!(
            refused.message.contains("already exists"),
            "{}",
            refused.message
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
        assert!(run(&dir.path().join("x.yml"), "two words").is_err());
    }

    #[test]
    fn completions_and_man_pages_are_made() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            crate::commands::shell::man_pages(dir.path()).unwrap(),
            ExitStatus::Passed
        );
        assert!(dir.path().join("ocelot.1").is_file());
        assert!(dir.path().join("ocelot-build.1").is_file());
    }
}
