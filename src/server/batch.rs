//! An HTTP/2 connection's writes of one turn, sent to the client together.
//!
//! h2 flushes after every DATA frame of more than 256 bytes, so each answer on a
//! connection went out in a TLS record and a system call of its own, even when the
//! answers to several of its streams were ready at once. Over a [`Batched`] stream a
//! flush only marks the bytes as due; [`Flushed`], which polls the connection, sends
//! everything due once the connection has done all it can in that turn. Nothing due
//! is held past the turn: latency is unchanged, only the write is shared.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept before a write goes through at once (and waits for the socket): a TLS
/// record's worth, room for several small answers. A write this large, with nothing kept
/// before it, goes straight through. A buffer grown past it by a larger batch is let go
/// once sent, so an idle connection holds at most this much.
const KEEP: usize = 16 * 1024;

/// A client stream whose writes are kept until the end of the turn (when batching).
pub struct Batched<S> {
    out: Arc<Mutex<Out<S>>>,
    batching: bool,
}

/// The stream and what is due to it.
struct Out<S> {
    io: S,
    due: Vec<u8>,
    /// How much of `due` the stream has taken.
    sent: usize,
    /// Bytes the stream took and has not flushed: a TLS stream may still hold part of a
    /// record it could not write, which only a flush sends.
    unflushed: bool,
    /// A failed write at the end of a turn, reported at the next use.
    failed: Option<io::ErrorKind>,
}

impl<S> Batched<S> {
    /// Wraps `io`; keeps writes for the turn only when `batching`, else passes them on.
    pub fn new(io: S, batching: bool) -> Batched<S> {
        let out = Out {
            io,
            due: Vec::new(),
            sent: 0,
            unflushed: false,
            failed: None,
        };
        Batched {
            out: Arc::new(Mutex::new(out)),
            batching,
        }
    }

    /// A handle for [`Flushed`] to send what is due.
    pub fn due(&self) -> Due<S> {
        Due(self.out.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Out<S>> {
        lock(&self.out)
    }
}

/// The lock is only ever taken by the connection's own task, so it is never
/// contended; a panic while it was held cannot have left `Out` half changed in a
/// way a write could not recover from.
fn lock<S>(out: &Mutex<Out<S>>) -> MutexGuard<'_, Out<S>> {
    out.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncWrite + Unpin> Out<S> {
    /// Writes what is due and flushes the stream, until done or the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.due.len() {
            let rest = self.due.get(self.sent..).unwrap_or_default();
            match Pin::new(&mut self.io).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.sent += n;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.due.is_empty() {
            self.sent = 0;
            if self.due.capacity() > KEEP {
                self.due = Vec::new();
            } else {
                self.due.clear();
            }
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Nothing kept and nothing left in the stream to flush.
    fn is_done(&self) -> bool {
        self.due.is_empty() && !self.unflushed
    }

    /// Keeps `bufs` for the end of the turn; sends what is due first when too much is.
    fn poll_keep(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if self.due.len() >= KEEP {
            std::task::ready!(self.poll_send(cx))?;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.due.is_empty() && total >= KEEP {
            let written = std::task::ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
            self.unflushed = true;
            return Poll::Ready(Ok(written));
        }
        for b in bufs {
            self.due.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Batched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut out = self.lock();
        if let Some(kind) = out.failed {
            return Poll::Ready(Err(kind.into()));
        }
        Pin::new(&mut out.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Batched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut out = self.lock();
        if !self.batching {
            return Pin::new(&mut out.io).poll_write(cx, buf);
        }
        out.poll_keep(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut out = self.lock();
        if !self.batching {
            return Pin::new(&mut out.io).poll_write_vectored(cx, bufs);
        }
        out.poll_keep(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.batching || self.lock().io.is_write_vectored()
    }

    /// Batching: the bytes are due and go at the end of the turn ([`Flushed`]).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.lock();
        if !self.batching {
            return Pin::new(&mut out.io).poll_flush(cx);
        }
        match out.failed {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Everything due is sent before the stream is shut.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.lock();
        std::task::ready!(out.poll_send(cx))?;
        Pin::new(&mut out.io).poll_shutdown(cx)
    }
}

/// The other end of a [`Batched`] stream, for [`Flushed`].
pub struct Due<S>(Arc<Mutex<Out<S>>>);

impl<S: AsyncWrite + Unpin> Due<S> {
    /// Sends what is due. A failure is kept for the connection's next use of the
    /// stream, which then ends it.
    fn poll_send(&self, cx: &mut Context<'_>) {
        let mut out = lock(&self.0);
        if out.failed.is_some() || out.is_done() {
            return;
        }
        if let Poll::Ready(Err(e)) = out.poll_send(cx) {
            out.failed = Some(e.kind());
            out.due.clear();
            out.sent = 0;
            // Polled again at once, the connection meets the failure and ends.
            cx.waker().wake_by_ref();
        }
    }
}

/// A connection's future, followed in each turn by sending what it left due.
pub struct Flushed<'a, F, S> {
    conn: Pin<&'a mut F>,
    due: &'a Due<S>,
}

impl<'a, F, S> Flushed<'a, F, S> {
    /// Polls `conn`, then sends what `due` holds.
    pub fn new(conn: Pin<&'a mut F>, due: &'a Due<S>) -> Flushed<'a, F, S> {
        Flushed { conn, due }
    }
}

impl<F: Future, S: AsyncWrite + Unpin> Future for Flushed<'_, F, S> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = self.conn.as_mut().poll(cx);
        // When the socket is full, its waker brings the task back to send the rest.
        self.due.poll_send(cx);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A socket for the tests: every write it is given, as given (what a real socket
    /// would see as system calls), and its flushes, the first `stalls` of which are
    /// Pending, as a TLS stream's is when part of a record could not be written yet.
    #[derive(Clone, Default)]
    struct Socket(Arc<Mutex<Seen>>);

    #[derive(Default)]
    struct Seen {
        writes: Vec<Vec<u8>>,
        stalls: usize,
        flush_calls: usize,
        flushed: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut seen = self.0.lock().unwrap();
            seen.flush_calls += 1;
            if seen.stalls > 0 {
                seen.stalls -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            seen.flushed = true;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What is written and flushed in one turn goes out in one write at its end.
    #[tokio::test]
    async fn writes_of_a_turn_go_out_together_at_its_end() {
        let socket = Socket::default();
        let mut batched = Batched::new(socket.clone(), true);
        let due = batched.due();
        let mut conn = Box::pin(async move {
            batched.write_all(b"one ").await?;
            batched.flush().await?;
            batched.write_all(b"two").await?;
            batched.flush().await?;
            tokio::task::yield_now().await;
            batched.write_all(b"three").await?;
            batched.flush().await
        });
        Flushed::new(conn.as_mut(), &due).await.unwrap();
        let writes = socket.0.lock().unwrap().writes.clone();
        assert_eq!(writes, vec![b"one two".to_vec(), b"three".to_vec()]);
    }

    /// A flush the stream could not finish is finished at the next turn, though
    /// nothing new is due by then.
    #[tokio::test]
    async fn an_unfinished_flush_is_finished() {
        let socket = Socket::default();
        socket.0.lock().unwrap().stalls = 1;
        let mut batched = Batched::new(socket.clone(), true);
        let due = batched.due();
        let mut conn = Box::pin(async move {
            batched.write_all(b"the end of an answer").await?;
            batched.flush().await?;
            tokio::task::yield_now().await;
            Ok::<_, io::Error>(())
        });
        Flushed::new(conn.as_mut(), &due).await.unwrap();
        let seen = socket.0.lock().unwrap();
        assert_eq!((seen.flush_calls, seen.flushed), (2, true));
    }

    /// Without batching every write goes straight through.
    #[tokio::test]
    async fn without_batching_writes_go_at_once() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut plain = Batched::new(near, false);
        plain.write_all(b"now").await.unwrap();
        plain.flush().await.unwrap();
        let mut got = [0u8; 3];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"now");
    }

    /// Shutting the stream sends what was due first.
    #[tokio::test]
    async fn shutdown_sends_what_is_due() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut batched = Batched::new(near, true);
        batched.write_all(b"last words").await.unwrap();
        batched.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    }

    /// More than the stream can take waits for the peer instead of growing without end.
    #[tokio::test]
    async fn a_full_socket_holds_the_writer_back() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut batched = Batched::new(near, true);
        let due = batched.due();
        let big = vec![7u8; 3 * KEEP];
        let mut writing = Box::pin(async {
            for chunk in big.chunks(1000) {
                batched.write_all(chunk).await?;
                // Kept without a bound, the buffer would grow to hold all 3 × KEEP.
                assert!(lock(&due.0).due.len() <= KEEP + 1000);
            }
            batched.shutdown().await
        });
        let reader = async {
            let mut got = vec![0u8; 3 * KEEP];
            far.read_exact(&mut got).await.map(|_| got)
        };
        let (written, got) = tokio::join!(Flushed::new(writing.as_mut(), &due), reader);
        written.unwrap();
        assert_eq!(got.unwrap(), big);
        // The buffer grew past KEEP on the way (1000-byte writes double it to 32,000), and
        // was let go once its bytes were sent: what stays is at most KEEP.
        assert!(lock(&due.0).due.capacity() <= KEEP);
    }
}
