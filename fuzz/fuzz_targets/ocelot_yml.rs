//! `ocelot.yml` of any bytes: parsed or refused with located errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = ocelot_domain::pipeline::parse(text) {
            for error in &errors.0 {
                assert!(error.line >= 1, "an error without a line: {error:?}");
            }
        }
    }
});
