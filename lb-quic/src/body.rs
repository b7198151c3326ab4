//! An HTTP/3 request body as an `http_body::Body`, so the proxy streams it to the backend like
//! any other (quinn's flow control is the backpressure: unread data stops the client).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::{Body, Frame, SizeHint};
use lb_tcp::http::body::BoxError;

/// The receiving half of a request stream.
pub(crate) struct H3Body {
    stream: RequestStream<h3_quinn::RecvStream, Bytes>,
    /// From `content-length`, when the client sent one.
    remaining: Option<u64>,
    state: State,
}

#[derive(PartialEq, Eq)]
enum State {
    Data,
    Trailers,
    Done,
}

impl H3Body {
    pub(crate) fn new(stream: RequestStream<h3_quinn::RecvStream, Bytes>, content_length: Option<u64>) -> Self {
        Self { stream, remaining: content_length, state: State::Data }
    }
}

impl Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Data => match std::task::ready!(this.stream.poll_recv_data(cx)) {
                    Ok(Some(mut buf)) => {
                        let bytes = buf.copy_to_bytes(buf.remaining());
                        if let Some(r) = &mut this.remaining {
                            *r = r.saturating_sub(bytes.len() as u64);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Ok(None) => this.state = State::Trailers,
                    Err(e) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                },
                State::Trailers => {
                    let r = std::task::ready!(this.stream.poll_recv_trailers(cx));
                    this.state = State::Done;
                    return Poll::Ready(match r {
                        Ok(Some(t)) => Some(Ok(Frame::trailers(t))),
                        Ok(None) => None,
                        Err(e) => Some(Err(Box::new(e))),
                    });
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
