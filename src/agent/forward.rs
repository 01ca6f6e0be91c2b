//! What OpenSSH's `-R` and `-A` need of the agent's SSH server. A remote forward listens
//! on the workspace's loopback (as sshd does with `GatewayPorts no`) and sends each
//! connection back to the client in a `forwarded-tcpip` channel; agent forwarding puts a
//! socket in a private directory, named by `SSH_AUTH_SOCK` in the session, and sends each
//! connection to it back in an `auth-agent@openssh.com` channel.

use std::collections::HashMap;

use russh::server::Handle;
use tokio::net::{TcpListener, UnixListener};

/// Remote forwards one SSH connection holds, at most.
const MAX_REMOTE_FORWARDS: usize = 16;

/// The `-R` listeners of one SSH connection; they close with it.
#[derive(Default)]
pub struct RemoteForwards {
    by_port: HashMap<u32, tokio::task::AbortHandle>,
}

impl RemoteForwards {
    /// Listens on loopback at `port` (0: any free port, written back) and relays every
    /// connection to the client; false when it cannot.
    pub async fn add(&mut self, address: &str, port: &mut u32, handle: Handle) -> bool {
        let Ok(wanted) = u16::try_from(*port) else {
            return false;
        };
        if self.by_port.len() >= MAX_REMOTE_FORWARDS || self.by_port.contains_key(port) {
            return false;
        }
        let listener = match TcpListener::bind(("127.0.0.1", wanted)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(port = wanted, error = %e, "a remote forward cannot listen");
                return false;
            }
        };
        let Ok(bound) = listener.local_addr() else {
            return false;
        };
        *port = u32::from(bound.port());
        let (address, port) = (address.to_string(), *port);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, peer)) = listener.accept().await {
                let handle = handle.clone();
                let address = address.clone();
                tokio::spawn(async move {
                    let opened = handle
                        .channel_open_forwarded_tcpip(
                            address,
                            port,
                            peer.ip().to_string(),
                            u32::from(peer.port()),
                        )
                        .await;
                    if let Ok(channel) = opened {
                        let mut stream = channel.into_stream();
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
                    }
                });
            }
        });
        self.by_port.insert(port, task.abort_handle());
        true
    }

    pub fn cancel(&mut self, port: u32) -> bool {
        match self.by_port.remove(&port) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

impl Drop for RemoteForwards {
    fn drop(&mut self) {
        for task in self.by_port.values() {
            task.abort();
        }
    }
}

/// A forwarded SSH agent's socket, for one session; removed with it.
pub struct AgentSocket {
    dir: tempfile::TempDir,
    task: tokio::task::AbortHandle,
}

impl AgentSocket {
    /// A socket only this user can reach (its directory is private), relayed to the
    /// client's agent.
    pub fn new(handle: Handle) -> std::io::Result<AgentSocket> {
        let dir = tempfile::Builder::new().prefix("hangar-ssh-").tempdir()?;
        let listener = UnixListener::bind(dir.path().join("agent.sock"))?;
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    if let Ok(channel) = handle.channel_open_agent().await {
                        let mut stream = channel.into_stream();
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
                    }
                });
            }
        });
        Ok(AgentSocket {
            dir,
            task: task.abort_handle(),
        })
    }

    /// What `SSH_AUTH_SOCK` says.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("agent.sock")
    }
}

impl Drop for AgentSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}
