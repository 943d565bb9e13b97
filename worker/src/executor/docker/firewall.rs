//! Whether builds may reach the worker host's own addresses (its Postgres, NATS, SSH, ...).
//! With `deny`, the worker makes sure, when it starts, that the Docker host's firewall drops
//! what build bridges send to the host itself: `iptables -I INPUT -i ocb+ -j DROP` and the
//! same with `ip6tables` (idempotent: checked with `-C` first). Traffic through the host to
//! other machines (package registries) is forwarded, not delivered to the host, and still
//! flows. The rule matches by interface name, so build bridges of `allow` workers get another
//! prefix (`oca`), which no rule matches.

use std::process::Command;

/// Bridge-name prefix of builds that must not reach the host (`deny`, `external`).
pub(crate) const DENIED_BRIDGE_PREFIX: &str = "ocb";
/// Bridge-name prefix of builds of `allow` workers.
pub(crate) const ALLOWED_BRIDGE_PREFIX: &str = "oca";

/// Whether builds may reach the Docker host's own addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HostAccess {
    /// No: the worker installs the firewall rule (needs root or CAP_NET_ADMIN in the Docker
    /// host's network namespace) and refuses to start if it cannot.
    #[default]
    Deny,
    /// Yes: builds reach every address the host listens on.
    Allow,
    /// No, but the operator installs the rule on the Docker host (a worker that runs in a
    /// container with the host's Docker socket cannot): see [`rule_commands`].
    External,
}

impl HostAccess {
    /// The prefix of the Linux bridge names of this worker's build networks.
    pub(crate) fn bridge_prefix(self) -> &'static str {
        match self {
            HostAccess::Deny | HostAccess::External => DENIED_BRIDGE_PREFIX,
            HostAccess::Allow => ALLOWED_BRIDGE_PREFIX,
        }
    }
}

/// The rule's arguments after `-C`/`-I` and the chain.
fn rule() -> [String; 4] {
    [
        "-i".to_string(),
        format!("{DENIED_BRIDGE_PREFIX}+"),
        "-j".to_string(),
        "DROP".to_string(),
    ]
}

/// The commands an operator runs on the Docker host for `external` (and what `deny` does).
pub fn rule_commands() -> [String; 2] {
    let rule = rule().join(" ");
    [
        format!("iptables -I INPUT {rule}"),
        format!("ip6tables -I INPUT {rule}"),
    ]
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make sure builds cannot reach this host: `{command}` failed: {reason}. Run the \
     worker as root (or with CAP_NET_ADMIN) on the Docker host; or install the rule yourself \
     (`{}` and `{}`) and start the worker with `--build-host-access external`; or let builds \
     reach this host's addresses with `--build-host-access allow`",
    rule_commands()[0],
    rule_commands()[1]
)]
pub(crate) struct FirewallError {
    command: String,
    reason: String,
}

/// Runs `program` with `args` (no shell): `Ok(true)` when it exits 0, `Ok(false)` for exit 1
/// (`-C`: no such rule), an error otherwise.
fn run(program: &str, args: &[String]) -> Result<bool, FirewallError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| FirewallError {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) if args.first().is_some_and(|a| a == "-C") => Ok(false),
        _ => Err(FirewallError {
            command,
            reason: format!(
                "{} ({})",
                String::from_utf8_lossy(&output.stderr).trim(),
                output.status
            ),
        }),
    }
}

/// Installs the rule with `program` (`iptables` or `ip6tables`) unless it is there.
fn ensure_with(program: &str) -> Result<(), FirewallError> {
    let wait = ["-w".to_string(), "10".to_string()];
    let mut check = vec!["-C".to_string(), "INPUT".to_string()];
    check.extend(rule());
    check.extend(wait.clone());
    if run(program, &check)? {
        return Ok(());
    }
    let mut insert = vec!["-I".to_string(), "INPUT".to_string(), "1".to_string()];
    insert.extend(rule());
    insert.extend(wait);
    run(program, &insert)?;
    tracing::info!(
        program,
        "installed the firewall rule that keeps builds off this host"
    );
    Ok(())
}

/// Whether this host has IPv6 (else there is nothing for `ip6tables` to guard).
fn has_ipv6() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|value| value.trim() == "0")
}

/// Makes sure the Docker host drops what build bridges send to it (`deny`); nothing for
/// `allow` and `external`. Blocking: run it off the async threads.
pub(crate) fn ensure(access: HostAccess) -> Result<(), FirewallError> {
    // one at a time in this process (several test workers start at once)
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    match access {
        HostAccess::Allow => {
            tracing::warn!(
                "builds may reach this host's own addresses (--build-host-access allow)"
            );
            Ok(())
        }
        HostAccess::External => {
            tracing::info!(
                rules = ?rule_commands(),
                "builds must not reach this host: the operator installs these rules on the Docker host (--build-host-access external)"
            );
            Ok(())
        }
        HostAccess::Deny => {
            let _guard = ONE_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ensure_with("iptables")?;
            if has_ipv6() {
                ensure_with("ip6tables")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_builds_get_bridges_no_rule_matches() {
        assert_eq!(HostAccess::Deny.bridge_prefix(), "ocb");
        assert_eq!(HostAccess::External.bridge_prefix(), "ocb");
        assert_eq!(HostAccess::Allow.bridge_prefix(), "oca");
        assert_eq!(
            rule_commands(),
            [
                "iptables -I INPUT -i ocb+ -j DROP",
                "ip6tables -I INPUT -i ocb+ -j DROP"
            ]
        );
    }
}
