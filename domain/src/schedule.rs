//! When polls are due: an interval (`30s`, `5m`) or a standard 5-field cron expression
//! (croner), the spread of first polls and jitter (so that many entries due in the same
//! minute do not poll at the same instant), and back-off after failures. Pure functions.

use crate::model::PollSchedule;
use std::time::{Duration, SystemTime};

/// The shortest interval a poll may have.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a failing poll waits before it tries again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The most jitter added to a poll's due time.
pub const MAX_JITTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("give exactly one of --every (e.g. 30s) and --cron (e.g. \"*/5 * * * *\")")]
    NeitherOrBoth,
    #[error("invalid interval: {0}")]
    Interval(String),
    #[error(
        "invalid cron expression `{expression}`: {message} (5 fields: minute hour day-of-month month day-of-week)"
    )]
    Cron { expression: String, message: String },
    #[error("invalid branch pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
}

/// Reads `every` or `cron` (exactly one non-empty).
pub fn parse_schedule(every: &str, cron: &str) -> Result<PollSchedule, ScheduleError> {
    match (every.trim(), cron.trim()) {
        ("", "") => Err(ScheduleError::NeitherOrBoth),
        (every, "") => {
            let interval =
                crate::pipeline::parse_duration(every).map_err(ScheduleError::Interval)?;
            if interval < MIN_INTERVAL {
                return Err(ScheduleError::Interval(format!(
                    "`{every}` is under {MIN_INTERVAL:?}"
                )));
            }
            Ok(PollSchedule::Every(interval))
        }
        ("", cron) => {
            if cron.split_whitespace().count() != 5 {
                return Err(ScheduleError::Cron {
                    expression: cron.to_string(),
                    message: format!("{} fields", cron.split_whitespace().count()),
                });
            }
            parse_cron(cron)?;
            Ok(PollSchedule::Cron(cron.to_string()))
        }
        _ => Err(ScheduleError::NeitherOrBoth),
    }
}

fn parse_cron(expression: &str) -> Result<croner::Cron, ScheduleError> {
    expression
        .parse::<croner::Cron>()
        .map_err(|e| ScheduleError::Cron {
            expression: expression.to_string(),
            message: e.to_string(),
        })
}

/// The next time the schedule fires strictly after `after`.
pub fn next_after(schedule: &PollSchedule, after: SystemTime) -> Result<SystemTime, ScheduleError> {
    match schedule {
        PollSchedule::Every(interval) => Ok(after + *interval),
        PollSchedule::Cron(expression) => {
            let cron = parse_cron(expression)?;
            let start = chrono::DateTime::<chrono::Utc>::from(after);
            let next =
                cron.find_next_occurrence(&start, false)
                    .map_err(|e| ScheduleError::Cron {
                        expression: expression.clone(),
                        message: e.to_string(),
                    })?;
            Ok(SystemTime::from(next))
        }
    }
}

/// How long one period of the schedule is around `now`.
pub fn period(schedule: &PollSchedule, now: SystemTime) -> Duration {
    match schedule {
        PollSchedule::Every(interval) => *interval,
        PollSchedule::Cron(_) => {
            let first = next_after(schedule, now).unwrap_or(now);
            let second = next_after(schedule, first).unwrap_or(first);
            second
                .duration_since(first)
                .unwrap_or(Duration::from_secs(60))
        }
    }
}

/// A random delay in `0..limit`.
fn random_up_to(limit: Duration) -> Duration {
    let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(fastrand::u64(0..millis))
}

/// When a new poll is first due: anywhere in its first period, so that entries added
/// together are spread over the period.
pub fn first_due(schedule: &PollSchedule, now: SystemTime) -> SystemTime {
    match schedule {
        PollSchedule::Every(interval) => now + random_up_to(*interval),
        PollSchedule::Cron(_) => next_after(schedule, now).unwrap_or(now) + jitter(schedule, now),
    }
}

/// Jitter for a first due time: up to a tenth of the period, at most [`MAX_JITTER`].
pub fn jitter(schedule: &PollSchedule, now: SystemTime) -> Duration {
    random_up_to((period(schedule, now) / 10).min(MAX_JITTER))
}

/// When a poll that was due at `due` and ran at `now` is due next: it keeps its phase (so
/// a spread stays spread), never in the past. The jitter is centred on zero (within ± a
/// twentieth of the period, at most ±[`MAX_JITTER`]/2), so the phase does not drift.
pub fn next_due(schedule: &PollSchedule, due: SystemTime, now: SystemTime) -> SystemTime {
    let base = match schedule {
        PollSchedule::Every(interval) => {
            let mut next = due + *interval;
            if next <= now {
                next = now + *interval;
            }
            next
        }
        PollSchedule::Cron(_) => next_after(schedule, now).unwrap_or(now + Duration::from_secs(60)),
    };
    let spread = (period(schedule, now) / 10).min(MAX_JITTER);
    let offset = random_up_to(spread);
    let half = spread / 2;
    let jittered = if offset >= half {
        base + (offset - half)
    } else {
        base - (half - offset)
    };
    jittered.max(now)
}

/// How long a poll waits after `failures` failures in a row: the period doubled per
/// failure, at least 5 s, at most [`MAX_BACKOFF`].
pub fn backoff(schedule: &PollSchedule, failures: i32, now: SystemTime) -> Duration {
    let base = period(schedule, now).max(Duration::from_secs(5));
    let exponent = u32::try_from(failures.clamp(0, 16)).unwrap_or(0);
    base.saturating_mul(1u32 << exponent).min(MAX_BACKOFF)
}

/// Branch patterns (globs such as `main`, `release/*`), checked once.
#[derive(Debug, Clone)]
pub struct BranchPatterns {
    set: globset::GlobSet,
}

impl BranchPatterns {
    pub fn new(patterns: &[String]) -> Result<Self, ScheduleError> {
        let mut builder = globset::GlobSetBuilder::new();
        for pattern in patterns {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| ScheduleError::Pattern {
                    pattern: pattern.clone(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| ScheduleError::Pattern {
            pattern: patterns.join(","),
            message: e.to_string(),
        })?;
        Ok(BranchPatterns { set })
    }

    pub fn matches(&self, branch: &str) -> bool {
        self.set.is_match(branch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn schedules_parse_with_clear_errors() {
        assert_eq!(
            parse_schedule("30s", "").unwrap(),
            PollSchedule::Every(Duration::from_secs(30))
        );
        assert_eq!(
            parse_schedule("", "*/5 * * * *").unwrap(),
            PollSchedule::Cron("*/5 * * * *".into())
        );
        assert_eq!(parse_schedule("", ""), Err(ScheduleError::NeitherOrBoth));
        assert_eq!(
            parse_schedule("30s", "* * * * *"),
            Err(ScheduleError::NeitherOrBoth)
        );
        assert!(matches!(
            parse_schedule("soon", ""),
            Err(ScheduleError::Interval(_))
        ));
        assert!(matches!(
            parse_schedule("100ms", ""),
            Err(ScheduleError::Interval(_))
        ));
        assert!(matches!(
            parse_schedule("", "* * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            parse_schedule("", "61 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
    }

    #[test]
    fn cron_fires_on_its_minutes() {
        let schedule = PollSchedule::Cron("*/5 * * * *".into());
        // 1970-01-01 00:01:00 → 00:05:00
        assert_eq!(next_after(&schedule, at(60)).unwrap(), at(300));
        assert_eq!(next_after(&schedule, at(300)).unwrap(), at(600));
        assert_eq!(period(&schedule, at(60)), Duration::from_secs(300));
    }

    #[test]
    fn polls_keep_their_phase_and_never_fall_behind() {
        let every = PollSchedule::Every(Duration::from_secs(60));
        let next = next_due(&every, at(1000), at(1001));
        let half = MAX_JITTER / 2;
        assert!(
            next >= at(1060) - half && next <= at(1060) + half,
            "{next:?}"
        );
        // centred jitter: on average a poll is due exactly one period later (no drift in
        // one direction); 10 000 samples put the mean well within ±0.2 s
        let total_ms: i128 = (0..10_000)
            .map(|_| {
                let next = next_due(&every, at(1000), at(1001));
                let ms = |t: SystemTime| {
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i128)
                        .unwrap_or(0)
                };
                ms(next) - ms(at(1060))
            })
            .sum();
        let mean_ms = total_ms / 10_000;
        assert!(mean_ms.abs() < 200, "mean offset {mean_ms} ms");
        // a poll that ran late is due one period from now, not in the past
        let late = next_due(&every, at(1000), at(1200));
        assert!(late >= at(1260) - MAX_JITTER / 2, "{late:?}");
    }

    #[test]
    fn first_polls_spread_over_the_period() {
        let every = PollSchedule::Every(Duration::from_secs(60));
        let dues: Vec<SystemTime> = (0..1000).map(|_| first_due(&every, at(0))).collect();
        assert!(dues.iter().all(|d| *d >= at(0) && *d < at(60)));
        let first_half = dues.iter().filter(|d| **d < at(30)).count();
        assert!(
            (350..650).contains(&first_half),
            "{first_half} of 1000 in the first half"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let every = PollSchedule::Every(Duration::from_secs(10));
        assert_eq!(backoff(&every, 0, at(0)), Duration::from_secs(10));
        assert_eq!(backoff(&every, 2, at(0)), Duration::from_secs(40));
        assert_eq!(backoff(&every, 30, at(0)), MAX_BACKOFF);
    }

    #[test]
    fn branch_globs_match_new_branches() {
        let patterns = BranchPatterns::new(&["main".into(), "release/*".into()]).unwrap();
        assert!(patterns.matches("main"));
        assert!(patterns.matches("release/1.0"));
        assert!(!patterns.matches("mainline"));
        assert!(!patterns.matches("feature/x"));
        assert!(BranchPatterns::new(&["[".into()]).is_err());
    }
}
