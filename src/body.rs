//! The one response body type ward sends: either its own bytes or an
//! upstream's body streamed through.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// Errors a body can fail with while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming response body.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// An upstream body, streamed as it arrives.
pub fn stream(incoming: hyper::body::Incoming) -> Body {
    incoming.map_err(BoxError::from).boxed_unsync()
}

/// `body`, holding `guard` until the body is finished or dropped.
pub fn guarded<G: Send + Unpin + 'static>(body: Body, guard: G) -> Body {
    Guarded {
        inner: body,
        _guard: guard,
    }
    .boxed_unsync()
}

struct Guarded<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        // `Body` is `Unpin`, so projecting through `get_mut` is sound.
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `body` followed by `tail` (used to add ward's marks to HTML pages).
pub fn append(body: Body, tail: impl Into<Bytes>) -> Body {
    let tail = http_body_util::Full::new(tail.into()).map_err(|never| match never {});
    Appended {
        first: Some(body),
        tail,
    }
    .boxed_unsync()
}

struct Appended<T> {
    first: Option<Body>,
    tail: T,
}

impl<T> http_body::Body for Appended<T>
where
    T: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(first) = this.first.as_mut() {
            match std::pin::Pin::new(first).poll_frame(cx) {
                Poll::Ready(None) => this.first = None,
                // Trailers would end the message early; drop them (HTML pages have none).
                Poll::Ready(Some(Ok(frame))) if !frame.is_data() => {
                    return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::new()))));
                }
                other => return other,
            }
        }
        std::pin::Pin::new(&mut this.tail).poll_frame(cx)
    }
}
