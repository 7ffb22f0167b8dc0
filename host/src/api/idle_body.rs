//! A request body that fails once it pauses longer than a timeout (`body_timeout`, 408), with the timer
//! started only when the body actually waits.
//!
//! tower-http's `TimeoutBody` starts a timer on every poll, before looking at the body. A small JSON body
//! is nearly always in hyper's buffer already, so that timer was never needed, yet registering it took
//! the runtime's timer lock and, its 10 s deadline being the earliest of the pending timers, woke the
//! timer driver: ~3 % of a cached vend's server CPU. Here the body is polled first, and the timer exists
//! only while the body is pending.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Sleep, sleep};

/// The body paused longer than the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused longer than the body timeout")]
pub struct BodyStalled;

pin_project_lite::pin_project! {
    /// `body`, failing with [`BodyStalled`] once it has been pending for longer than `timeout` at a
    /// stretch.
    pub struct IdleTimeoutBody<B> {
        #[pin]
        body: B,
        #[pin]
        pause: Option<Sleep>,
        timeout: Duration,
    }
}

impl<B> IdleTimeoutBody<B> {
    /// `body` with `timeout` on each pause.
    pub fn new(timeout: Duration, body: B) -> Self {
        IdleTimeoutBody {
            body,
            pause: None,
            timeout,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            // Whatever comes next may pause again: the next pause gets a timer of its own.
            this.pause.set(None);
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.pause.is_none() {
            this.pause.set(Some(sleep(*this.timeout)));
        }
        let pause = this.pause.as_pin_mut().expect("set above");
        match pause.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;
    use tokio::sync::mpsc;

    /// A body of what the channel gets, ending when the sender is gone.
    struct Channel(mpsc::Receiver<Bytes>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    #[test]
    fn a_body_that_is_there_is_read_without_starting_a_timer() {
        // A runtime without timers, where starting one panics.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let body = IdleTimeoutBody::new(
            Duration::from_secs(10),
            Full::new(Bytes::from_static(b"{}")),
        );
        let read = runtime.block_on(body.collect()).expect("read").to_bytes();
        assert_eq!(&read[..], b"{}");
    }

    #[tokio::test]
    async fn a_body_that_pauses_too_long_fails_as_stalled() {
        let (sender, receiver) = mpsc::channel(1);
        let body = IdleTimeoutBody::new(Duration::from_millis(200), Channel(receiver));
        sender.send(Bytes::from_static(b"a")).await.unwrap();
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"a"));
        // Nothing more is sent, and the sender stays open: the pause runs into the timeout.
        let error = body.frame().await.expect("an error").unwrap_err();
        assert!(error.is::<BodyStalled>(), "{error}");
        drop(sender);
    }

    #[tokio::test]
    async fn each_pause_gets_the_whole_timeout() {
        let (sender, receiver) = mpsc::channel(1);
        let body = IdleTimeoutBody::new(Duration::from_millis(1500), Channel(receiver));
        let feeder = tokio::spawn(async move {
            // Three pauses of 0.6 s: 1.8 s in all, longer than the timeout, each well under it.
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(600)).await;
                sender.send(Bytes::from_static(b"x")).await.unwrap();
            }
        });
        let read = body.collect().await.expect("read").to_bytes();
        assert_eq!(&read[..], b"xxx");
        feeder.await.unwrap();
    }
}
