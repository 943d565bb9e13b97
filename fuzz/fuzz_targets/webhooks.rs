//! A webhook delivery of any headers and body, for every provider: parsed or refused, never
//! a panic. The first byte picks the provider, the next ones the event header's value.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ocelot_hookhandler::Provider;

const EVENT_HEADERS: [&str; 4] = ["x-github-event", "x-gitlab-event", "x-event-key", "x-gitea-event"];
const EVENTS: [&str; 8] = [
    "push",
    "pull_request",
    "ping",
    "Push Hook",
    "Merge Request Hook",
    "repo:push",
    "pullrequest:created",
    "Tag Push Hook",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let provider = match selector % 4 {
        0 => Provider::GitHub,
        1 => Provider::GitLab,
        2 => Provider::Bitbucket,
        _ => Provider::Gitea,
    };
    let mut headers = HeaderMap::new();
    let event = EVENTS[usize::from(selector / 4) % EVENTS.len()];
    for name in EVENT_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(event));
    }
    headers.insert(
        HeaderName::from_static("x-github-delivery"),
        HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    );
    // what runs on every unauthenticated request, before the signature is checked
    let _ = ocelot_hookhandler::providers::identify(provider, rest);
    let _ = ocelot_hookhandler::providers::parse(provider, &headers, rest);
});
