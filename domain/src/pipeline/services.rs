//! `services:` of a pipeline: containers started before the first stage on the build's own
//! network (a database, a web server), each reachable from the build by its name, waited for
//! until healthy, and removed with the build. Their limits come out of the build's
//! ([`share_limits`]).
//!
//! ```yaml
//! services:
//!   - name: db
//!     image: postgres:16
//!     env: ["POSTGRES_PASSWORD=test"]
//!     wait: { command: pg_isready -U postgres, port: 5432, timeout: 30s }
//!     resources: { memory: 512m }
//! ```

use std::time::Duration;

use marked_yaml::Node;
use serde::{Deserialize, Serialize};

use super::model::EnvVar;
use super::reader::{Cx, Field, Fields};
use super::resources::{Limits, MIN_MEMORY_BYTES, Resources, format_cpus, format_memory};

/// The most services one `ocelot.yml` may name.
pub const MAX_SERVICES: usize = 8;
/// The longest service name (a DNS label).
pub(crate) const MAX_SERVICE_NAME: usize = 63;
/// How long a service is waited for when its `wait` names no `timeout`.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `wait.timeout`.
pub(crate) const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Names a service may not take: the build container's own names.
pub(crate) const RESERVED_NAMES: [&str; 2] = ["build", "localhost"];
/// The fewest processes a container of a build is given.
const MIN_PIDS: u64 = 16;
/// The fewest nano-CPUs a container of a build is given (0.01 CPUs).
const MIN_NANO_CPUS: u64 = 10_000_000;

const SERVICE_FIELDS: [&str; 6] = ["name", "image", "env", "command", "wait", "resources"];
const WAIT_FIELDS: [&str; 3] = ["command", "port", "timeout"];

/// One entry of `services:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `name`: a DNS label, unique, the name the build reaches the service by.
    pub name: String,
    /// `image`: the service's Docker image.
    pub image: String,
    /// `env`: the service's variables (it gets no other: no secrets, not the file's `env`).
    pub env: Vec<EnvVar>,
    /// `command`: what the container runs (default: the image's own command).
    pub command: Option<ServiceCommand>,
    /// `wait`: when the service counts as ready (default: once its container runs).
    pub wait: Option<ServiceWait>,
    /// `resources`: its share of the build's limits (default: an equal share).
    pub resources: Resources,
}

/// `command` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceCommand {
    /// A list: the arguments given to the image's entrypoint (Docker's `CMD`).
    Args(Vec<String>),
    /// A string: a shell command, run by `/bin/sh -c` in place of the image's entrypoint.
    Shell(String),
}

/// `wait` of a service: every check it names must hold, within `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceWait {
    /// `command`: run with `/bin/sh -c` in the service's container until it exits 0.
    pub command: Option<String>,
    /// `port`: until the service listens on this TCP port (on an address other than loopback).
    pub port: Option<u16>,
    /// `timeout`: how long the checks may take to hold ([`DEFAULT_WAIT_TIMEOUT`]).
    pub timeout: Duration,
}

impl Service {
    /// How long the service is waited for.
    pub fn wait_timeout(&self) -> Duration {
        self.wait
            .as_ref()
            .map_or(DEFAULT_WAIT_TIMEOUT, |wait| wait.timeout)
    }
}

/// Whether `name` may name a service: a lowercase DNS label (`a-z`, `0-9`, `-`, not
/// starting or ending with `-`), at most [`MAX_SERVICE_NAME`] bytes, not reserved.
pub fn check_service_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.len() > MAX_SERVICE_NAME {
        return Err(format!(
            "`{name}` is longer than {MAX_SERVICE_NAME} characters"
        ));
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(format!(
            "`{name}` is not a host name: lowercase letters, digits and `-` (not first or last)"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "`{name}` is reserved (the build container's own name)"
        ));
    }
    Ok(())
}

/// Reads `services:`, a list of up to [`MAX_SERVICES`].
pub(super) fn read_services(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<Service>> {
    let items = field.list(
        cx,
        "a list of services (each a mapping with `name` and `image`)",
    )?;
    if items.len() > MAX_SERVICES {
        cx.error(
            field.pos,
            &field.path,
            format!(
                "{} services; a build starts at most {MAX_SERVICES}",
                items.len()
            ),
        );
        return None;
    }
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut services = Vec::new();
    let mut all_ok = true;
    for item in &items {
        match read_service(cx, item, &mut names) {
            Some(service) => services.push(service),
            None => all_ok = false,
        }
    }
    all_ok.then_some(services)
}

fn read_service(
    cx: &mut Cx,
    item: &Field<'_>,
    names: &mut Vec<(String, usize)>,
) -> Option<Service> {
    let map = item.mapping(
        cx,
        "a service (a mapping like `{name: db, image: postgres:16}`)",
    )?;
    let fields = Fields::read(cx, map, &item.path, &SERVICE_FIELDS);
    let name = fields
        .require(cx, "name", "a name (the host name the build reaches it by)")
        .and_then(|f| {
            let name = f.string(cx)?;
            if let Err(message) = check_service_name(&name) {
                let hint = name
                    .chars()
                    .any(|c| c.is_ascii_uppercase() || c == '_')
                    .then(|| format!("try `{}`", name.to_ascii_lowercase().replace('_', "-")));
                cx.error_hint(f.pos, &f.path, message, hint);
                return None;
            }
            if let Some((_, line)) = names.iter().find(|(seen, _)| *seen == name) {
                cx.error_hint(
                    f.pos,
                    &f.path,
                    format!("duplicate service name `{name}`"),
                    Some(format!("first used at line {line}")),
                );
                return None;
            }
            names.push((name.clone(), f.pos.line));
            Some(name)
        });
    let image = fields
        .require(cx, "image", "a Docker image")
        .and_then(|f| f.non_empty_string(cx))
        .map(|image| image.trim().to_string());
    let env = match fields.get("env") {
        Some(f) => env_list(cx, f),
        None => Some(Vec::new()),
    };
    let command = match fields.get("command") {
        Some(f) => read_command(cx, f).map(Some),
        None => Some(None),
    };
    let wait = match fields.get("wait") {
        Some(f) => read_wait(cx, f).map(Some),
        None => Some(None),
    };
    let resources = match fields.get("resources") {
        Some(f) => super::parse::read_resources(cx, f),
        None => Some(Resources::default()),
    };
    Some(Service {
        name: name?,
        image: image?,
        env: env?,
        command: command?,
        wait: wait?,
        resources: resources?,
    })
}

fn env_list(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<EnvVar>> {
    let errors_before = cx.errors.len();
    let items = field.string_list(cx, "a list of `KEY=value` strings")?;
    let mut out = Vec::new();
    for (item, text) in items {
        match EnvVar::parse(&text) {
            Ok(var) => out.push(var),
            Err(message) => cx.error(item.pos, &item.path, message),
        }
    }
    (cx.errors.len() == errors_before).then_some(out)
}

/// `command: [redis-server, --port, "6380"]` or `command: redis-server --port 6380`.
fn read_command(cx: &mut Cx, field: &Field<'_>) -> Option<ServiceCommand> {
    if let Node::Sequence(_) = field.node {
        let errors_before = cx.errors.len();
        let items = field.string_list(cx, "a list of arguments")?;
        if cx.errors.len() > errors_before {
            return None;
        }
        if items.is_empty() {
            cx.error(field.pos, &field.path, "at least one argument is required");
            return None;
        }
        return Some(ServiceCommand::Args(
            items.into_iter().map(|(_, text)| text).collect(),
        ));
    }
    field.non_empty_string(cx).map(ServiceCommand::Shell)
}

/// `wait: {command: "...", port: 5432, timeout: 30s}`.
fn read_wait(cx: &mut Cx, field: &Field<'_>) -> Option<ServiceWait> {
    let map = field.mapping(
        cx,
        "a mapping like `{port: 5432, timeout: 30s}` or `{command: pg_isready}`",
    )?;
    let fields = Fields::read(cx, map, &field.path, &WAIT_FIELDS);
    let command = match fields.get("command") {
        Some(f) => f.non_empty_string(cx).map(Some),
        None => Some(None),
    };
    let port = match fields.get("port") {
        Some(f) => read_port(cx, f).map(Some),
        None => Some(None),
    };
    let timeout = match fields.get("timeout") {
        Some(f) => f.duration(cx).and_then(|timeout| {
            if timeout > MAX_WAIT_TIMEOUT {
                cx.error(
                    f.pos,
                    &f.path,
                    format!(
                        "`{}` is longer than {}, the longest wait",
                        humantime::format_duration(timeout),
                        humantime::format_duration(MAX_WAIT_TIMEOUT)
                    ),
                );
                return None;
            }
            Some(timeout)
        }),
        None => Some(DEFAULT_WAIT_TIMEOUT),
    };
    let (command, port, timeout) = (command?, port?, timeout?);
    if command.is_none() && port.is_none() {
        cx.error_hint(
            fields.pos,
            &field.path,
            "names nothing to wait for",
            Some("give `command` (a health check run in the service) and/or `port`".to_string()),
        );
        return None;
    }
    Some(ServiceWait {
        command,
        port,
        timeout,
    })
}

fn read_port(cx: &mut Cx, field: &Field<'_>) -> Option<u16> {
    let text = field.string(cx)?;
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Some(port),
        _ => {
            cx.error(
                field.pos,
                &field.path,
                format!("`{text}` is not a TCP port (1 to 65535)"),
            );
            None
        }
    }
}

/// The build's limits divided between its container and its services: a service that
/// names a value in its `resources` gets it (at most the build's), and the build container
/// and the services that name none share what is left equally. Every limit is split this
/// way (memory, CPUs, processes), so a build with services never uses more than the build's
/// limits in all. Returns the build container's limits and each service's, in order; an
/// error when the services leave the build container less than a container needs.
pub fn share_limits(build: Limits, services: &[Service]) -> Result<(Limits, Vec<Limits>), String> {
    if services.is_empty() {
        return Ok((build, Vec::new()));
    }
    let split = |total: u64, asked: &dyn Fn(&Service) -> Option<u64>| -> (u64, Vec<u64>) {
        let explicit: u64 = services
            .iter()
            .filter_map(|s| asked(s).map(|v| v.min(total)))
            .fold(0u64, u64::saturating_add);
        let sharing = 1 + services.iter().filter(|s| asked(s).is_none()).count() as u64;
        let share = total.saturating_sub(explicit) / sharing;
        let each = services
            .iter()
            .map(|s| asked(s).map_or(share, |v| v.min(total)))
            .collect();
        (share, each)
    };
    let (memory, memories) = split(build.memory, &|s| s.resources.memory);
    let (nano_cpus, cpus) = split(build.nano_cpus, &|s| s.resources.nano_cpus);
    let (pids, pid_counts) = split(build.pids, &|s| s.resources.pids);
    let mut short = Vec::new();
    if memory < MIN_MEMORY_BYTES {
        short.push(format!(
            "memory: {} of {} left (at least 6m)",
            format_memory(memory),
            format_memory(build.memory)
        ));
    }
    if nano_cpus < MIN_NANO_CPUS {
        short.push(format!(
            "cpus: {} of {} left (at least 0.01)",
            format_cpus(nano_cpus),
            format_cpus(build.nano_cpus)
        ));
    }
    if pids < MIN_PIDS {
        short.push(format!(
            "pids: {pids} of {} left (at least {MIN_PIDS})",
            build.pids
        ));
    }
    if !short.is_empty() {
        return Err(format!(
            "the services' resources leave the build container too little ({}); lower the \
             services' `resources` (they come out of the build's limits)",
            short.join(", ")
        ));
    }
    let each = (0..services.len())
        .map(|i| Limits {
            memory: memories[i].max(MIN_MEMORY_BYTES),
            nano_cpus: cpus[i].max(MIN_NANO_CPUS),
            pids: pid_counts[i].max(MIN_PIDS),
        })
        .collect();
    Ok((
        Limits {
            memory,
            nano_cpus,
            pids,
        },
        each,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{PipelineErrors, parse};
    use super::*;

    fn services(text: &str) -> Vec<Service> {
        parse(text).unwrap_or_else(|e| panic!("{e}")).services
    }

    fn errors(text: &str) -> PipelineErrors {
        match parse(text) {
            Ok(p) => panic!("expected errors, parsed {p:#?}"),
            Err(e) => e,
        }
    }

    const STAGES: &str = "stages:\n  - name: test\n    script: [true]\n";

    #[test]
    fn services_parse_with_their_defaults() {
        let text = format!(
            "image: ocelot/busybox\nservices:\n  - name: db\n    image: postgres:16\n    env: [\"POSTGRES_PASSWORD=x=y\"]\n    wait: {{ command: pg_isready, port: 5432, timeout: 30s }}\n    resources: {{ memory: 256m }}\n  - name: web-1\n    image: ocelot/busybox\n    command: httpd -f -p 8080\n  - name: cache\n    image: redis\n    command: [redis-server, --port, \"6380\"]\n    wait: {{ port: 6380 }}\n{STAGES}"
        );
        let services = services(&text);
        assert_eq!(services.len(), 3);
        let db = &services[0];
        assert_eq!((db.name.as_str(), db.image.as_str()), ("db", "postgres:16"));
        assert_eq!(db.env[0].value, "x=y");
        assert_eq!(
            db.wait,
            Some(ServiceWait {
                command: Some("pg_isready".into()),
                port: Some(5432),
                timeout: Duration::from_secs(30),
            })
        );
        assert_eq!(db.resources.memory, Some(256 << 20));
        assert_eq!(
            services[1].command,
            Some(ServiceCommand::Shell("httpd -f -p 8080".into()))
        );
        assert_eq!(services[1].wait, None);
        assert_eq!(services[1].wait_timeout(), DEFAULT_WAIT_TIMEOUT);
        assert_eq!(
            services[2].command,
            Some(ServiceCommand::Args(vec![
                "redis-server".into(),
                "--port".into(),
                "6380".into()
            ]))
        );
        assert_eq!(services[2].wait_timeout(), DEFAULT_WAIT_TIMEOUT);
        assert!(services_of_a_file_without_them().is_empty());
    }

    fn services_of_a_file_without_them() -> Vec<Service> {
        services(&format!("image: ocelot/busybox\n{STAGES}"))
    }

    #[test]
    fn bad_services_are_reported_with_line_and_field() {
        let text = format!(
            "image: ocelot/busybox\nservices:\n  - name: Web_1\n    image: a\n  - name: build\n    image: a\n  - name: db\n    image: a\n    wiat: {{ port: 1 }}\n  - name: db\n    image: a\n    wait: {{ timeout: 5s }}\n  - name: q\n    wait: {{ port: 70000, comand: x }}\n{STAGES}"
        );
        let shown: Vec<String> = errors(&text).0.iter().map(|e| e.to_string()).collect();
        let expected = [
            "line 3, column 11: services[0].name: `Web_1` is not a host name",
            "line 5, column 11: services[1].name: `build` is reserved",
            "line 9, column 5: services[2].wiat: unknown field (did you mean `wait`?)",
            "line 10, column 11: services[3].name: duplicate service name `db` (first used at line 7)",
            "line 12, column 13: services[3].wait: names nothing to wait for",
            "line 13, column 5: services[4].image: missing; a Docker image is required",
            "line 14, column 19: services[4].wait.port: `70000` is not a TCP port",
            "line 14, column 26: services[4].wait.comand: unknown field (did you mean `command`?)",
        ];
        assert_eq!(shown.len(), expected.len(), "{shown:#?}");
        for (shown, expected) in shown.iter().zip(expected) {
            assert!(shown.starts_with(expected), "{shown}\nexpected {expected}");
        }
        assert!(shown[0].contains("try `web-1`"), "{}", shown[0]);
    }

    #[test]
    fn at_most_eight_services() {
        let mut text = String::from("image: a\nservices:\n");
        for i in 0..9 {
            text.push_str(&format!("  - {{ name: s{i}, image: a }}\n"));
        }
        text.push_str(STAGES);
        let errors = errors(&text);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].line, 3);
        assert!(
            errors.0[0]
                .message
                .contains("9 services; a build starts at most 8")
        );
    }

    #[test]
    fn names_are_dns_labels() {
        for good in ["db", "web-1", "a", &"x".repeat(63)] {
            assert_eq!(check_service_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-db",
            "db-",
            "DB",
            "d_b",
            "d.b",
            "build",
            "localhost",
            &"x".repeat(64),
        ] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
    }

    fn service(memory: Option<u64>, pids: Option<u64>) -> Service {
        Service {
            name: "s".into(),
            image: "i".into(),
            env: Vec::new(),
            command: None,
            wait: None,
            resources: Resources {
                memory,
                nano_cpus: None,
                pids,
            },
        }
    }

    #[test]
    fn services_share_the_builds_limits() {
        let build = Limits {
            memory: 2 << 30,
            nano_cpus: 2_000_000_000,
            pids: 512,
        };
        assert_eq!(share_limits(build, &[]), Ok((build, Vec::new())));
        // one service without resources: half of everything each
        let (own, each) = share_limits(build, &[service(None, None)]).unwrap();
        let half = Limits {
            memory: 1 << 30,
            nano_cpus: 1_000_000_000,
            pids: 256,
        };
        assert_eq!((own, each), (half, vec![half]));
        // a service naming its memory takes it; the rest is shared by the others
        let (own, each) = share_limits(
            build,
            &[service(Some(512 << 20), None), service(None, Some(64))],
        )
        .unwrap();
        assert_eq!(own.memory, 768 << 20);
        assert_eq!(each[0].memory, 512 << 20);
        assert_eq!(each[1].memory, 768 << 20);
        assert_eq!((own.pids, each[0].pids, each[1].pids), (224, 224, 64));
        assert_eq!(own.nano_cpus, 2_000_000_000 / 3);
        let total_memory: u64 = own.memory + each.iter().map(|l| l.memory).sum::<u64>();
        assert!(total_memory <= build.memory);
        // services that take everything leave the build nothing: refused
        let error = share_limits(build, &[service(Some(4 << 30), None)]).unwrap_err();
        assert!(error.contains("memory: 0b of 2g left"), "{error}");
    }
}
