//! The build's service containers (`services:` of `ocelot.yml`): started beside the build
//! container once it runs, waited for until healthy (a service that exits or never gets
//! healthy ends the build `errored`, naming it), and their last log lines added to the build
//! log at the end, as lines of stage `service:NAME` (the CLI shows them when the build did not
//! pass, or with `ocelot watch --services`). They are removed with the build container.

use super::SETUP_STAGE;
use super::prepare::SetupFailure;
use crate::attempt_log::AttemptLog;
use crate::context::Engine;
use crate::executor::Environment;
use crate::executor::docker::ContainerSpec;
use crate::executor::docker::services::{LOG_TAIL_LINES, ServiceStart};
use ocelot_core::model::Build;
use ocelot_core::pipeline::{Pipeline, share_limits};
use ocelot_core::secrets::BuildCredentials;
use ocelot_core::secrets::mask::Masker;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// What starting a build's services needs besides its environment.
pub(super) struct ServicesJob<'a> {
    pub(super) engine: &'a Engine,
    pub(super) build: &'a Build,
    pub(super) pipeline: &'a Pipeline,
    pub(super) credentials: &'a BuildCredentials,
    pub(super) workspace: &'a Path,
    pub(super) masker: &'a Masker,
    pub(super) cancel: &'a CancellationToken,
}

/// Starts the pipeline's services beside the build container and waits until they are
/// healthy; nothing to do for a pipeline without services. On failure the services' last
/// log lines are in the build log already, and the failure is the build's reason.
pub(super) async fn start(
    job: &ServicesJob<'_>,
    environment: &mut Environment,
    log: &mut AttemptLog,
) -> Result<(), SetupFailure> {
    let services = &job.pipeline.services;
    if services.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let container = match environment {
        Environment::Container(container) => container,
        Environment::Host(_) => {
            return Err(SetupFailure::new(format!(
                "ocelot.yml names services ({}), which run only beside a build container, and \
                 this build runs on the host of worker {} (ocelot.yml names no image): name an \
                 `image` so that the build runs in a container",
                names.join(", "),
                job.engine.worker_id
            )));
        }
    };
    let (build_limits, _) = job.pipeline.resources.within(job.engine.sandbox.limits);
    let (_, limits) = share_limits(build_limits, services).map_err(SetupFailure::new)?;
    let logins: Vec<_> = services
        .iter()
        .map(|s| job.credentials.registry_login(&s.image))
        .collect();
    let starts = services
        .iter()
        .zip(limits)
        .zip(&logins)
        .map(|((service, limits), login)| ServiceStart {
            service,
            limits,
            registry_login: login.as_ref(),
        })
        .collect();
    let listed: Vec<String> = services
        .iter()
        .map(|s| format!("{} ({})", s.name, s.image))
        .collect();
    log.system(
        SETUP_STAGE,
        format!("services: starting {}", listed.join(", ")),
    )
    .await;
    let spec = ContainerSpec {
        image: job.pipeline.image.as_deref().unwrap_or_default(),
        build_id: job.build.id,
        attempt: job.build.attempt,
        worker_id: &job.engine.worker_id,
        instance: &job.engine.instance,
        workspace: job.workspace,
        pull_timeout: job.engine.pull_timeout,
        registry_login: None,
        sandbox: &job.engine.sandbox,
        limits: build_limits,
        network: None,
    };
    let ready = match container.start_services(&spec, starts).await {
        Ok(()) => container.wait_for_services(job.cancel).await,
        Err(error) => Err(error),
    };
    match ready {
        Ok(ready) => {
            for (name, after) in ready {
                log.system(
                    SETUP_STAGE,
                    format!("service `{name}` ready after {:.1} s", after.as_secs_f64()),
                )
                .await;
            }
            Ok(())
        }
        Err(error) => {
            let reason = error.to_string();
            log.system(SETUP_STAGE, format!("error: {reason}")).await;
            append_logs(environment, job.masker, log).await;
            Err(SetupFailure {
                reason,
                lines: Vec::new(),
            })
        }
    }
}

/// Adds each service's last lines to the build log (stage `service:NAME`), masked.
pub(super) async fn append_logs(environment: &Environment, masker: &Masker, log: &mut AttemptLog) {
    let Environment::Container(container) = environment else {
        return;
    };
    if !container.has_services() {
        return;
    }
    log.system(
        SETUP_STAGE,
        format!(
            "services: their last {LOG_TAIL_LINES} log lines each are kept (stages `service:NAME`, \
             shown after a build that did not pass, or by `ocelot watch --services`)"
        ),
    )
    .await;
    container.service_logs(masker, log).await;
}
