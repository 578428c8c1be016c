//! The console's own stylesheet and script, compiled into the binary and served by moat, so
//! the console needs no network beyond moat itself.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where pages load the stylesheet from (the version busts caches on upgrade).
pub(crate) const CSS_PATH: &str = concat!("/ui/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// Where pages load the script from.
pub(crate) const JS_PATH: &str = concat!("/ui/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

/// `GET /ui/assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::CSS;

    /// A `--name: #rrggbb` colour of the stylesheet's `:root`.
    fn colour(name: &str) -> [f64; 3] {
        let marker = format!("--{name}: #");
        let start = CSS.find(&marker).unwrap_or_else(|| panic!("no --{name}")) + marker.len();
        let hex: String = CSS[start..].chars().take_while(char::is_ascii_hexdigit).collect();
        // `#fff` is `#ffffff`.
        let hex = if hex.len() == 3 { hex.chars().flat_map(|c| [c, c]).collect() } else { hex };
        let channel = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")));
        [channel(0), channel(2), channel(4)]
    }

    /// WCAG 2.x relative luminance.
    fn luminance([r, g, b]: [f64; 3]) -> f64 {
        let linear = |c: f64| {
            let c = c / 255.0;
            if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// Every pairing of text and background the stylesheet makes reads at WCAG AA (4.5:1 for
    /// body text), on white and on the tinted header and cards.
    #[test]
    fn text_colours_meet_wcag_aa_on_their_backgrounds() {
        let white = [255.0; 3];
        for background in ["paper", "tint"] {
            for text in ["ink", "muted", "accent", "good", "bad", "warn"] {
                let ratio = contrast(colour(text), colour(background));
                assert!(ratio >= 4.5, "--{text} on --{background}: {ratio:.2}:1");
            }
        }
        // Buttons: white on the accent.
        assert!(contrast(white, colour("accent")) >= 4.5);
        // The secret's box: ink on its pale yellow.
        let secret = [255.0, 248.0, 225.0];
        assert!(contrast(colour("ink"), secret) >= 4.5);
    }
}
