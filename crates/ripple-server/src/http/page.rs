//! The browser side, embedded in the binary: the chat page at `/`, the live dashboard at
//! `/dashboard`, the client library at `/ripple.js` (which imports its HTTP fallback transports
//! from `/ripple-http.js`, with the TypeScript declarations of both at `/ripple.d.ts`) and the
//! pages' scripts and styles under `/assets/`. Nothing is read from
//! disk and nothing is fetched from another origin: a server with no internet serves it all.
//!
//! Every answer carries an `ETag` (`If-None-Match` gets `304`) and `Cache-Control: no-cache`,
//! so a browser revalidates and picks up a new server's files at once. The pages get a
//! Content-Security-Policy that allows only this origin, and `Referrer-Policy: no-referrer`
//! (a page URL may hold `?token=`).

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/` (or the route that serves it).
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The file.
    pub body: &'static str,
    /// Whether it is a page (gets the Content-Security-Policy).
    pub page: bool,
}

/// The chat page.
pub const INDEX: Asset = Asset::page("index.html", include_str!("../../web/index.html"));

/// The dashboard.
pub const DASHBOARD: Asset =
    Asset::page("dashboard.html", include_str!("../../web/dashboard.html"));

/// The client library (an ES module).
pub const RIPPLE_JS: Asset = Asset::script("ripple.js", include_str!("../../web/ripple.js"));

/// Its HTTP fallback transports (an ES module that `ripple.js` imports as `./ripple-http.js`).
pub const RIPPLE_HTTP_JS: Asset =
    Asset::script("ripple-http.js", include_str!("../../web/ripple-http.js"));

/// Its TypeScript declarations.
pub const RIPPLE_DTS: Asset = Asset {
    name: "ripple.d.ts",
    content_type: "text/plain; charset=utf-8",
    body: include_str!("../../web/ripple.d.ts"),
    page: false,
};

/// What `/assets/{name}` serves.
pub const ASSETS: &[Asset] = &[
    Asset::script("chat.js", include_str!("../../web/chat.js")),
    Asset::script("dashboard.js", include_str!("../../web/dashboard.js")),
    Asset::script("charts.js", include_str!("../../web/charts.js")),
    Asset::style("ripple.css", include_str!("../../web/ripple.css")),
    Asset::style("chat.css", include_str!("../../web/chat.css")),
    Asset::style("dashboard.css", include_str!("../../web/dashboard.css")),
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../web/favicon.svg"),
        page: false,
    },
];

/// Only this origin, for scripts, styles, images and connections (`'self'` covers `ws:` and
/// `wss:` to the same host).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the chat page.
pub async fn index(headers: HeaderMap) -> Response {
    INDEX.serve(&headers)
}

/// `GET /dashboard`: the live dashboard.
pub async fn dashboard(headers: HeaderMap) -> Response {
    DASHBOARD.serve(&headers)
}

/// `GET /ripple.js`: the client library.
pub async fn ripple_js(headers: HeaderMap) -> Response {
    RIPPLE_JS.serve(&headers)
}

/// `GET /ripple-http.js`: the client library's HTTP fallback transports.
pub async fn ripple_http_js(headers: HeaderMap) -> Response {
    RIPPLE_HTTP_JS.serve(&headers)
}

/// `GET /ripple.d.ts`: the library's TypeScript declarations.
pub async fn ripple_dts(headers: HeaderMap) -> Response {
    RIPPLE_DTS.serve(&headers)
}

/// `GET /assets/{name}`: the pages' scripts, styles and icon.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => asset.serve(&headers),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

impl Asset {
    const fn page(name: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type: "text/html; charset=utf-8",
            body,
            page: true,
        }
    }

    const fn script(name: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type: "text/javascript; charset=utf-8",
            body,
            page: false,
        }
    }

    const fn style(name: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type: "text/css; charset=utf-8",
            body,
            page: false,
        }
    }

    /// The file, or `304` when the browser's copy (`If-None-Match`) is current.
    pub fn serve(&self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            self.body.into_response()
        };
        let headers = response.headers_mut();
        let mut set = |name, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(header::CONTENT_TYPE, self.content_type);
        set(header::ETAG, &etag);
        set(header::CACHE_CONTROL, "no-cache");
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        if self.page {
            set(header::CONTENT_SECURITY_POLICY, CSP);
            set(header::REFERRER_POLICY, "no-referrer");
        }
        response
    }

    /// A strong validator: FNV-1a of the content, fixed when the binary is built.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", fnv1a(self.body.as_bytes()))
    }
}

/// 64-bit FNV-1a.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type() {
        for asset in
            ASSETS
                .iter()
                .chain([&INDEX, &DASHBOARD, &RIPPLE_JS, &RIPPLE_HTTP_JS, &RIPPLE_DTS])
        {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
            let response = asset.serve(&HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(response.headers()[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(
                response
                    .headers()
                    .contains_key(header::CONTENT_SECURITY_POLICY),
                asset.page
            );
        }
    }

    #[test]
    fn a_current_copy_gets_304() {
        let mut request = HeaderMap::new();
        let etag = RIPPLE_JS.etag();
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", {etag}")).unwrap(),
        );
        assert_eq!(RIPPLE_JS.serve(&request).status(), StatusCode::NOT_MODIFIED);
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(RIPPLE_JS.serve(&request).status(), StatusCode::OK);
    }

    #[test]
    fn pages_load_nothing_from_another_origin() {
        for asset in ASSETS.iter().chain([&INDEX, &DASHBOARD]) {
            for needle in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "url(\"http",
                "@import",
                "fetch(\"http",
            ] {
                assert!(
                    !asset.body.contains(needle),
                    "{} mentions {needle}",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
