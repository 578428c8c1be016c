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
