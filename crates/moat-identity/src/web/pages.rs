//! The few pages sign-in needs, as plain server-rendered HTML with no scripts.

/// `text` safe inside HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · moat</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;\
         padding:0 1rem;color:#222}}label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;\
         box-sizing:border-box}}button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#a00}}\
         .code{{font:600 1.6rem monospace;letter-spacing:.1em}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    )
}

/// The sign-in form.
pub(crate) fn login(csrf: &str, next: &str, error: Option<&str>, sso: bool) -> String {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let sso = if sso {
        format!(
            "<p><a id=\"sso\" href=\"/sso/login?next={}\">Sign in with your company account</a></p><p>or with a moat password:</p>",
            escape(next)
        )
    } else {
        String::new()
    };
    page(
        "Sign in",
        &format!(
            "{error}{sso}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
             <label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            csrf = escape(csrf),
            next = escape(next),
        ),
    )
}

/// Asks the signed-in person to confirm a device code.
pub(crate) fn confirm_device(email: &str, user_code: &str, client: &str, csrf: &str) -> String {
    page(
        "Approve a sign-in",
        &format!(
            "<p>Signed in as <strong>{email}</strong>.</p>\
             <p><strong>{client}</strong> asks for a personal key. Approve only if this code matches the one in \
             your terminal:</p><p class=\"code\" id=\"user-code\">{code}</p>\
             <form method=\"post\" action=\"/device\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
            email = escape(email),
            client = escape(client),
            code = escape(user_code),
            csrf = escape(csrf),
        ),
    )
}

/// Asks for the code shown in the terminal.
pub(crate) fn enter_code(error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    page(
        "Connect a device",
        &format!(
            "{error}<form method=\"get\" action=\"/device\"><label for=\"user_code\">The code in your terminal</label>\
             <input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" required><button type=\"submit\">Continue</button></form>"
        ),
    )
}

/// The invitation page: choose a password, or sign in through SSO.
pub(crate) fn accept_invitation(email: &str, token: &str, csrf: &str, sso: bool) -> String {
    invitation_page(email, token, csrf, sso, None)
}

/// The invitation page again, saying what was wrong.
pub(crate) fn accept_invitation_with_error(email: &str, token: &str, csrf: &str, sso: bool, error: &str) -> String {
    invitation_page(email, token, csrf, sso, Some(error))
}

fn invitation_page(email: &str, token: &str, csrf: &str, sso: bool, error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let sso = if sso {
        "<p><a id=\"sso\" href=\"/sso/login\">Join with your company account</a></p><p>or choose a moat password:</p>"
    } else {
        ""
    };
    page(
        "Join moat",
        &format!(
            "<p>You are invited as <strong>{email}</strong>.</p>{error}{sso}\
             <form method=\"post\" action=\"/invite/{token}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"password\">Password (12 characters or more)</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button type=\"submit\" id=\"join\">Join</button></form>",
            email = escape(email),
            token = escape(token),
            csrf = escape(csrf),
        ),
    )
}

/// A page that only says something.
pub(crate) fn message(title: &str, text: &str) -> String {
    page(title, &format!("<p id=\"message\">{}</p>", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let html = confirm_device("<script>@x", "ABCD-EFGH", "\"><img>", "t");
        assert!(!html.contains("<script>") && !html.contains("\"><img>"), "{html}");
    }
}
