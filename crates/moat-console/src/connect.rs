//! "Connect an agent": the one-command setup (`moat login`, then `moat setup <agent>`), and
//! what to paste for each coding agent by hand.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use crate::layout::{Section, page};
use crate::{Visit, html};

/// `GET /ui/connect`.
pub(crate) async fn show(visit: Visit) -> Response {
    let server = base_url(&visit);
    let body = html! {
        p { "The quickest way: sign in from your terminal, then let moat write your agent's settings." }
        pre #login { "moat login --server " (server) "\nmoat setup claude-code   # or: codex, opencode, aider, continue, env" }
        button.quiet type="button" data-copy="login" { "Copy" }
        p { "By hand, with a key from " a href="/ui/keys#create" { "My keys" } ":" }
        (snippets(&server, None))
    };
    html(StatusCode::OK, &page(&visit.person, Section::Connect, "Connect an agent", &body))
}

/// moat's address as the browser reached it (behind a proxy, its forwarded scheme).
pub(crate) fn base_url(visit: &Visit) -> String {
    let header = |wanted: &str| {
        visit.forwarded.iter().find(|(name, _)| name.as_str() == wanted).and_then(|(_, value)| value.to_str().ok())
    };
    address(header("host"), header("x-forwarded-proto"))
}

fn address(host: Option<&str>, proto: Option<&str>) -> String {
    let scheme = if proto == Some("https") { "https" } else { "http" };
    format!("{scheme}://{}", host.unwrap_or("localhost:4000"))
}

/// What each agent needs, with `key` filled in (or a placeholder).
pub(crate) fn snippets(server: &str, key: Option<&str>) -> Markup {
    let key = key.unwrap_or("YOUR_MOAT_KEY");
    let agents: [(&str, &str, String); 6] = [
        (
            "claude-code",
            "Claude Code (~/.claude/settings.json, under \"env\", or in your shell)",
            format!(
                "export ANTHROPIC_BASE_URL={server}\nexport ANTHROPIC_AUTH_TOKEN={key}\nexport ANTHROPIC_MODEL=<a model from moat>"
            ),
        ),
        (
            "codex",
            "Codex CLI (~/.codex/config.toml)",
            format!(
                "model_provider = \"moat\"\nmodel = \"<a model from moat>\"\n\n[model_providers.moat]\nname = \"moat\"\n\
                 base_url = \"{server}/v1\"\nwire_api = \"responses\"\nexperimental_bearer_token = \"{key}\""
            ),
        ),
        (
            "opencode",
            "OpenCode (~/.config/opencode/opencode.json, under \"provider\")",
            format!(
                "\"moat\": {{\n  \"npm\": \"@ai-sdk/openai-compatible\",\n  \"options\": {{ \"baseURL\": \"{server}/v1\", \"apiKey\": \"{key}\" }},\n  \
                 \"models\": {{ \"<a model from moat>\": {{}} }}\n}}"
            ),
        ),
        (
            "aider",
            "Aider (~/.aider.conf.yml)",
            format!(
                "openai-api-base: \"{server}/v1\"\nopenai-api-key: \"{key}\"\nmodel: \"openai/<a model from moat>\""
            ),
        ),
        (
            "continue",
            "Continue (~/.continue/config.yaml, under \"models\")",
            format!(
                "  - name: moat\n    provider: openai\n    model: <a model from moat>\n    apiBase: {server}/v1\n    apiKey: {key}"
            ),
        ),
        (
            "env",
            "Any OpenAI or Anthropic SDK",
            format!(
                "export OPENAI_BASE_URL={server}/v1\nexport OPENAI_API_KEY={key}\nexport ANTHROPIC_BASE_URL={server}\nexport ANTHROPIC_AUTH_TOKEN={key}"
            ),
        ),
    ];
    html! {
        @for (id, title, text) in &agents {
            h3 { (title) }
            pre id=(format!("snippet-{id}")) { (text) }
            button.quiet type="button" data-copy=(format!("snippet-{id}")) aria-label=(format!("Copy the {title} settings")) { "Copy" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_carry_the_server_and_key_escaped() {
        let html = snippets("https://moat.example", Some("sk-moat-<x>")).into_string();
        assert!(html.contains("ANTHROPIC_BASE_URL=https://moat.example\n"), "{html}");
        assert!(html.contains("base_url = &quot;https://moat.example/v1&quot;"), "{html}");
        assert!(html.contains("sk-moat-&lt;x&gt;") && !html.contains("sk-moat-<x>"), "{html}");
    }

    #[test]
    fn the_base_url_follows_the_host_and_a_forwarded_scheme() {
        assert_eq!(address(Some("gw.internal:4000"), None), "http://gw.internal:4000");
        assert_eq!(address(Some("gw.internal:4000"), Some("https")), "https://gw.internal:4000");
        assert_eq!(address(None, Some("gopher")), "http://localhost:4000");
    }
}
