//! The stylesheet, the favicon and the built-in icons, compiled into the binary.
//!
//! Templates name icons as Coder's do (`/icon/docker.png`, `/icon/code.svg`): each name
//! resolves, to its own drawing when Hangar has one and to a generic one otherwise, so a
//! template brought from Coder never shows a broken image.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const STYLE: &str = include_str!("style.css");

const ICONS: &[(&str, &str)] = &[
    ("folder", include_str!("icons/folder.svg")),
    ("terminal", include_str!("icons/terminal.svg")),
    ("code", include_str!("icons/code.svg")),
    ("docker", include_str!("icons/docker.svg")),
    ("database", include_str!("icons/database.svg")),
    ("memory", include_str!("icons/memory.svg")),
    ("widgets", include_str!("icons/widgets.svg")),
    ("globe", include_str!("icons/globe.svg")),
    ("hangar", include_str!("icons/hangar.svg")),
];

/// Other names templates use for the same pictures.
const ALIASES: &[(&str, &str)] = &[
    ("vscode", "code"),
    ("code-server", "code"),
    ("jupyter", "code"),
    ("container", "docker"),
    ("disk", "database"),
    ("volume", "database"),
    ("postgres", "database"),
    ("web", "globe"),
    ("www", "globe"),
    ("home", "folder"),
];

/// The drawing for an icon file name (its extension does not matter).
pub fn icon_svg(file: &str) -> &'static str {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == stem)
        .map_or(stem, |(_, to)| to);
    ICONS
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| ICONS.iter().find(|(n, _)| *n == "widgets"))
        .map_or("", |(_, svg)| svg)
}

fn cached(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `/icon/NAME`: a built-in icon (SVG, whatever extension the template asked for).
pub async fn icon(Path(name): Path<String>) -> Response {
    cached("image/svg+xml", icon_svg(&name))
}

pub async fn favicon() -> Response {
    cached("image/svg+xml", icon_svg("hangar"))
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves() {
        assert!(icon_svg("docker.png").contains("#1d91e6"));
        assert_eq!(icon_svg("vscode.svg"), icon_svg("code.svg"));
        assert_eq!(icon_svg("never-heard-of-it.png"), icon_svg("widgets.svg"));
        for (name, svg) in ICONS {
            assert!(svg.starts_with("<svg"), "{name}");
        }
    }
}
