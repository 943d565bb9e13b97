//! An image pull's progress as a build's log carries it: one of Ocelot's own lines (stage
//! `setup`), `pulling IMAGE: 45.2 MB of 120.0 MB`, written again as the pull goes on (at
//! most about once a second: the log is no place for every chunk). `ocelot build` and
//! `ocelot watch` draw these lines as one progress bar on a terminal, and print them as
//! they are elsewhere. [`PullTally`] sums Docker's per-layer progress into the line.

use std::collections::BTreeMap;

const PREFIX: &str = "pulling ";
const BYTES_PER_MB: f64 = 1_000_000.0;

/// How far a pull is: bytes of the image's layers downloaded, of those known so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PullProgress {
    pub image: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

impl PullProgress {
    /// The log line: `pulling IMAGE: 45.2 MB of 120.0 MB`.
    pub fn line(&self) -> String {
        format!(
            "{PREFIX}{}: {} of {}",
            self.image,
            megabytes(self.done_bytes),
            megabytes(self.total_bytes)
        )
    }

    /// The progress a log line tells, if it is such a line (to a tenth of a megabyte).
    pub fn parse(line: &str) -> Option<PullProgress> {
        let (image, amounts) = line.strip_prefix(PREFIX)?.rsplit_once(": ")?;
        let (done, total) = amounts.split_once(" of ")?;
        let bytes = |text: &str| -> Option<u64> {
            let number: f64 = text.strip_suffix(" MB")?.parse().ok()?;
            (number.is_finite() && number >= 0.0).then_some((number * BYTES_PER_MB) as u64)
        };
        if image.is_empty() || image.contains(char::is_whitespace) {
            return None;
        }
        Some(PullProgress {
            image: image.to_string(),
            done_bytes: bytes(done)?,
            total_bytes: bytes(total)?,
        })
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / BYTES_PER_MB)
}

/// Docker's pull progress, one message per layer and step, summed over the layers.
#[derive(Debug, Default)]
pub struct PullTally {
    /// Per layer id: bytes downloaded and its size (0: not known yet).
    layers: BTreeMap<String, (u64, u64)>,
}

impl PullTally {
    /// Takes one of Docker's progress messages: layer `id`, its `status` (`Downloading`,
    /// `Download complete`, `Pull complete`, ...) and, while downloading, `current` of
    /// `total` bytes.
    pub fn observe(&mut self, id: &str, status: &str, current: u64, total: u64) {
        if id.is_empty() {
            return;
        }
        let layer = self.layers.entry(id.to_string()).or_default();
        match status {
            "Downloading" => *layer = (current, total.max(current).max(layer.1)),
            // downloaded (extraction is local work, not counted)
            "Download complete" | "Pull complete" | "Extracting" | "Verifying Checksum" => {
                layer.0 = layer.1;
            }
            _ => {}
        }
    }

    /// The progress of `image` so far; `None` until a layer's size is known.
    pub fn progress(&self, image: &str) -> Option<PullProgress> {
        let total: u64 = self.layers.values().map(|(_, total)| total).sum();
        let done: u64 = self.layers.values().map(|(done, _)| done).sum();
        (total > 0).then(|| PullProgress {
            image: image.to_string(),
            done_bytes: done,
            total_bytes: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_to_a_tenth_of_a_megabyte() {
        let progress = PullProgress {
            image: "registry:5000/team/app:1.2".into(),
            done_bytes: 45_234_567,
            total_bytes: 120_000_000,
        };
        let line = progress.line();
        assert_eq!(
            line,
            "pulling registry:5000/team/app:1.2: 45.2 MB of 120.0 MB"
        );
        assert_eq!(
            PullProgress::parse(&line),
            Some(PullProgress {
                done_bytes: 45_200_000,
                ..progress
            })
        );
        for other in [
            "pulling",
            "pulling image: some MB of 1.0 MB",
            "pulling a b: 1.0 MB of 2.0 MB",
            "pulling : 1.0 MB of 2.0 MB",
            "checking out abc",
            "pulling app: -1.0 MB of 2.0 MB",
        ] {
            assert_eq!(PullProgress::parse(other), None, "{other}");
        }
    }

    #[test]
    fn layers_add_up_and_a_finished_layer_counts_whole() {
        let mut tally = PullTally::default();
        assert_eq!(tally.progress("app"), None);
        tally.observe("a", "Pulling fs layer", 0, 0);
        tally.observe("a", "Downloading", 10, 100);
        tally.observe("b", "Downloading", 5, 50);
        let progress = tally.progress("app").unwrap();
        assert_eq!((progress.done_bytes, progress.total_bytes), (15, 150));
        tally.observe("a", "Download complete", 0, 0);
        tally.observe("", "Digest: sha256:...", 0, 0);
        let progress = tally.progress("app").unwrap();
        assert_eq!((progress.done_bytes, progress.total_bytes), (105, 150));
    }
}
