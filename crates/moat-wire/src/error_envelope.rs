//! Error bodies in each dialect's envelope, rendered from the one error-code table.

pub use moat_core::Dialect;
use moat_core::ErrorCode;
use serde_json::json;

/// The JSON error body for `code` with a human-readable `message`.
///
/// `message` is shown to people as is: callers must never put secrets or raw upstream bodies
/// in it.
pub fn error_body(dialect: Dialect, code: ErrorCode, message: &str, param: Option<&str>) -> String {
    let spec = code.spec();
    let body = match dialect {
        Dialect::OpenAi => json!({
            "error": {
                "message": message,
                "type": spec.openai_type,
                "param": param,
                "code": spec.code,
            }
        }),
        Dialect::Anthropic => json!({
            "type": "error",
            "error": { "type": spec.anthropic_type, "message": message, "code": spec.code },
        }),
    };
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn renders_both_envelopes() {
        let openai = error_body(Dialect::OpenAi, ErrorCode::ModelNotFound, "no model `x`", Some("model"));
        expect![[r#"{"error":{"code":"model_not_found","message":"no model `x`","param":"model","type":"invalid_request_error"}}"#]]
            .assert_eq(&openai);
        let anthropic = error_body(Dialect::Anthropic, ErrorCode::InvalidApiKey, "bad key", None);
        expect![[
            r#"{"error":{"code":"invalid_api_key","message":"bad key","type":"authentication_error"},"type":"error"}"#
        ]]
        .assert_eq(&anthropic);
    }
}
