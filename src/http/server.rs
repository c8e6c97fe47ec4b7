//! The listener: what keeps one slow or greedy client from stopping the server.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a few hundred
//! half-sent requests used to exhaust file descriptors. We drive hyper's HTTP/1 connection
//! directly, with its own settings:
//! - **header-read timeout** (hyper's `header_read_timeout`): a request whose headers don't
//!   arrive in time closes the connection. The same timer runs while a kept-alive
//!   connection waits for its next request, so it is also the keep-alive idle timeout;
//! - **connection cap**: at most `max_connections` open at once; past it we stop accepting
//!   and the kernel's backlog holds the rest until a slot frees (which the timeouts bound);
//! - body-read and whole-request timeouts are tower-http layers (see `crate::build_app`).
//!
//! Each connection's first request is looked at first (`live_conn`): a live-update stream is
//! written to the socket there, without hyper's per-connection buffers; the rest is hyper's.

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{rt::TokioTimer, server::graceful::GracefulShutdown};
use tokio::{net::TcpListener, sync::Semaphore};

use super::live_conn;
use crate::{config::ServerLimits, shutdown::Shutdown};

/// How long shutdown waits for open requests (and live-update streams) before closing.
const DRAIN: Duration = Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown` fires, then drains open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let max = effective_max_connections(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or the peer gave up before we accepted: back off
                    // a little instead of spinning, as axum::serve does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = live_conn::Conn {
            app: app.clone(),
            http: http.clone(),
            graceful: graceful.watcher(),
            header_read_timeout: limits.header_read_timeout,
            shutdown: shutdown.clone(),
        };
        tokio::spawn(async move {
            live_conn::serve(conn, stream, peer).await;
            drop(slot);
        });
    }
    drop(listener);
    // Hyper's connections finish their request; streams end with `Live::end_streams`; then
    // every connection's slot is back.
    let drained = async {
        graceful.shutdown().await;
        let _ = slots.acquire_many(max.try_into().unwrap_or(u32::MAX)).await;
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}

/// The connection cap, kept under the process's file-descriptor limit (raised to its hard
/// limit first) with room left for database, Redis and outgoing connections.
fn effective_max_connections(configured: usize) -> usize {
    const RESERVE: u64 = 256;
    let Some(fds) = raise_fd_limit() else {
        return configured;
    };
    let room = fds.saturating_sub(RESERVE).max(16) as usize;
    let cap = if configured > room {
        tracing::warn!(
            configured,
            room,
            "SIGMAAI_MAX_CONNECTIONS is above what the file-descriptor limit allows; using the limit"
        );
        room
    } else {
        configured
    };
    tracing::info!(
        file_limit = fds,
        max_connections = cap,
        "file-descriptor limit raised to its hard limit; client connections capped below it"
    );
    cap
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}
