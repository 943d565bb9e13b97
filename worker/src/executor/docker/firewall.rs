//! Whether builds may reach the worker host's own addresses (its Postgres, NATS, SSH, ...),
//! and builds kept apart. With `deny`, the worker makes sure, when it starts, that the Docker
//! host's firewall drops what build bridges send to the host itself (`iptables -I INPUT -i
//! ocb+ -j DROP`) and what one build bridge sends to another (in `mangle FORWARD`: Docker's
//! own isolation rules are unhooked for a moment whenever it creates a network), with
//! `iptables` and `ip6tables` (idempotent: checked with `-C` first). Traffic through the host
//! to other machines (package registries) is forwarded between a build bridge and the host's
//! uplink and still flows. The rules match by interface name, so build bridges of `allow`
//! workers get another prefix (`oca`), which the `INPUT` rule does not match; an `allow`
//! worker installs the isolation rules only, if it can.

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

/// One firewall rule: its table, chain and match and target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    table: &'static str,
    chain: &'static str,
    spec: Vec<String>,
}

impl Rule {
    /// The arguments of `program VERB ...` for this rule (`-C` checks, `-I` inserts first).
    fn args(&self, verb: &str) -> Vec<String> {
        let mut args = vec![verb.to_string(), self.chain.to_string()];
        if verb == "-I" {
            args.push("1".to_string());
        }
        if self.table != "filter" {
            args.extend(["-t".to_string(), self.table.to_string()]);
        }
        args.extend(self.spec.iter().cloned());
        args
    }

    /// How an operator types it: `-I CHAIN [-t TABLE] SPEC` (no position).
    fn command(&self, program: &str) -> String {
        let mut words = self.args("-I");
        words.remove(2);
        format!("{program} {}", words.join(" "))
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The rules `deny` installs (and `external` leaves to the operator):
/// * nothing a build bridge sends to the host itself is delivered (`INPUT`);
/// * nothing is routed from one build bridge to another (`mangle FORWARD`, which Docker never
///   rewrites: its own isolation chains in `filter FORWARD` are briefly unhooked whenever
///   Docker creates a network, and another build's network is created at any moment). Traffic
///   within one bridge (`--physdev-is-bridged`) is not routed and not matched.
fn rules() -> Vec<Rule> {
    let mut rules = vec![Rule {
        table: "filter",
        chain: "INPUT",
        spec: words(&format!("-i {DENIED_BRIDGE_PREFIX}+ -j DROP")),
    }];
    rules.extend(isolation_rules());
    rules
}

/// What `deny` adds for IPv4 only: the link-local range, where clouds serve instance metadata
/// (169.254.169.254 hands out the VM's credentials), is never routed to from a build.
fn ipv4_rules() -> Vec<Rule> {
    vec![Rule {
        table: "mangle",
        chain: "FORWARD",
        spec: words(&format!(
            "-i {DENIED_BRIDGE_PREFIX}+ -d {LINK_LOCAL_V4} -j DROP"
        )),
    }]
}

/// IPv4 link-local addresses (cloud instance metadata).
const LINK_LOCAL_V4: &str = "169.254.0.0/16";

/// The rules `deny` installs with `program`.
fn rules_for(program: &str) -> Vec<Rule> {
    let mut rules = rules();
    if program == "iptables" {
        rules.extend(ipv4_rules());
    }
    rules
}

/// The rules that keep build bridges apart (every mode wants them).
fn isolation_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for from in [DENIED_BRIDGE_PREFIX, ALLOWED_BRIDGE_PREFIX] {
        for to in [DENIED_BRIDGE_PREFIX, ALLOWED_BRIDGE_PREFIX] {
            rules.push(Rule {
                table: "mangle",
                chain: "FORWARD",
                spec: words(&format!(
                    "-i {from}+ -o {to}+ -m physdev ! --physdev-is-bridged -j DROP"
                )),
            });
        }
    }
    rules
}

/// The commands an operator runs on the Docker host for `external` (and what `deny` does).
pub fn rule_commands() -> Vec<String> {
    ["iptables", "ip6tables"]
        .iter()
        .flat_map(|program| {
            rules_for(program)
                .into_iter()
                .map(move |rule| rule.command(program))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make sure builds cannot reach this host nor each other: `{command}` failed: \
     {reason}. Run the worker as root (or with CAP_NET_ADMIN) on the Docker host; or install \
     the rules yourself ({}) and start the worker with `--build-host-access external`",
    rule_commands().iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
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

/// Installs `rules` with `program` (`iptables` or `ip6tables`) unless they are there.
fn ensure_with(program: &str, rules: &[Rule]) -> Result<(), FirewallError> {
    let wait = ["-w".to_string(), "10".to_string()];
    for rule in rules {
        let mut check = rule.args("-C");
        check.extend(wait.clone());
        if run(program, &check)? {
            continue;
        }
        let mut insert = rule.args("-I");
        insert.extend(wait.clone());
        run(program, &insert)?;
        tracing::info!(program, rule = %rule.command(program), "installed a firewall rule that keeps builds off this host and apart");
    }
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
            let _guard = ONE_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(error) = ensure_with("iptables", &isolation_rules()) {
                tracing::warn!(%error, "builds are kept apart by Docker's own rules only");
            }
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
            ensure_with("iptables", &rules_for("iptables"))?;
            if has_ipv6() {
                ensure_with("ip6tables", &rules_for("ip6tables"))?;
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
        let commands = rule_commands();
        assert_eq!(commands.len(), 11);
        assert_eq!(commands[0], "iptables -I INPUT -i ocb+ -j DROP");
        assert_eq!(
            commands[1],
            "iptables -I FORWARD -t mangle -i ocb+ -o ocb+ -m physdev ! --physdev-is-bridged -j DROP"
        );
        assert!(commands.contains(
            &"iptables -I FORWARD -t mangle -i ocb+ -o oca+ -m physdev ! --physdev-is-bridged -j DROP"
                .to_string()
        ));
        assert_eq!(
            commands[5],
            "iptables -I FORWARD -t mangle -i ocb+ -d 169.254.0.0/16 -j DROP"
        );
        assert_eq!(commands[6], "ip6tables -I INPUT -i ocb+ -j DROP");
        assert!(!commands[6..].iter().any(|c| c.contains("169.254")));
        assert_eq!(
            rules()[0].args("-I"),
            ["-I", "INPUT", "1", "-i", "ocb+", "-j", "DROP"]
        );
    }
}
