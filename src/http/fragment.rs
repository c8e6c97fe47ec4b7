//! Live regions rendered alone. A portal page that marks regions `data-live-refresh="<name>"`
//! answers `?fragment=<name>[,<name>…]` on its own route (one handler per page) with just
//! those regions, drawn by the same askama partials the page includes, plus the navigation
//! badges (`partials/live_counts.html`, from the figures the tenant extractor already
//! loaded). The handler runs only those regions' queries, under the page's own extractors
//! (session, tenant, role; RLS through `db::begin_tenant`). `static/app.js` fetches it when
//! the live stream says something changed and merges the regions into the page.

use askama::Template;
use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use crate::error::{AppError, AppResult};

/// The regions a `?fragment=` query asks for, each one of `known` (an unknown name is a 404:
/// the page has no such region). `None` when the query asks for the whole page.
pub(crate) fn regions(
    query: Option<&str>,
    known: &[&'static str],
) -> AppResult<Option<Vec<&'static str>>> {
    let Some(q) = query else {
        return Ok(None);
    };
    let mut wanted = Vec::new();
    for name in q.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let region = known
            .iter()
            .copied()
            .find(|k| *k == name)
            .ok_or(AppError::NotFound)?;
        if !wanted.contains(&region) {
            wanted.push(region);
        }
    }
    if wanted.is_empty() {
        return Err(AppError::NotFound);
    }
    Ok(Some(wanted))
}

/// The fragment as a response: HTML, never stored by a cache (it is one member's view).
pub(crate) fn render<T: Template>(fragment: &T) -> AppResult<Response> {
    let body = fragment
        .render()
        .map_err(|e| AppError::Internal(anyhow::Error::new(e)))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_deduplicated() {
        const KNOWN: &[&str] = &["thread", "reply"];
        assert_eq!(regions(None, KNOWN).unwrap(), None);
        assert_eq!(
            regions(Some("reply,thread,reply"), KNOWN).unwrap(),
            Some(vec!["reply", "thread"])
        );
        assert!(matches!(
            regions(Some("thread,shell"), KNOWN),
            Err(AppError::NotFound)
        ));
        assert!(matches!(regions(Some(""), KNOWN), Err(AppError::NotFound)));
    }
}
