//! Static assets embedded in the binary (htmx, CSS, the few scripts), served under content-hashed names so they can
//! be cached for a year and still change with each release. No CDN: the dashboard works offline.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Where assets are served from.
pub const PREFIX: &str = "/dashboard/assets";

/// `name` → `name` with the first 10 hex digits of its SHA-256 before the extension (`app.3f2a…css`), and back.
struct Names {
    hashed: HashMap<String, String>,
    plain: HashMap<String, String>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut hashed = HashMap::new();
        let mut plain = HashMap::new();
        for name in Assets::iter() {
            let Some(file) = Assets::get(&name) else { continue };
            let digest: String = file.metadata.sha256_hash().iter().take(5).map(|b| format!("{b:02x}")).collect();
            let with_hash = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{digest}.{ext}"),
                None => format!("{name}.{digest}"),
            };
            plain.insert(with_hash.clone(), name.to_string());
            hashed.insert(name.to_string(), with_hash);
        }
        Names { hashed, plain }
    })
}

/// The URL of an embedded asset, with its content hash in the name. An unknown name gives a URL that is a 404,
/// which the page tests catch.
pub fn url(name: &str) -> String {
    match names().hashed.get(name) {
        Some(hashed) => format!("{PREFIX}/{hashed}"),
        None => format!("{PREFIX}/missing/{name}"),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// `GET /dashboard/assets/{name}`: hashed names are immutable; plain names work too but are revalidated.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (plain, immutable) = match names().plain.get(&name) {
        Some(plain) => (plain.clone(), true),
        None => (name, false),
    };
    let Some(file) = Assets::get(&plain) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type(&plain))),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_hashed_url_that_maps_back() {
        let css = url("app.css");
        assert!(css.starts_with("/dashboard/assets/app.") && css.ends_with(".css"), "{css}");
        let hashed = css.trim_start_matches("/dashboard/assets/");
        assert_eq!(names().plain.get(hashed).map(String::as_str), Some("app.css"));
        assert!(url("nope.js").contains("/missing/"));
    }
}
