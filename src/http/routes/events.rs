//! Server-Sent Events for open portal pages: "something changed" notices for this tenant
//! (ids and kinds only), so pages refresh the part they show.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::State,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
    routing::get,
};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::wiring::App;
use crate::{
    http::extract::{RequireRole, Viewer},
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new().route("/t/{slug}/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    t: RequireRole<Viewer>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let tenant = t.id();
    // Counted while the stream lives (dropped with it when the browser goes away).
    let guard = crate::metrics::SseGuard::open();
    let live = state.live.clone();
    let stream =
        futures::stream::unfold((state.live.subscribe(), guard), move |(mut rx, guard)| {
            let live = live.clone();
            async move {
                loop {
                    let next = tokio::select! {
                        next = rx.recv() => next,
                        // This instance is stopping: end the stream; the browser reconnects.
                        () = live.ending() => return None,
                    };
                    match next {
                        Ok((for_tenant, event)) if for_tenant == tenant => {
                            let data = serde_json::to_string(&event).unwrap_or_default();
                            return Some((
                                Ok(SseEvent::default().event("change").data(data)),
                                (rx, guard),
                            ));
                        }
                        Ok(_) => continue,
                        // Fell behind: tell the page to refresh once.
                        Err(RecvError::Lagged(_)) => {
                            return Some((
                                Ok(SseEvent::default().event("change").data("{}")),
                                (rx, guard),
                            ));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
}
