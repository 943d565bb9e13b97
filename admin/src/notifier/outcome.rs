//! What one try of a message came to, and when the next try is due.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// The longest wait between two tries (and the most a `Retry-After` is honoured for).
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The end of one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Worth another try; `after`: the receiver's `Retry-After`.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// An answer that will not change (a 4xx, a credential that does not fit).
    GiveUp(String),
}

/// The wait after try number `attempt` (1 for the first): `base` tripled per try, with
/// jitter, at most [`MAX_DELAY`]; never shorter than the receiver's `Retry-After`.
pub fn retry_delay(base: Duration, attempt: i32, retry_after: Option<Duration>) -> Duration {
    let tries = usize::try_from(attempt.max(1)).unwrap_or(1);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(base)
        .with_factor(3.0)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(tries - 1)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    match retry_after {
        Some(after) => backoff.max(after.min(MAX_DELAY)),
        None => backoff,
    }
}

/// A `Retry-After` header: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_honour_retry_after() {
        let base = Duration::from_secs(2);
        let first = retry_delay(base, 1, None);
        assert!(first >= base && first <= base * 2, "{first:?}");
        let third = retry_delay(base, 3, None);
        assert!(third >= base * 9, "{third:?}");
        assert_eq!(retry_delay(base, 40, None), MAX_DELAY);
        assert!(retry_delay(base, 1, Some(Duration::from_secs(120))) >= Duration::from_secs(120));
        assert_eq!(
            retry_delay(base, 1, Some(Duration::from_secs(99_999))),
            MAX_DELAY
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
