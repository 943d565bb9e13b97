//! How a worker runs the stages of one build: how many at once when the pipeline is a graph
//! (`needs:`), and how many matrix jobs one build may make.

/// The worker's stage settings (`--max-parallel-stages`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct StageSettings {
    /// The stages of one build that run at the same time when its `ocelot.yml` is a graph
    /// (stages with `needs:`), as separate processes in the build's container. A build on
    /// the host (`--executor host`) runs one stage at a time
    #[arg(
        long = "max-parallel-stages",
        env = "OCELOT_MAX_PARALLEL_STAGES",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=64)
    )]
    pub max_parallel_stages: u16,
    /// The jobs the `matrix:` stages of one build may make, together: a bigger build ends
    /// `errored` naming the count before anything runs
    #[arg(
        long = "max-matrix-jobs",
        env = "OCELOT_MAX_MATRIX_JOBS",
        default_value_t = 64,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub max_matrix_jobs: u16,
}

impl Default for StageSettings {
    fn default() -> Self {
        StageSettings {
            max_parallel_stages: 4,
            max_matrix_jobs: 64,
        }
    }
}
