//! What the agent does with each stream the server opens in its tunnel: read the request
//! line, answer whether the session could start, then serve it.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ssh::SessionEnv;
use crate::tunnel::{self, StreamHandle, StreamReply, StreamRequest};

/// Serves one stream the server opened; a stream that asks for nothing known is answered
/// with an error and closed.
pub async fn serve(mut stream: StreamHandle, env: Arc<SessionEnv>) {
    let request = match tunnel::read_line::<_, StreamRequest>(&mut stream).await {
        Ok(r) => r,
        Err(e) => {
            let reply = StreamReply {
                error: Some(format!("this agent does not understand the request: {e}")),
            };
            let _ = tunnel::write_line(&mut stream, &reply).await;
            return;
        }
    };
    match request {
        StreamRequest::Tcp { port } => forward(stream, port).await,
        StreamRequest::Pty {
            id,
            rows,
            cols,
            command,
        } => {
            let terminal = if super::pty::valid_id(&id) {
                super::pty::attach_or_start(&id, rows, cols, command.as_deref(), &env)
            } else {
                Err("a terminal id is letters, digits and hyphens, at most 64".to_string())
            };
            match terminal {
                Ok(t) => {
                    if tunnel::write_line(&mut stream, &StreamReply { error: None })
                        .await
                        .is_ok()
                    {
                        super::pty::attach(stream, t).await;
                    }
                }
                Err(error) => {
                    let _ =
                        tunnel::write_line(&mut stream, &StreamReply { error: Some(error) }).await;
                }
            }
        }
        StreamRequest::Echo => {
            if tunnel::write_line(&mut stream, &StreamReply { error: None })
                .await
                .is_ok()
            {
                let (mut r, mut w) = tokio::io::split(stream);
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            }
        }
        StreamRequest::Ssh => {
            if tunnel::write_line(&mut stream, &StreamReply { error: None })
                .await
                .is_ok()
            {
                super::ssh::serve(stream, env).await;
            }
        }
    }
}

/// Relays the stream to a TCP port on the workspace's loopback.
async fn forward(mut stream: StreamHandle, port: u16) {
    let mut target = match connect_local(port).await {
        Ok(t) => t,
        Err(e) => {
            let reply = StreamReply {
                error: Some(format!(
                    "nothing accepts connections on port {port} in the workspace: {e}"
                )),
            };
            let _ = tunnel::write_line(&mut stream, &reply).await;
            return;
        }
    };
    if tunnel::write_line(&mut stream, &StreamReply { error: None })
        .await
        .is_err()
    {
        return;
    }
    let _ = target.set_nodelay(true);
    if let Err(e) = tunnel::relay(&mut stream, &mut target).await {
        tracing::debug!(port, error = %e, "port forward ended");
    }
}

/// `localhost:port` as a program in the workspace would reach it: IPv4 first, then IPv6.
async fn connect_local(port: u16) -> std::io::Result<TcpStream> {
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => Ok(s),
        Err(v4) => TcpStream::connect(("::1", port)).await.map_err(|_| v4),
    }
}
