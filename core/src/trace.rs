//! Trace ids: one per build, made where the build is triggered (a webhook's receipt, a poll
//! that saw a head move, `ocelot build` or a rerun at the admin), stored with the build and
//! carried in its job message, and put in a tracing span (`trace_id=…`, with `build_id=…`)
//! around the build's handling in every service. `grep trace_id=ID` over the services' logs
//! shows the trigger, the claim, the stages and the result of one build.

use std::sync::atomic::{AtomicU64, Ordering};

/// A new trace id: 16 lowercase hex digits (64 random bits).
pub fn new_trace_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // no system randomness: still unique within the process, and apart across processes
        // by the clock and the pid (a trace id is no secret)
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        #[allow(clippy::cast_possible_truncation)]
        let mixed = (nanos as u64)
            ^ (u64::from(std::process::id()) << 40)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes = mixed.to_be_bytes();
    }
    hex::encode(bytes)
}

/// Whether `text` looks like a trace id this module makes (what a stored request or a job
/// message may carry: anything else is replaced, so logs never show free text as one).
pub fn is_trace_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_sixteen_hex_digits_and_differ() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert!(is_trace_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_trace_id("not a trace id!!"));
        assert!(!is_trace_id("abc"));
    }
}
