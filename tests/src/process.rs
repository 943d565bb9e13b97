//! The processes the harness starts, and proof that none outlives its test.
//!
//! A [`GroupChild`] is started as the leader of a process group of its own. Dropping it
//! kills (SIGKILL) the whole group and every descendant that left the group (a daemon's
//! per-connection children that called `setsid`, as `sshd`'s do), reaps the leader and
//! waits until none of them runs any more. A process still running after that wait fails
//! the test: the drop panics (or, when the thread is already panicking, says so on stderr).
//!
//! Servers that are not the harness's child (a Postgres started by `pg_ctl`) are ended
//! their own way, then checked with [`ensure_gone`].

use anyhow::Context;
use rustix::process::{Pid, Signal};
use std::time::{Duration, Instant};

/// How long killed processes get to disappear.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// `R`, `S`, `D`, `Z` (a zombie), ...
    pub state: char,
    /// Clock ticks after boot: with the pid, tells a process from a later one with its pid.
    pub start_time: u64,
}

impl ProcessInfo {
    /// Runs (or sleeps): exists and is no zombie. A zombie runs nothing and holds no socket;
    /// it is only waiting for its parent (or init) to reap it.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Whether this very process (same pid, same start time) is still alive.
    pub fn still_alive(&self) -> bool {
        process_info(self.pid)
            .is_some_and(|now| now.start_time == self.start_time && now.is_alive())
    }
}

/// Parses `/proc/PID/stat`: `PID (COMM) STATE PPID PGRP ...`, COMM may hold anything.
fn parse_stat(stat: &str) -> Option<ProcessInfo> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    // rest starts at field 3 (the state); field N is rest[N - 3]
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcessInfo {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The process `pid`, if there is one (zombies included).
pub fn process_info(pid: i32) -> Option<ProcessInfo> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process `/proc` shows (zombies included).
pub fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process_info)
        .collect()
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<ProcessInfo> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid && p.is_alive())
        .collect()
}

/// The live descendants of `pid` (its children, theirs, ...), in whatever group.
pub fn descendants(pid: i32) -> Vec<ProcessInfo> {
    let all = all_processes();
    let mut found: Vec<ProcessInfo> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for process in all.iter().filter(|p| p.ppid == parent && p.pid != pid) {
            if !found.iter().any(|f| f.pid == process.pid) {
                found.push(*process);
                parents.push(process.pid);
            }
        }
    }
    found.retain(ProcessInfo::is_alive);
    found
}

/// Whether process group `pgid` has no member left, zombies included (`kill(-pgid, 0)`
/// answers ESRCH).
pub fn group_is_gone(pgid: i32) -> bool {
    Pid::from_raw(pgid).is_some_and(|pgid| {
        rustix::process::test_kill_process_group(pgid) == Err(rustix::io::Errno::SRCH)
    })
}

/// SIGKILLs group `pgid` (if given) and the processes `also`, again and again, calling
/// `reap` in between, until none of them is alive or [`GONE_WITHIN`] has passed; the
/// processes still alive then.
fn kill_and_wait(
    pgid: Option<i32>,
    also: &[ProcessInfo],
    mut reap: impl FnMut(),
) -> Vec<ProcessInfo> {
    // never this test process's own group, whatever happens
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get();
    let pgid = pgid.filter(|&pgid| pgid != own_group && pgid > 1);
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let mut left: Vec<ProcessInfo> = pgid.map(group_members).unwrap_or_default();
        for process in also {
            if process.still_alive() && !left.iter().any(|l| l.pid == process.pid) {
                left.push(*process);
            }
        }
        if left.is_empty() {
            reap();
            return left;
        }
        if Instant::now() >= deadline {
            return left;
        }
        if let Some(group) = pgid.and_then(Pid::from_raw)
            && left.iter().any(|p| p.pgrp == group.as_raw_nonzero().get())
        {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
        for process in &left {
            if let Some(pid) = Pid::from_raw(process.pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        reap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails the test over `error` from a drop: a panic, or a line on stderr when the thread
/// is already panicking (a second panic would abort the whole test binary).
pub fn fail_in_drop(error: &anyhow::Error) {
    if std::thread::panicking() {
        eprintln!("{error:#}");
    } else {
        panic!("{error:#}");
    }
}

/// Makes sure the process `pid` (not a child of this one, e.g. a postmaster), its process
/// group when it leads one, and its descendants are gone: whatever is left is SIGKILLed,
/// and an error names what still runs after [`GONE_WITHIN`].
pub fn ensure_gone(what: &str, pid: i32) -> anyhow::Result<()> {
    let Some(leader) = process_info(pid).filter(ProcessInfo::is_alive) else {
        return Ok(());
    };
    let mut also = descendants(pid);
    also.push(leader);
    let group = (leader.pgrp == pid).then_some(pid);
    let left = kill_and_wait(group, &also, || {});
    anyhow::ensure!(
        left.is_empty(),
        "{what}: processes still running after SIGKILL: {left:?}"
    );
    Ok(())
}

/// A child process leading a process group of its own; see the module's documentation.
#[derive(Debug)]
pub struct GroupChild {
    name: String,
    child: tokio::process::Child,
    leader: ProcessInfo,
}

impl GroupChild {
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(name: &str, command: &mut tokio::process::Command) -> anyhow::Result<GroupChild> {
        command.process_group(0).kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .with_context(|| format!("{name} has no pid"))?;
        // a child that died at once has no stat any more: its start time is then moot
        let leader = process_info(pid).unwrap_or(ProcessInfo {
            pid,
            ppid: 0,
            pgrp: pid,
            state: 'Z',
            start_time: 0,
        });
        Ok(GroupChild {
            name: name.to_string(),
            child,
            leader,
        })
    }

    /// The leader's pid, which is also the process group's id.
    pub fn pid(&self) -> i32 {
        self.leader.pid
    }

    pub fn child_mut(&mut self) -> &mut tokio::process::Child {
        &mut self.child
    }

    /// Sends `signal` to the leader only (its group keeps running).
    pub fn signal_leader(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = Pid::from_raw(self.leader.pid).context("no pid")?;
        rustix::process::kill_process(pid, signal)
            .with_context(|| format!("signalling {}", self.name))?;
        Ok(())
    }

    /// Kills the group and the leader's descendants, reaps the leader and waits until none
    /// of them is alive; an error names the processes still running.
    pub fn kill_all(&mut self) -> anyhow::Result<()> {
        let also = if self.leader.still_alive() {
            descendants(self.leader.pid)
        } else {
            Vec::new()
        };
        let child = &mut self.child;
        let left = kill_and_wait(Some(self.leader.pid), &also, || {
            let _ = child.start_kill();
            let _ = child.try_wait();
        });
        anyhow::ensure!(
            left.is_empty(),
            "{} (pid {}): processes still running after SIGKILL: {left:?}",
            self.name,
            self.leader.pid
        );
        Ok(())
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Err(error) = self.kill_all() {
            fail_in_drop(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        let info = parse_stat(stat).unwrap();
        assert_eq!(info.pid, 4242);
        assert_eq!(info.state, 'S');
        assert_eq!(info.ppid, 1);
        assert_eq!(info.pgrp, 4242);
        assert_eq!(info.start_time, 987654);
    }
}
