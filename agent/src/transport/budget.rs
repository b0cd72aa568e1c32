//! A global budget of request bytes held at once.
//!
//! `max_message_bytes` bounds one request, not their sum: 128 concurrent
//! 3.8 MiB Plans took the agent from 133 to 932 MiB, and it stayed there.
//! Every request body is counted here as it is read, against one semaphore
//! of bytes shared by all listeners; the bytes stay taken until the request
//! is answered (its message is decoded and held by the handler until then).
//! A request that would go over the budget gets RESOURCE_EXHAUSTED at once,
//! naming the budget, and the agent keeps serving the others.
//!
//! glibc keeps freed memory in its arenas, so after a large request the
//! agent asks it to give free pages back (`malloc_trim`), off the threads
//! that serve gRPC; otherwise RSS would stay at its peak.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::{Layer, Service};

/// A request that held at least this much asks glibc to trim when done.
const TRIM_AFTER: usize = 1024 * 1024;

/// The shared budget; clones share it.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    trimming: Arc<AtomicBool>,
}

impl RequestBudget {
    /// A budget of `total` bytes (at most `u32::MAX` per frame is taken).
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            trimming: Arc::default(),
        }
    }

    /// Request bytes held now.
    pub fn in_flight(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    pub fn layer(&self) -> BudgetLayer {
        BudgetLayer(self.clone())
    }

    fn exhausted(&self) -> Status {
        Status::resource_exhausted(format!(
            "requests in flight hold the agent's budget of {} bytes ([limits] \
             request_bytes_in_flight); retry later",
            self.total
        ))
    }

    /// Gives freed heap back to the system, at most one trim at a time.
    fn trim(&self) {
        if self.trimming.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.trimming.store(false, Ordering::Release);
            return;
        };
        let trimming = self.trimming.clone();
        rt.spawn_blocking(move || {
            release_free_memory();
            trimming.store(false, Ordering::Release);
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it only walks the heap
    // under glibc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// What one request holds; the bytes go back when the request's body and
/// its response future are both gone.
#[derive(Debug)]
struct Held {
    budget: RequestBudget,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Held {
    /// Takes `n` more bytes, or fails without waiting.
    fn take(&self, n: usize) -> Result<(), Status> {
        let Ok(n32) = u32::try_from(n) else {
            return Err(self.budget.exhausted());
        };
        let more = self
            .budget
            .bytes
            .clone()
            .try_acquire_many_owned(n32)
            .map_err(|_| self.budget.exhausted())?;
        let mut permit = self.permit.lock().unwrap_or_else(|p| p.into_inner());
        match permit.as_mut() {
            Some(p) => p.merge(more),
            None => *permit = Some(more),
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let permit = self
            .permit
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let large = permit
            .as_ref()
            .is_some_and(|p| p.num_permits() >= TRIM_AFTER);
        drop(permit);
        if large {
            self.budget.trim();
        }
    }
}

/// A request body counted against the budget as its frames arrive.
#[derive(Debug)]
struct Counted<B> {
    inner: B,
    held: Arc<Held>,
    refused: bool,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.refused {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && let Err(status) = self.held.take(data.len())
        {
            self.refused = true;
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Tower layer counting every request body against a [`RequestBudget`].
#[derive(Debug, Clone)]
pub struct BudgetLayer(RequestBudget);

impl<S> Layer<S> for BudgetLayer {
    type Service = Budgeted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Budgeted {
            inner,
            budget: self.0.clone(),
        }
    }
}

/// The service produced by [`BudgetLayer`].
#[derive(Debug, Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: RequestBudget,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for Budgeted<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let held = Arc::new(Held {
            budget: self.budget.clone(),
            permit: Mutex::new(None),
        });
        let (parts, body) = req.into_parts();
        let body = tonic::body::Body::new(Counted {
            inner: body,
            held: held.clone(),
            refused: false,
        });
        // The service that was polled ready must be the one called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut = inner.call(http::Request::from_parts(parts, body));
        Box::pin(async move {
            let res = fut.await;
            // Answered: the bytes go back once the body is gone too.
            drop(held);
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_taken_until_the_request_is_gone() {
        let budget = RequestBudget::new(100);
        let held = Held {
            budget: budget.clone(),
            permit: Mutex::new(None),
        };
        held.take(60).expect("fits");
        assert_eq!(budget.in_flight(), 60);
        let err = held.take(41).expect_err("over");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("100 bytes"), "{err:?}");
        held.take(40).expect("fits exactly");
        assert_eq!(budget.in_flight(), 100);
        drop(held);
        assert_eq!(budget.in_flight(), 0);
    }
}
