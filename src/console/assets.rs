//! The console's static files, vendored into the binary (no CDN, nothing fetched at run time)
//! and listed in `assets/manifest.toml` with their version, SHA-256 and licence, as the models
//! are. Served with their digest as `ETag`, so a browser revalidates them cheaply.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::console::page::PageError;
use crate::error::Error;

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "console.css", mime: "text/css; charset=utf-8", bytes: include_bytes!("../../assets/console.css") },
    Asset {
        name: "console.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console.js"),
    },
];

pub const MANIFEST: &str = include_str!("../../assets/manifest.toml");

/// Where a page links an asset.
pub fn url(name: &str) -> String {
    format!("/assets/{name}")
}

fn etag(a: &Asset) -> String {
    use sha2::Digest as _;
    format!("\"{}\"", &hex::encode(sha2::Sha256::digest(a.bytes))[..32])
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, PageError> {
    let a = ASSETS.iter().find(|a| a.name == name).ok_or_else(|| Error::NotFound(format!("asset {name}")))?;
    let tag = etag(a);
    let cache = [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, cache, [(header::ETAG, tag)]).into_response());
    }
    Ok((cache, [(header::CONTENT_TYPE, a.mime.to_string()), (header::ETAG, tag)], a.bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vendored file is in the manifest with its true SHA-256, and nothing else is.
    #[test]
    fn the_manifest_lists_every_asset_with_its_digest() {
        use sha2::Digest as _;
        let m: toml::Table = MANIFEST.parse().unwrap();
        let files = m["asset"].as_array().unwrap();
        assert_eq!(files.len(), ASSETS.len());
        for a in ASSETS {
            let entry =
                files.iter().find(|f| f["file"].as_str() == Some(a.name)).unwrap_or_else(|| panic!("{}", a.name));
            assert_eq!(entry["sha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(a.bytes)), "{}", a.name);
            assert!(!entry["license"].as_str().unwrap().is_empty());
            assert!(!entry["version"].as_str().unwrap().is_empty());
        }
    }
}
