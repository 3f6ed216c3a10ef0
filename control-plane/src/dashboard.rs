//! The operator's dashboard (`GET /dashboard` on the admin listener;
//! control-plane/README.md, "Dashboard"): one page, its script and style,
//! and the vendored chart library, all compiled into the binary so that an
//! operator without internet gets the same page. The page holds no secret:
//! it asks for the admin secret, keeps it in the tab's `sessionStorage` and
//! sends it as `X-Admin-Secret` to the same `/admin/...` JSON API everyone
//! else uses, so it can show nothing that API would not.
//!
//! Every answer carries a Content-Security-Policy that lets the page load and
//! call its own origin only (no inline script, no other host), and an ETag,
//! so a page kept open revalidates instead of downloading again. The chart
//! library's name carries its version and is cached as immutable.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Error;

/// Own origin only; no inline script or style, no plugins, no framing, no
/// form posts (the sign-in form is handled by the script), no base URL.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The vendored Chart.js, as published on npm (control-plane/dashboard/vendor/fetch.sh
/// re-fetches it and checks its sha256).
const CHART_JS: &str = "vendor/chart-4.6.1.umd.min.js";

/// Revalidate on every load (the bytes change with the binary).
const REVALIDATE: &str = "no-cache";
/// A versioned file never changes under its name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    cache: &'static str,
    etag: &'static str,
}

/// FNV-1a over the bytes at compile time: an ETag needs to change when the
/// bytes do, not to resist anyone.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits + `"`, built at compile time.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:expr, $file:literal, $content_type:expr, $cache:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../dashboard/", $file));
        const TAG: [u8; 18] = etag_of(BODY);
        Asset {
            path: $path,
            body: BODY,
            content_type: $content_type,
            cache: $cache,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => "\"0\"",
            },
        }
    }};
}

static ASSETS: [Asset; 6] = [
    asset!("", "index.html", "text/html; charset=utf-8", REVALIDATE),
    asset!(
        "app.js",
        "app.js",
        "text/javascript; charset=utf-8",
        REVALIDATE
    ),
    asset!("app.css", "app.css", "text/css; charset=utf-8", REVALIDATE),
    asset!("icon.svg", "icon.svg", "image/svg+xml", REVALIDATE),
    asset!(
        CHART_JS,
        "vendor/chart-4.6.1.umd.min.js",
        "text/javascript; charset=utf-8",
        IMMUTABLE
    ),
    asset!(
        "vendor/chart.js-LICENSE.md",
        "vendor/chart.js-LICENSE.md",
        "text/plain; charset=utf-8",
        REVALIDATE
    ),
];

/// The dashboard's routes: `/dashboard` (the page) and `/dashboard/<file>`.
/// No secret needed: nothing here holds one.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard",
            get(|h: HeaderMap| async move { serve("", &h) }),
        )
        .route(
            "/dashboard/",
            get(|h: HeaderMap| async move { serve("", &h) }),
        )
        .route(
            "/dashboard/{*file}",
            get(|Path(file): Path<String>, h: HeaderMap| async move { serve(&file, &h) }),
        )
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return Error::NotFound(format!(
            "no dashboard file `{path}`; the dashboard is at /dashboard"
        ))
        .into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, asset.cache),
        (header::ETAG, asset.etag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_quoted_etag_and_a_body() {
        for a in &ASSETS {
            assert!(!a.body.is_empty(), "{}", a.path);
            assert_eq!(a.etag.len(), 18, "{}", a.path);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        }
        let mut tags: Vec<&str> = ASSETS.iter().map(|a| a.etag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn the_page_loads_the_vendored_chart_library_by_its_versioned_name() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap_or_default();
        assert!(page.contains(&format!("/dashboard/{CHART_JS}")));
        assert!(page.contains("/dashboard/app.js"));
        // No inline script: every <script> names a file of its own origin.
        for tag in page.split("<script").skip(1) {
            assert!(tag.trim_start().starts_with("src=\"/dashboard/"), "{tag}");
        }
    }

    async fn fetch(path: &str, if_none_match: Option<&str>) -> Response {
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn head(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn the_page_is_served_without_a_secret_under_a_strict_policy() {
        for path in ["/dashboard", "/dashboard/"] {
            let r = fetch(path, None).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(head(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
            let csp = head(&r, header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'self'"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert_eq!(head(&r, header::CACHE_CONTROL), "no-cache");
            assert_eq!(head(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        }
    }

    #[tokio::test]
    async fn each_file_has_its_type_and_the_versioned_library_is_immutable() {
        for (path, content_type) in [
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/app.css", "text/css; charset=utf-8"),
            ("/dashboard/icon.svg", "image/svg+xml"),
            (
                "/dashboard/vendor/chart.js-LICENSE.md",
                "text/plain; charset=utf-8",
            ),
        ] {
            let r = fetch(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(head(&r, header::CONTENT_TYPE), content_type, "{path}");
        }
        let r = fetch(&format!("/dashboard/{CHART_JS}"), None).await;
        assert_eq!(head(&r, header::CACHE_CONTROL), IMMUTABLE);
        let r = fetch("/dashboard/../Cargo.toml", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = fetch("/dashboard/nope.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_page_kept_open_revalidates_with_its_etag() {
        let first = fetch("/dashboard/app.js", None).await;
        let tag = head(&first, header::ETAG).to_owned();
        let again = fetch("/dashboard/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(head(&again, header::ETAG), tag);
        let other = fetch("/dashboard/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
