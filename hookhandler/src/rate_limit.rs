//! Per-source rate limits (governor's GCRA, keyed by the peer's IP address).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct SourceLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl SourceLimiter {
    pub(crate) fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        SourceLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `source` must wait before its next request.
    pub(crate) fn check(&self, source: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&source)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_burst_waits_others_do_not() {
        let limiter = SourceLimiter::new(NonZeroU32::MIN, NonZeroU32::new(3).unwrap());
        let noisy: IpAddr = "127.0.0.2".parse().unwrap();
        let quiet: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(noisy).is_ok());
        }
        let wait = limiter.check(noisy).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check(quiet).is_ok());
    }
}
