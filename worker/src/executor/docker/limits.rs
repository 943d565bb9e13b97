//! The box a build container runs in: memory (no swap on top), CPUs and processes limited,
//! no privilege gained through setuid binaries (`no-new-privileges`), and only the
//! capabilities package managers need. Scripts still run as the image's user, usually root
//! in the container: package managers need it, and with these capabilities, no new
//! privileges and Docker's default seccomp profile, root in the container is not root on
//! the host.

use bollard::models::HostConfig;
use ocelot_core::pipeline::Limits;

/// What installing packages needs: files owned by other users, `chown`, setuid binaries'
/// modes kept, signals to their own processes, switching to a package's user, binding low
/// ports. Not: raw sockets, device nodes, chroot, file capabilities, audit.
pub(crate) const CAPABILITIES: [&str; 8] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
];

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The host configuration of a build container with `limits` on `network`.
pub(crate) fn host_config(limits: Limits, network: &str) -> HostConfig {
    HostConfig {
        memory: Some(signed(limits.memory)),
        // equal to the memory: no swap on top
        memory_swap: Some(signed(limits.memory)),
        nano_cpus: Some(signed(limits.nano_cpus)),
        pids_limit: Some(signed(limits.pids)),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(CAPABILITIES.iter().map(|c| (*c).to_string()).collect()),
        network_mode: Some(network.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_has_limits_no_new_privileges_and_few_capabilities() {
        let config = host_config(
            Limits {
                memory: 512 << 20,
                nano_cpus: 1_500_000_000,
                pids: 128,
            },
            "net",
        );
        assert_eq!(config.memory, Some(512 << 20));
        assert_eq!(config.memory_swap, Some(512 << 20));
        assert_eq!(config.nano_cpus, Some(1_500_000_000));
        assert_eq!(config.pids_limit, Some(128));
        assert_eq!(config.security_opt, Some(vec!["no-new-privileges".into()]));
        assert_eq!(config.cap_drop, Some(vec!["ALL".into()]));
        let added = config.cap_add.unwrap();
        for dangerous in [
            "NET_RAW",
            "MKNOD",
            "SYS_CHROOT",
            "SETFCAP",
            "SETPCAP",
            "AUDIT_WRITE",
        ] {
            assert!(!added.iter().any(|c| c == dangerous), "{dangerous}");
        }
        assert_eq!(config.network_mode.as_deref(), Some("net"));
    }
}
