//! The UI's static files, compiled into the binary and served under a name
//! that carries a hash of their content (`/assets/<hash>/<name>`), so they
//! can be cached for a year and a new build is never served an old copy.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    url: LazyLock<String>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8], url: fn() -> String) -> Asset {
        Asset { name, content_type, bytes, url: LazyLock::new(url) }
    }

    /// Where pages link it.
    pub fn url(&'static self) -> &'static str {
        self.url.as_str()
    }
}

fn url_of(name: &str, bytes: &[u8]) -> String {
    let hash = hex::encode(&sha2::Sha256::digest(bytes)[..8]);
    format!("/assets/{hash}/{name}")
}

macro_rules! asset {
    ($id:ident, $name:literal, $type:literal) => {
        pub static $id: Asset = Asset::new($name, $type, include_bytes!(concat!("../../assets/", $name)), || {
            url_of($name, include_bytes!(concat!("../../assets/", $name)))
        });
    };
}

asset!(CSS, "kluis.css", "text/css; charset=utf-8");
asset!(UPLOAD_JS, "upload.js", "text/javascript; charset=utf-8");
asset!(ICON, "icon.svg", "image/svg+xml");

static ALL: [&Asset; 3] = [&CSS, &UPLOAD_JS, &ICON];

/// `GET /assets/{hash}/{name}`: the file if the hash is its current one.
pub async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some(a) = ALL.iter().find(|a| a.name == name && a.url() == format!("/assets/{hash}/{name}")) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut r = a.bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_carry_their_hash() {
        assert!(CSS.url().starts_with("/assets/") && CSS.url().ends_with("/kluis.css"));
        assert_eq!(CSS.url().len(), "/assets/".len() + 16 + "/kluis.css".len());
        assert_ne!(CSS.url(), url_of("kluis.css", b"other"));
    }
}
