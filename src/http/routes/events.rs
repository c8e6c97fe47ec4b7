//! Server-Sent Events for open portal pages: "something changed" notices for this tenant
//! (ids and kinds only), so pages refresh the part they show.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::State,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
    routing::get,
};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::{
    http::extract::{RequireRole, Viewer},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/t/{slug}/events", get(events))
}

async fn events(State(state): State<AppState>, t: RequireRole<Viewer>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let tenant = t.id();
    let stream = BroadcastStream::new(state.live.subscribe()).filter_map(move |item| async move {
        let (for_tenant, event) = item.ok()?;
        if for_tenant != tenant {
            return None;
        }
        let data = serde_json::to_string(&event).ok()?;
        Some(Ok(SseEvent::default().event("change").data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
}
