//! The config loader over any text: settings or a list of issues, never a panic.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = HashMap::from([("KEY".to_owned(), "value".to_owned())]);
    let _ = moat_server::config::load_from_str(text, "fuzz", &env);
});
