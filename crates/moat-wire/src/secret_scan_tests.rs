use serde_json::json;

use super::*;

/// Real-format credentials, made up: each as it is pasted into a prompt, with the part a
/// redaction must remove. Built from pieces so this file is not itself a leak report.
fn corpus() -> Vec<(SecretKind, String, String)> {
    let b64_line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
    let rsa = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{b64_line}\n{b64_line}\nMRkwFwYDVQQDExB0ZXN0\n-----END RSA PRIVATE KEY-----"
    );
    let openssh = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA{b64_line}\n-----END OPENSSH PRIVATE KEY-----"
    );
    let aws_id = format!("AKIA{}", "IOSFODNN7EXAMPL2");
    let aws_secret = format!("wJalrXUtnFEMI/K7MDENG/{}", "bPxRfiCYEXAMPLEKEY");
    let google = format!("AIza{}", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY");
    let azure = format!("{}==", "k".repeat(40) + &"Q9".repeat(23));
    let ghp = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let github_pat = format!("github_pat_11ABCDEFG0{}", "x9Y8z7W6v5_".repeat(7));
    let glpat = format!("glpat-{}", "Zx9-Yw8_Vu7Ts6Rq5Po4");
    let slack = format!("xoxb-{}", "1234567890-0987654321-AbCdEfGhIjKlMnOp");
    let stripe = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
    let anthropic = format!("sk-ant-api03-{}", "Xy9_8Wv7-6Ut5Sr4Qp3On2Ml1Kj0IhGfEdCbA");
    let openai = format!("sk-proj-{}", "T3BlbkFJ9x8Y7w6V5u4T3s2R1q0PoNmLkJ");
    let hf = format!("hf_{}", "AbCdEfGhIjKlMnOpQrStUvWxYz01234567");
    let npm = format!("npm_{}", "a1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    let moat = format!("moat_sk_{}", "Q2hhbmdlTWUtTm90QVJlYWxLZXktMTIzNDU2Nzg5MDE");
    let jwt =
        format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U");
    vec![
        (SecretKind::PrivateKey, format!("my key:\n{rsa}\nthanks"), rsa.clone()),
        (SecretKind::PrivateKey, format!("id_ed25519:\n{openssh}\n"), openssh.clone()),
        (SecretKind::AwsAccessKey, format!("[default]\naws_access_key_id = {aws_id}\n"), aws_id.clone()),
        (SecretKind::SecretAssignment, format!("AWS_SECRET_ACCESS_KEY={aws_secret}\n"), aws_secret.clone()),
        (SecretKind::GoogleApiKey, format!("const key = '{google}';"), google.clone()),
        (
            SecretKind::AzureStorageKey,
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure};EndpointSuffix=core.windows.net"
            ),
            azure.clone(),
        ),
        (SecretKind::GithubToken, format!("GITHUB_TOKEN={ghp}"), ghp.clone()),
        (SecretKind::GithubToken, format!("token: {github_pat}"), github_pat.clone()),
        (SecretKind::GitlabToken, format!("git clone https://oauth2:{glpat}@gitlab.acme.com/x.git"), glpat.clone()),
        (SecretKind::SlackToken, format!("SLACK_BOT_TOKEN={slack}"), slack.clone()),
        (SecretKind::StripeKey, format!("stripe.api_key = \"{stripe}\""), stripe.clone()),
        (SecretKind::AnthropicKey, format!("export ANTHROPIC_API_KEY={anthropic}"), anthropic.clone()),
        (SecretKind::ProviderApiKey, format!("client = OpenAI(api_key=\"{openai}\")"), openai.clone()),
        (SecretKind::HuggingfaceToken, format!("HF_TOKEN={hf}"), hf.clone()),
        (SecretKind::NpmToken, format!("//registry/:_authToken={npm}"), npm.clone()),
        (SecretKind::MoatKey, format!("ANTHROPIC_AUTH_TOKEN={moat}"), moat.clone()),
        (SecretKind::Jwt, format!("Cookie: session={jwt}"), jwt.clone()),
        (
            SecretKind::DatabasePassword,
            "DATABASE_URL=postgres://app:Tr0ub4dor-and-3@db.internal:5432/app".into(),
            "Tr0ub4dor-and-3".into(),
        ),
        (
            SecretKind::BearerToken,
            "curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0Zz' https://api".into(),
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0Zz".into(),
        ),
        (
            SecretKind::SecretAssignment,
            "{\"client_secret\": \"q8Wv2Lp0Xn5Rt7Yz3Kb1Mc9\"}".into(),
            "q8Wv2Lp0Xn5Rt7Yz3Kb1Mc9".into(),
        ),
        (SecretKind::SecretAssignment, "SECRET_KEY = 'x8f#k2$m9!qz7@w4^b6%t1'".into(), "x8f#k2$m9!qz7@w4^b6%t1".into()),
    ]
}

/// A chat request carrying `content` as its one message, as a client would send it.
fn request_with(content: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "m", "messages": [{"role": "user", "content": content}]}))
        .expect("a JSON value serialises")
}

fn content_of(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).expect("redaction keeps the body valid JSON");
    value["messages"][0]["content"].as_str().expect("content stays a string").to_owned()
}

#[test]
fn every_kind_in_the_corpus_is_found_and_redacted_out_of_the_json() {
    let scanner = SecretScanner::shared();
    for (kind, text, secret) in corpus() {
        let body = request_with(&text);
        let findings = scanner.scan(&body);
        let kinds: Vec<SecretKind> = findings.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&kind), "{kind:?} not found in {text:?}: found {kinds:?}");
        let redacted = content_of(&redact(&body, &findings));
        assert!(!redacted.contains(&secret), "{kind:?} survived redaction: {redacted}");
        assert!(redacted.contains(&format!("[REDACTED:{}:1]", kind.as_str())), "{redacted}");
    }
}

#[test]
fn the_same_secret_keeps_its_number_and_another_gets_the_next() {
    let a = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let b = format!("ghp_{}", "z9Y8x7W6v5U4".repeat(3));
    let body = request_with(&format!("first {a}, then {b}, and {a} again"));
    let findings = SecretScanner::shared().scan(&body);
    assert_eq!(count_by_kind(&findings), BTreeMap::from([(SecretKind::GithubToken, 3)]));
    assert_eq!(
        content_of(&redact(&body, &findings)),
        "first [REDACTED:github_token:1], then [REDACTED:github_token:2], and [REDACTED:github_token:1] again"
    );
}

#[test]
fn a_specific_kind_wins_over_the_generic_assignment_around_it() {
    let token = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let findings = SecretScanner::shared().scan(&request_with(&format!("GITHUB_TOKEN={token}")));
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, SecretKind::GithubToken);
}

#[test]
fn redaction_never_cuts_a_json_escape_in_half() {
    // The key ends right before an escaped quote, and starts right after an escaped newline.
    let key = format!("sk-proj-{}", "T3BlbkFJ9x8Y7w6V5u4T3s2R1q0PoNmLkJ");
    for text in [format!("\"{key}\""), format!("line\n{key}\nline"), format!("\\{key}\\"), format!("\t{key}\r")] {
        let body = request_with(&text);
        let findings = SecretScanner::shared().scan(&body);
        assert_eq!(findings.len(), 1, "{text:?}");
        let redacted = content_of(&redact(&body, &findings));
        assert!(!redacted.contains(&key));
        assert_eq!(redacted, text.replace(&key, "[REDACTED:provider_api_key:1]"));
    }
}

#[test]
fn ordinary_code_and_prose_hold_no_secrets() {
    let ordinary = [
        include_str!("sse.rs"),
        include_str!("openai.rs"),
        "def get_client():\n    api_key = os.environ[\"OPENAI_API_KEY\"]\n    return OpenAI(api_key=api_key)\n",
        "const token = req.headers.authorization;\nif (!token) throw new Error('missing token');",
        "{\"max_tokens\": 100000000000000000, \"tokenizer\": \"meta-llama/Llama-3.1-8B-Instruct\"}",
        "password = getpass.getpass()\nPASSWORD_MIN_LENGTH = 12\nsecret_name = 'prod/db/primary'",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b\nMerge: 1a2b3c4 5d6e7f8\nid 0195f2c4-8a1e-7c3b-9d2e-4f5a6b7c8d9e",
        "the task-management-system-v2-overview and risk-assessment-framework-2024-final docs",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkAIZaAAAAGgA",
        "Authorization: Bearer ${TOKEN}\nAuthorization: Bearer <your-token-here>",
        "DATABASE_URL=postgres://localhost:5432/app\nREDIS_URL=redis://cache:6379/0",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    ];
    for text in ordinary {
        let findings = SecretScanner::shared().scan(&request_with(text));
        let kinds: Vec<SecretKind> = findings.iter().map(|f| f.kind).collect();
        assert!(findings.is_empty(), "false positive {kinds:?} in {:?}", &text[..text.len().min(80)]);
    }
}

#[test]
fn placeholders_are_not_found_again() {
    let key = format!("sk-proj-{}", "T3BlbkFJ9x8Y7w6V5u4T3s2R1q0PoNmLkJ");
    let body = request_with(&format!("OPENAI_API_KEY={key}"));
    let once = redact(&body, &SecretScanner::shared().scan(&body));
    assert_eq!(SecretScanner::shared().scan(&once), Vec::new());
}

#[test]
fn kind_names_are_distinct_snake_case() {
    let names: std::collections::BTreeSet<&str> = PATTERNS.iter().map(|(kind, ..)| kind.as_str()).collect();
    assert!(names.iter().all(|name| name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    assert_eq!(names.len(), PATTERNS.len());
}

proptest::proptest! {
    /// Whatever the text, redacting what the scanner found leaves valid JSON with the same shape.
    #[test]
    fn redaction_keeps_any_body_valid_json(text in "(\\PC|\\\\|\"|\n| |=|sk-proj-|AKIA|ghp_|[A-Za-z0-9]{8}){0,60}") {
        let body = request_with(&text);
        let findings = SecretScanner::shared().scan(&body);
        let redacted = redact(&body, &findings);
        let value: serde_json::Value = serde_json::from_slice(&redacted).expect("valid JSON");
        proptest::prop_assert!(value["messages"][0]["content"].is_string());
    }
}

/// Found by the `secret_scan` fuzz target: a JSON string holding bytes that are not UTF-8.
/// serde_json's `IgnoredAny` accepts it where `Value` does not, so whoever checks a redacted
/// body must check its UTF-8 too (the gateway's guard does); the scanner itself passes such
/// bytes through untouched.
#[test]
fn bytes_that_are_not_utf8_pass_through_untouched() {
    let body = b"\"\x9c\"";
    let findings = SecretScanner::shared().scan(body);
    assert_eq!(findings, Vec::new());
    assert_eq!(redact(body, &findings), body.to_vec());
    assert!(serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok());
    assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
}
