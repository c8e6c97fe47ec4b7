//! Static files, embedded in the binary: a binary copied alone to a new machine serves its
//! own CSS, JS and icon. Each file is addressed by a hash of its content
//! (`/static/app.3f9c0a1b2d.css`) and cached for a year as immutable; a new build changes
//! the name, so a browser never runs yesterday's script against today's page. The plain
//! name still answers (revalidated by ETag) for links that outlive a build.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::wiring::App;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../static/app.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../static/favicon.svg"),
    },
];

struct Hashed {
    asset: &'static Asset,
    /// `app.3f9c0a1b2d.css`
    hashed_name: String,
    etag: HeaderValue,
}

static TABLE: LazyLock<Vec<Hashed>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|asset| {
            let digest = hex::encode(&Sha256::digest(asset.bytes)[..5]);
            let hashed_name = match asset.name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{digest}.{ext}"),
                None => format!("{}.{digest}", asset.name),
            };
            let etag = HeaderValue::from_str(&format!("\"{digest}\"")).expect("hex is a header");
            Hashed {
                asset,
                hashed_name,
                etag,
            }
        })
        .collect()
});

/// The URL pages link a static file by: its content-hashed name.
pub(crate) fn url(name: &str) -> String {
    match TABLE.iter().find(|h| h.asset.name == name) {
        Some(h) => format!("/static/{}", h.hashed_name),
        None => format!("/static/{name}"),
    }
}

pub(crate) fn router() -> Router<App> {
    Router::new().route("/static/{file}", get(serve))
}

async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let (h, immutable) = match TABLE.iter().find(|h| h.hashed_name == file) {
        Some(h) => (h, true),
        None => match TABLE.iter().find(|h| h.asset.name == file) {
            Some(h) => (h, false),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let cache = HeaderValue::from_static(if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    });
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == h.etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, h.etag.clone()),
                (header::CACHE_CONTROL, cache),
            ],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(h.asset.content_type),
            ),
            (header::ETAG, h.etag.clone()),
            (header::CACHE_CONTROL, cache),
        ],
        h.asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_gets_a_distinct_hashed_url() {
        let urls: Vec<String> = FILES.iter().map(|f| url(f.name)).collect();
        for (u, f) in urls.iter().zip(FILES) {
            let (stem, ext) = f.name.rsplit_once('.').unwrap();
            assert!(
                u.starts_with(&format!("/static/{stem}.")) && u.ends_with(ext),
                "{u}"
            );
            assert_ne!(*u, format!("/static/{}", f.name));
        }
        assert_eq!(url("missing.png"), "/static/missing.png");
    }
}
