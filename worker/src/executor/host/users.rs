//! The unprivileged users host builds run as: a range of uids reserved for one worker
//! (`--host-build-uids`), one uid (and the gid of the same number) per running build.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// A range of uids, `FIRST-LAST` (both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub first: u32,
    pub last: u32,
}

/// The lowest uid a build may get: below are the system's and its people's accounts.
const LOWEST_BUILD_UID: u32 = 10_000;
/// The most uids a range holds (a worker runs at most that many builds at once).
const MAX_RANGE: u32 = 100_000;

impl UidRange {
    /// Reads `FIRST-LAST`.
    pub fn parse(text: &str) -> Result<UidRange, String> {
        let (first, last) = text.split_once('-').ok_or_else(|| {
            format!("`{text}` is not a uid range FIRST-LAST (e.g. 200000-200999)")
        })?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{part}` in `{text}` is not a uid"))
        };
        let range = UidRange {
            first: number(first)?,
            last: number(last)?,
        };
        if range.first > range.last {
            return Err(format!("uid range `{text}` is empty (FIRST is above LAST)"));
        }
        if range.first < LOWEST_BUILD_UID {
            return Err(format!(
                "uid range `{text}` starts below {LOWEST_BUILD_UID}: build users must not be \
                 system or personal accounts"
            ));
        }
        if range.last >= 65_534 && range.first <= 65_534 {
            return Err(format!("uid range `{text}` holds 65534 (nobody)"));
        }
        if range.last - range.first >= MAX_RANGE || range.last == u32::MAX {
            return Err(format!(
                "uid range `{text}` is too large (at most {MAX_RANGE} uids)"
            ));
        }
        Ok(range)
    }

    /// How many uids it holds.
    pub fn len(&self) -> usize {
        usize::try_from(self.last - self.first).map_or(usize::MAX, |n| n.saturating_add(1))
    }

    /// Whether it holds no uid (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for UidRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The uids of a range no running build holds.
#[derive(Debug)]
pub(crate) struct UidPool {
    range: UidRange,
    free: Mutex<BTreeSet<u32>>,
}

impl UidPool {
    pub(crate) fn new(range: UidRange) -> Arc<UidPool> {
        Arc::new(UidPool {
            range,
            free: Mutex::new((range.first..=range.last).collect()),
        })
    }

    /// A free uid, held until the returned user is dropped; `None` when all are held.
    /// Uids that still run a process (another worker's build, on a range given twice) are
    /// skipped.
    pub(crate) fn take(self: &Arc<Self>) -> Option<BuildUser> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let uid = free
            .iter()
            .copied()
            .find(|uid| !super::confine::runs_processes(*uid))?;
        free.remove(&uid);
        Some(BuildUser {
            uid,
            pool: Arc::clone(self),
        })
    }

    pub(crate) fn range(&self) -> UidRange {
        self.range
    }
}

/// One build's user: its uid (and gid of the same number) goes back to the pool on drop.
#[derive(Debug)]
pub(crate) struct BuildUser {
    uid: u32,
    pool: Arc<UidPool>,
}

impl BuildUser {
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for BuildUser {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.insert(self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_and_checked() {
        assert_eq!(
            UidRange::parse("200000-200999"),
            Ok(UidRange {
                first: 200_000,
                last: 200_999
            })
        );
        assert_eq!(UidRange::parse("200000-200999").unwrap().len(), 1000);
        for bad in [
            "200000",
            "5-10",
            "300-200",
            "60000-70000",
            "a-b",
            "10000-4000000000",
        ] {
            assert!(UidRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_uid_is_held_until_its_user_is_dropped() {
        let pool = UidPool::new(UidRange::parse("3900000-3900001").unwrap());
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(pool.take().is_none());
        let uid = a.uid();
        drop(a);
        assert_eq!(pool.take().map(|u| u.uid()), Some(uid));
    }
}
