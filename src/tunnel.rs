//! The agent connection's transport. One WebSocket per agent carries two things: text
//! frames are the control protocol (the JSON messages of `wire::agent`), binary frames
//! are a yamux session in which the server opens one stream per session a user starts (a
//! TCP forward today). Streams open only from the server's side: the agent accepts them
//! and the server drops any the agent opens, so a workspace can never reach into the
//! server. Each stream starts with one JSON line saying what it is for
//! ([`StreamRequest`]), answered by one JSON line ([`StreamReply`]); raw bytes follow.

use std::fmt::Display;

use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream,
};
use tokio::sync::mpsc;

use std::task::Poll;

use tokio::sync::oneshot;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// Bytes of yamux frames carried per WebSocket binary frame, at most.
const CHUNK: usize = 64 * 1024;
/// Streams open at once on one tunnel, at most (the server allows 64 sessions per agent).
const MAX_STREAMS: usize = 128;
/// Bytes buffered for all the streams of a tunnel together, at most; each stream's window
/// starts at yamux's 256 KiB and grows with its throughput.
const MAX_RECEIVE_WINDOW: usize = 256 * 1024 * 1024;
/// The longest request or reply line at the start of a stream.
const MAX_LINE: usize = 4 * 1024;

/// One WebSocket frame, whichever library carried it.
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

/// What `split` needs of a WebSocket library's message type (axum's on the server,
/// tungstenite's in the agent and CLI).
pub trait WsMessage: Sized + Send + 'static {
    fn text(s: String) -> Self;
    fn binary(b: Vec<u8>) -> Self;
    /// `None` for pings and pongs, which the library answers itself.
    fn frame(self) -> Option<Frame>;
}

impl WsMessage for axum::extract::ws::Message {
    fn text(s: String) -> Self {
        Self::Text(s)
    }
    fn binary(b: Vec<u8>) -> Self {
        Self::Binary(b)
    }
    fn frame(self) -> Option<Frame> {
        match self {
            Self::Text(t) => Some(Frame::Text(t)),
            Self::Binary(b) => Some(Frame::Binary(b)),
            Self::Close(_) => Some(Frame::Close),
            _ => None,
        }
    }
}

impl WsMessage for tokio_tungstenite::tungstenite::Message {
    fn text(s: String) -> Self {
        Self::Text(s)
    }
    fn binary(b: Vec<u8>) -> Self {
        Self::Binary(b)
    }
    fn frame(self) -> Option<Frame> {
        match self {
            Self::Text(t) => Some(Frame::Text(t)),
            Self::Binary(b) => Some(Frame::Binary(b)),
            Self::Close(_) => Some(Frame::Close),
            _ => None,
        }
    }
}

/// A WebSocket taken apart: control text both ways, and the multiplexed bytes.
pub struct Split {
    /// Text frames from the peer; `None` once the socket is gone.
    pub control_rx: mpsc::Receiver<String>,
    /// Text frames to the peer. Dropping every sender closes the socket.
    pub control_tx: mpsc::Sender<String>,
    /// The bytes of the yamux session, in binary frames.
    pub mux: DuplexStream,
    /// Ends when the socket is closed: after every control sender is dropped and the
    /// bytes ended, what was queued has gone out. A process about to exit waits for it.
    pub closed: tokio::task::JoinHandle<()>,
}

/// Takes a WebSocket apart into its control text and its bytes; two tasks pump them until
/// the socket ends, or until every control sender is dropped and the bytes have ended
/// (which closes it). The end of the
/// bytes in one direction travels as an empty binary frame, so a session's relay sees
/// each direction end on its own, as over TCP.
pub fn split<S, M, E>(socket: S) -> Split
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Send + 'static,
    <S as Sink<M>>::Error: Send,
    M: WsMessage,
    E: Display + Send,
{
    let (mut sink, mut stream) = socket.split();
    let (control_in, control_rx) = mpsc::channel::<String>(256);
    let (control_tx, mut control_out) = mpsc::channel::<String>(256);
    let (mux, pipe) = tokio::io::duplex(4 * CHUNK);
    let (mut pipe_read, pipe_write) = tokio::io::split(pipe);
    let reader = tokio::spawn(async move {
        let mut pipe_write = Some(pipe_write);
        while let Some(Ok(msg)) = stream.next().await {
            match msg.frame() {
                Some(Frame::Text(t)) => {
                    let delivered = control_in.send(t).await;
                    if delivered.is_err() {
                        break;
                    }
                }
                // An empty binary frame is the peer's end of file (WebSockets have no
                // half-close): the bytes end, the socket stays for the other direction.
                Some(Frame::Binary(b)) if b.is_empty() => {
                    if let Some(mut w) = pipe_write.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Some(Frame::Binary(b)) => {
                    let Some(w) = pipe_write.as_mut() else { break };
                    if w.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Frame::Close) => break,
                None => {}
            }
        }
        // The peer is gone: the control loop sees its channel end, the bytes their end
        // of file (a split half must be shut down: dropping it closes nothing).
        if let Some(mut w) = pipe_write {
            let _ = w.shutdown().await;
        }
    });
    let closed = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let (mut control_open, mut mux_open) = (true, true);
        // Until both sources ended: the last bytes of a session may still be in the pipe
        // when its relay finishes and drops the control sender (closing on that alone
        // lost a port-forward's final bytes).
        while control_open || mux_open {
            tokio::select! {
                // Control first: a goodbye queued as the session ends still goes out.
                biased;
                text = control_out.recv(), if control_open => match text {
                    Some(t) => {
                        if sink.send(M::text(t)).await.is_err() {
                            break;
                        }
                    }
                    None => control_open = false,
                },
                n = pipe_read.read(&mut buf), if mux_open => match n {
                    Ok(0) | Err(_) => {
                        mux_open = false;
                        if sink.send(M::binary(Vec::new())).await.is_err() {
                            break;
                        }
                    }
                    Ok(n) => {
                        if sink.send(M::binary(buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = sink.close().await;
        reader.abort();
    });
    Split {
        control_rx,
        control_tx,
        mux,
        closed,
    }
}

fn connection(mux: DuplexStream, mode: yamux::Mode) -> yamux::Connection<Compat<DuplexStream>> {
    let mut config = yamux::Config::default();
    // Room for the sessions an agent may carry (64) and the ones being opened; the
    // receive windows of all streams together stay far below yamux's default GiB.
    config.set_max_num_streams(MAX_STREAMS);
    config.set_max_connection_receive_window(Some(MAX_RECEIVE_WINDOW));
    yamux::Connection::new(mux.compat(), config, mode)
}

/// A stream of the tunnel, with tokio's byte traits. On the server's end it holds one of
/// the tunnel's stream permits until dropped.
pub struct StreamHandle {
    inner: Compat<yamux::Stream>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AsyncRead for StreamHandle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StreamHandle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Opener = oneshot::Sender<yamux::Result<yamux::Stream>>;

/// Streams the server keeps open on one tunnel at once, at most: fewer than the agent
/// accepts ([`MAX_STREAMS`]), since one stream past that is a protocol error that closes
/// the whole tunnel (and every session in it).
const MAX_OPEN_STREAMS: usize = MAX_STREAMS - 8;

/// Opens streams on the server's end of a tunnel; cheap to clone.
#[derive(Clone)]
pub struct Control {
    opens: mpsc::Sender<Opener>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Control {
    /// A new stream to the agent; an error once the tunnel is gone, or while it already
    /// carries as many streams as it may.
    pub async fn open_stream(&self) -> std::io::Result<StreamHandle> {
        let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the tunnel closed");
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            std::io::Error::other(format!(
                "the agent's tunnel already carries {MAX_OPEN_STREAMS} streams: close some sessions or app tabs"
            ))
        })?;
        let (tx, rx) = oneshot::channel();
        self.opens.send(tx).await.map_err(|_| gone())?;
        match rx.await {
            Ok(Ok(stream)) => Ok(StreamHandle {
                inner: stream.compat(),
                _permit: Some(permit),
            }),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(gone()),
        }
    }
}

/// The server's end: it opens streams through the returned [`Control`]; streams the agent
/// tries to open are dropped (which resets them). Runs until the socket ends.
pub fn server_side(mux: DuplexStream) -> (Control, tokio::task::JoinHandle<()>) {
    let (tx, opens) = mpsc::channel(16);
    let conn = connection(mux, yamux::Mode::Client);
    let task = tokio::spawn(drive(conn, Some(opens), drop));
    let control = Control {
        opens: tx,
        permits: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_STREAMS)),
    };
    (control, task)
}

/// The agent's end: every stream the server opens is handed to `serve`.
pub async fn agent_side<F, Fut>(mux: DuplexStream, serve: F)
where
    F: Fn(StreamHandle) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let conn = connection(mux, yamux::Mode::Server);
    drive(conn, None, |s: yamux::Stream| {
        tokio::spawn(serve(StreamHandle {
            inner: s.compat(),
            _permit: None,
        }));
    })
    .await
}

/// Polls a yamux connection until it ends: it only moves (frames in and out, window
/// updates for every stream) while polled. Stream opens queued on `opens` are answered in
/// order; streams the peer opens go to `inbound`.
async fn drive(
    mut conn: yamux::Connection<Compat<DuplexStream>>,
    mut opens: Option<mpsc::Receiver<Opener>>,
    mut inbound: impl FnMut(yamux::Stream),
) {
    let mut waiting = std::collections::VecDeque::<Opener>::new();
    std::future::poll_fn(|cx| loop {
        while let Some(rx) = opens.as_mut() {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(opener)) => waiting.push_back(opener),
                Poll::Ready(None) => opens = None,
                Poll::Pending => break,
            }
        }
        while !waiting.is_empty() {
            let Poll::Ready(opened) = conn.poll_new_outbound(cx) else {
                break;
            };
            if let Some(opener) = waiting.pop_front() {
                let _ = opener.send(opened);
            }
        }
        match conn.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(stream))) => inbound(stream),
            Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// What a stream is for: the first line the server writes on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamRequest {
    /// Connect to this TCP port on the agent's loopback and relay bytes.
    Tcp { port: u16 },
    /// Speak SSH with the agent's embedded server.
    Ssh,
    /// Send back every byte (`hangar ping` and `speedtest`).
    Echo,
    /// Attach to the reconnecting terminal `id`, started at this size if it is new: a
    /// login shell, or the shell running `command` (a `command` app).
    Pty {
        id: String,
        rows: u16,
        cols: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
}

/// The agent's answer, before any bytes flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReply {
    /// Why the session could not start (nothing follows then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes one JSON line.
pub async fn write_line<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    v: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Reads one JSON line of at most [`MAX_LINE`] bytes, byte by byte so that nothing after
/// it is consumed.
pub async fn read_line<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<T> {
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::with_capacity(1, r);
    loop {
        let buf = reader.fill_buf().await?;
        let Some(&b) = buf.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stream ended before its first line",
            ));
        };
        reader.consume(1);
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the stream's first line is too long",
            ));
        }
    }
    serde_json::from_slice(&line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Relays bytes both ways until both directions ended; returns (a→b, b→a) byte counts.
pub async fn relay<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::io::copy_bidirectional(a, b).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_is_read_without_taking_what_follows() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_line(&mut a, &StreamRequest::Tcp { port: 8080 })
            .await
            .unwrap();
        a.write_all(b"raw bytes").await.unwrap();
        drop(a);
        let req: StreamRequest = read_line(&mut b).await.unwrap();
        assert_eq!(req, StreamRequest::Tcp { port: 8080 });
        let mut rest = String::new();
        b.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "raw bytes");
    }

    #[tokio::test]
    async fn long_or_broken_lines_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(&vec![b'x'; MAX_LINE + 10]).await.unwrap();
        let err = read_line::<_, StreamRequest>(&mut b).await.unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"{\"kind\":\"rm -rf\"}\n").await.unwrap();
        assert!(read_line::<_, StreamRequest>(&mut b).await.is_err());
    }

    #[tokio::test]
    async fn streams_opened_by_the_server_reach_the_agent() {
        let (server_io, agent_io) = tokio::io::duplex(64 * 1024);
        let (control, _task) = server_side(server_io);
        tokio::spawn(agent_side(agent_io, |mut s: StreamHandle| async move {
            let req: StreamRequest = read_line(&mut s).await.unwrap();
            let StreamRequest::Tcp { port } = req else {
                panic!("{req:?}")
            };
            s.write_all(format!("port {port}").as_bytes())
                .await
                .unwrap();
            s.shutdown().await.unwrap();
        }));
        for port in [1u16, 2, 3] {
            let mut s = control.open_stream().await.unwrap();
            write_line(&mut s, &StreamRequest::Tcp { port })
                .await
                .unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, format!("port {port}"));
        }
    }

    /// A server and an agent joined by an in-memory pipe; the agent echoes every stream.
    fn echoing_tunnel() -> Control {
        let (server_io, agent_io) = tokio::io::duplex(64 * 1024);
        let (control, _task) = server_side(server_io);
        tokio::spawn(agent_side(agent_io, |s: StreamHandle| async move {
            let (mut r, mut w) = tokio::io::split(s);
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        }));
        control
    }

    #[tokio::test]
    async fn a_stream_written_far_past_its_window_keeps_flowing() {
        // The agent only writes back; the server writes everything before reading. Both
        // sides must take window updates while they only write.
        let control = echoing_tunnel();
        let s = control.open_stream().await.unwrap();
        let (mut r, mut w) = tokio::io::split(s);
        let sent = 16 * 1024 * 1024;
        let writer = tokio::spawn(async move {
            w.write_all(&vec![7u8; sent]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), sent);
        assert!(got.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn streams_past_the_limit_are_refused_and_the_tunnel_stays() {
        let control = echoing_tunnel();
        let mut held = Vec::new();
        for _ in 0..MAX_OPEN_STREAMS {
            held.push(control.open_stream().await.unwrap());
        }
        let refused = control.open_stream().await.err().expect("one too many");
        assert!(refused.to_string().contains("already carries"), "{refused}");
        // Closing one makes room; the streams still open still work.
        drop(held.pop());
        let mut again = control.open_stream().await.unwrap();
        again.write_all(b"ok").await.unwrap();
        again.shutdown().await.unwrap();
        let mut got = String::new();
        again.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "ok");
        let first = &mut held[0];
        first.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        first.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_does_not_stall_the_others() {
        let control = echoing_tunnel();
        let mut stuck = control.open_stream().await.unwrap();
        // More than its window: the echo fills it, and nobody reads it here.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            stuck.write_all(&vec![1u8; 1024 * 1024]),
        )
        .await;
        let mut other = control.open_stream().await.unwrap();
        other.write_all(b"still moving").await.unwrap();
        other.shutdown().await.unwrap();
        let mut got = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            other.read_to_string(&mut got),
        )
        .await
        .expect("a second stream stalled behind an unread one")
        .unwrap();
        assert_eq!(got, "still moving");
    }

    #[tokio::test]
    async fn the_last_bytes_go_out_before_the_socket_closes() {
        // A real WebSocket on loopback: one side writes, ends its bytes and drops
        // everything at once; the other still gets every byte and then the end.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let sent = 8 * 1024 * 1024;
        let sender = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let Split { mut mux, .. } = split(ws);
            mux.write_all(&vec![9u8; sent]).await.unwrap();
            mux.shutdown().await.unwrap();
        });
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let Split {
            mut mux,
            control_tx: _keep,
            ..
        } = split(ws);
        let mut got = Vec::new();
        mux.read_to_end(&mut got).await.unwrap();
        sender.await.unwrap();
        assert_eq!(got.len(), sent);
    }
}
