//! The dashboard's static files, embedded in the binary: its own CSS and script, and the
//! vendored htmx and uPlot (`assets/vendor/README.md`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub const HTMX: &str = "htmx-2.0.11.min.js";
pub const UPLOT_JS: &str = "uPlot-1.6.32.iife.min.js";
pub const UPLOT_CSS: &str = "uPlot-1.6.32.min.css";
pub const APP_JS: &str = "dashboard.js";
pub const APP_CSS: &str = "dashboard.css";

fn file(name: &str) -> Option<(&'static str, &'static str)> {
    let js = "text/javascript; charset=utf-8";
    let css = "text/css; charset=utf-8";
    Some(match name {
        HTMX => (include_str!("../../assets/vendor/htmx-2.0.11.min.js"), js),
        UPLOT_JS => (
            include_str!("../../assets/vendor/uPlot-1.6.32.iife.min.js"),
            js,
        ),
        UPLOT_CSS => (
            include_str!("../../assets/vendor/uPlot-1.6.32.min.css"),
            css,
        ),
        APP_JS => (include_str!("../../assets/dashboard.js"), js),
        APP_CSS => (include_str!("../../assets/dashboard.css"), css),
        _ => return None,
    })
}

pub async fn serve(Path(name): Path<String>) -> Response {
    match file(&name) {
        Some((body, kind)) => (
            [
                (header::CONTENT_TYPE, kind),
                // Names carry versions or change with the binary: a day is safe.
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
