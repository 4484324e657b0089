//! The bundled web client: `GET /` and its assets, embedded in the binary at
//! build time (see `build.rs`).
//!
//! `index.html` is served with `Cache-Control: no-cache`, so a browser always
//! asks for the current page. Everything else lives under
//! `/assets/{ASSET_VERSION}/…`, where the version is a hash of every file of
//! the client: those URLs never change content, so they are served
//! `immutable` for a year. A path under another version, or no file, is the
//! API's JSON 404. The client routes with the URL fragment (`/#/…`), so no
//! other path needs to fall back to the page.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use embedded::ASSET_VERSION;

/// The placeholder in `web/index.html` that becomes `/assets/{version}`.
const ASSET_BASE_PLACEHOLDER: &str = "__ASSET_BASE__";

const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
const CACHE_NONE: &str = "no-cache";

/// The page, with its asset URLs pointing at this build's version.
static INDEX: LazyLock<String> = LazyLock::new(|| {
    let page = asset("index.html").map_or("", |b| std::str::from_utf8(b).unwrap_or(""));
    page.replace(ASSET_BASE_PLACEHOLDER, &format!("/assets/{ASSET_VERSION}"))
});

/// `GET /` and `GET /assets/{version}/{*path}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{version}/{*path}", get(asset_file))
}

fn asset(path: &str) -> Option<&'static [u8]> {
    embedded::ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json" | "webmanifest") => "application/json",
        _ => "application/octet-stream",
    }
}

async fn index() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type("index.html")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_NONE)),
        ],
        INDEX.as_str(),
    )
        .into_response()
}

async fn asset_file(Path((version, path)): Path<(String, String)>) -> Response {
    let found = (version == ASSET_VERSION && path != "index.html")
        .then(|| asset(&path))
        .flatten();
    match found {
        Some(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&path)),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(CACHE_IMMUTABLE),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str) -> Response {
        router::<()>()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn header(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[tokio::test]
    async fn the_page_is_never_cached_and_points_at_this_builds_assets() {
        let response = get("/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
        assert!(header(&response, header::CONTENT_TYPE).starts_with("text/html"));
        let page = text(response).await;
        assert!(!page.contains(ASSET_BASE_PLACEHOLDER));
        assert!(page.contains(&format!("/assets/{ASSET_VERSION}/app.js")));
        assert!(!page.contains("<script>"), "no inline script");
        assert!(!page.contains("style="), "no inline style");
    }

    #[tokio::test]
    async fn versioned_assets_are_immutable_for_a_year() {
        let response = get(&format!("/assets/{ASSET_VERSION}/app.js")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert!(header(&response, header::CONTENT_TYPE).starts_with("text/javascript"));
        let css = get(&format!("/assets/{ASSET_VERSION}/style.css")).await;
        assert!(header(&css, header::CONTENT_TYPE).starts_with("text/css"));
    }

    /// The JSON body is written by the envelope middleware of the whole
    /// router (`super::router`); the end-to-end tests check it there.
    #[tokio::test]
    async fn another_version_or_an_unknown_file_is_not_found() {
        for uri in [
            "/assets/000000000000/app.js".to_owned(),
            format!("/assets/{ASSET_VERSION}/nope.js"),
            format!("/assets/{ASSET_VERSION}/../Cargo.toml"),
            format!("/assets/{ASSET_VERSION}/index.html"),
        ] {
            let response = get(&uri).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            assert!(!header(&response, header::CACHE_CONTROL).contains("immutable"));
        }
    }

    #[test]
    fn every_embedded_file_has_a_known_type() {
        for (name, _) in embedded::ASSETS {
            assert_ne!(content_type(name), "application/octet-stream", "{name}");
        }
    }
}
