//! The plugin socket's connections, bounded like the admin socket's: a cap
//! on connections, a deadline for a request's headers (which is also how
//! long a kept-alive connection may sit idle), and — in `dispatch` — one
//! for its body. dockerd keeps a handful of connections and sends small
//! requests at once; a client that opens thousands, or sends a request
//! byte by byte, is not dockerd and must not stop dockerd's calls.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::UnixListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections open at once; one more is closed at accept.
pub const MAX_CONNECTIONS: usize = 128;
/// A request's headers must arrive within this; a kept-alive connection
/// with no request for this long is closed.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, then lets each connection
/// finish the call it is in.
pub async fn serve(
    app: Router,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stop = CancellationToken::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(error = %e, "docker plugin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                target: "linkherd::audit",
                cap = MAX_CONNECTIONS,
                "docker plugin socket: refused a connection, the cap is reached"
            );
            continue;
        };
        conns.spawn(connection(app.clone(), stream, stop.clone(), slot));
    }
    stop.cancel();
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// One connection, HTTP/1 with the header deadline, until it ends or the
/// listener stops.
async fn connection(
    app: Router,
    stream: tokio::net::UnixStream,
    stop: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_DEADLINE)
        .max_buf_size(super::MAX_BODY)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "docker plugin connection ended");
    }
}
