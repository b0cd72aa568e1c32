//! A cap on the connections of the local listeners (the unix socket and
//! the plaintext loopback one), as the mTLS listener has its own: without
//! it, a local client that opens connections without end takes the
//! agent's descriptors (nofile is 1024 under systemd), and with them its
//! netlink sockets and state files. A connection over the cap is closed at
//! once and logged.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::Connected;

/// A connection holding its place under the cap until the server drops it.
#[derive(Debug)]
pub struct Capped<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
}

/// Admits the connections of `incoming` while fewer than `max` are open.
pub fn capped<S, IO>(
    incoming: S,
    max: usize,
    listener: &'static str,
) -> impl Stream<Item = io::Result<Capped<IO>>>
where
    S: Stream<Item = io::Result<IO>>,
{
    let slots = Arc::new(Semaphore::new(max));
    incoming.filter_map(move |accepted| {
        let slots = slots.clone();
        async move {
            let io = match accepted {
                Ok(io) => io,
                Err(e) => return Some(Err(e)),
            };
            match slots.try_acquire_owned() {
                Ok(slot) => Some(Ok(Capped { io, _slot: slot })),
                Err(_) => {
                    tracing::warn!(
                        target: "linkherd::audit", listener, cap = max,
                        "refused a connection: the listener's connection cap is reached \
                         ([limits] local_connections)"
                    );
                    None
                }
            }
        }
    })
}

impl<IO: Connected> Connected for Capped<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Capped<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Capped<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
