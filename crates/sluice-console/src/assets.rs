//! Static files compiled into the binary, served under names that carry a
//! hash of their content, so browsers may cache them for a year and still
//! never run a stale copy after an upgrade.

use std::sync::LazyLock;

pub struct Asset {
    /// The served name, e.g. `console-3f2a9c1b0d4e5f60.css`.
    pub name: String,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Where every asset is served; page templates link to `URL_PREFIX` + name.
pub const URL_PREFIX: &str = "/console/assets/";

struct Source {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const SOURCES: &[Source] = &[
    Source {
        stem: "console",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/console.css"),
    },
    Source {
        stem: "htmx-2.0.11",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/htmx-2.0.11.min.js"),
    },
    Source {
        stem: "htmx-ext-sse-2.2.4",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    },
    Source {
        stem: "console",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/console.js"),
    },
];

/// FNV-1a, 64 bits: a cache key, not a security property (the files are
/// compiled in; nobody else can supply content for a name).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|s| Asset {
            name: format!("{}-{:016x}.{}", s.stem, fnv1a(s.bytes), s.ext),
            content_type: s.content_type,
            bytes: s.bytes,
        })
        .collect()
});

pub fn all() -> &'static [Asset] {
    &ASSETS
}

/// The asset served as `name`, if any.
pub fn by_name(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The URL of the asset made from `stem.ext`.
fn url(stem: &str, ext: &str) -> String {
    let source = SOURCES
        .iter()
        .position(|s| s.stem == stem && s.ext == ext)
        .expect("a compiled-in asset");
    format!("{URL_PREFIX}{}", ASSETS[source].name)
}

/// The URLs a page's layout links to.
pub struct Links {
    pub css: String,
    pub htmx: String,
    pub sse: String,
    pub script: String,
}

pub static LINKS: LazyLock<Links> = LazyLock::new(|| Links {
    css: url("console", "css"),
    htmx: url("htmx-2.0.11", "js"),
    sse: url("htmx-ext-sse-2.2.4", "js"),
    script: url("console", "js"),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_under_a_name_that_changes_with_its_content() {
        for asset in all() {
            assert_eq!(by_name(&asset.name).map(|a| a.bytes), Some(asset.bytes));
            assert!(!asset.bytes.is_empty());
        }
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert!(LINKS.css.starts_with("/console/assets/console-"));
        assert!(LINKS.css.ends_with(".css"));
    }
}
