//! The agent's embedded SSH server (`russh`). It listens on no port: each SSH connection
//! is one tunnel stream the server opened after authorizing the user, so any SSH
//! authentication is accepted here (the tunnel already decided who may come in). A
//! session runs a login shell or a command as the agent's user, on a PTY when the client
//! asks for one (`portable-pty`) or on pipes otherwise (stdout, stderr and the exit status
//! come back apart and unchanged); `sftp` runs the system's `sftp-server`, as sshd does;
//! `direct-tcpip` channels (`ssh -L`) connect from inside the workspace.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use portable_pty::{CommandBuilder, MasterPty, PtySize};
use russh::server::{Auth, ChannelOpenHandle, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::provider::contract;
use crate::tunnel::StreamHandle;

/// Where sessions start and what they see: the agent's directory and the template's env.
#[derive(Debug, Clone, Default)]
pub struct SessionEnv {
    pub dir: std::path::PathBuf,
    pub env: Vec<(String, String)>,
    /// The template's `motd_file`, shown at interactive logins.
    pub motd_file: Option<std::path::PathBuf>,
}

/// The most of a motd file shown.
const MAX_MOTD: u64 = 64 * 1024;

/// The message of the day for an interactive login: the motd file's text with terminal
/// line ends, unless the user made `~/.hushlogin` (as OpenSSH's login does).
fn motd(env: &SessionEnv) -> Option<Vec<u8>> {
    use std::io::Read;
    let path = env.motd_file.as_ref()?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    if home.is_some_and(|h| h.join(".hushlogin").exists()) {
        return None;
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_MOTD)
        .read_to_end(&mut text)
        .ok()?;
    let mut out = Vec::with_capacity(text.len() + 64);
    for &b in &text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    Some(out)
}

/// Input chunks (each at most one SSH packet, 32 KiB) queued for a program at most.
const INPUT_QUEUE: usize = 256;
/// How long a program whose client left has after SIGHUP before SIGKILL.
const HANGUP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where Debian, Fedora and Alpine keep OpenSSH's SFTP server.
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
];

/// One host key per agent process, made on first use.
fn config() -> Arc<russh::server::Config> {
    static CONFIG: OnceLock<Arc<russh::server::Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let seed: [u8; 32] = rand::random();
            let key = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
            Arc::new(russh::server::Config {
                keys: vec![russh::keys::PrivateKey::from(key)],
                auth_rejection_time: std::time::Duration::ZERO,
                auth_rejection_time_initial: Some(std::time::Duration::ZERO),
                inactivity_timeout: None,
                nodelay: true,
                ..Default::default()
            })
        })
        .clone()
}

/// Serves one SSH connection on a tunnel stream until the client leaves.
pub async fn serve(stream: StreamHandle, env: Arc<SessionEnv>) {
    let handler = Handler {
        env,
        forwards: Default::default(),
    };
    match russh::server::run_stream(config(), stream, handler).await {
        Ok(session) => {
            if let Err(e) = session.await {
                tracing::debug!(error = %e, "ssh session ended");
            }
        }
        Err(e) => tracing::warn!(error = %e, "ssh handshake failed"),
    }
}

struct Handler {
    env: Arc<SessionEnv>,
    forwards: super::forward::RemoteForwards,
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    // The user was authorized by the server before this stream existed.
    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }
    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }
    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(run_channel(channel, self.env.clone(), session.handle()));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(port) = u16::try_from(port) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        // Connected outside the handler, with a limit: a slow target must not stall the
        // whole SSH connection.
        let host = host.to_string();
        tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
                Ok(Ok(mut target)) => {
                    reply.accept().await;
                    let mut stream = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut target).await;
                }
                _ => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }

    // Requests are answered here; `run_channel` acts on them from the channel's queue.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
    // `ssh -R`: a listener on the workspace's loopback, for as long as this connection.
    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.forwards.add(address, port, session.handle()).await)
    }
    async fn cancel_tcpip_forward(
        &mut self,
        _address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.forwards.cancel(port))
    }
    // `ssh -A`: the socket is made by `run_channel`, which sees the request too.
    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" && sftp_server().is_some() {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

fn sftp_server() -> Option<&'static str> {
    SFTP_SERVERS
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
}

/// What a session channel runs.
enum Program {
    Shell,
    Command(String),
    Sftp(&'static str),
}

struct PtyRequest {
    term: String,
    size: PtySize,
}

/// Reads the channel's requests until it asks to run something, then runs it.
async fn run_channel(mut channel: Channel<Msg>, env: Arc<SessionEnv>, handle: Handle) {
    let mut pty: Option<PtyRequest> = None;
    let mut extra: HashMap<String, String> = HashMap::new();
    let mut agent_socket = None;
    let program = loop {
        match channel.wait().await {
            None => return,
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            }) => {
                pty = Some(PtyRequest {
                    term,
                    size: size(col_width, row_height),
                })
            }
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) => {
                extra.insert(variable_name, variable_value);
            }
            Some(ChannelMsg::AgentForward { .. }) => {
                match super::forward::AgentSocket::new(handle.clone()) {
                    Ok(socket) => {
                        extra.insert("SSH_AUTH_SOCK".into(), socket.path().display().to_string());
                        agent_socket = Some(socket);
                    }
                    Err(e) => tracing::warn!(error = %e, "no socket for a forwarded agent"),
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => break Program::Shell,
            Some(ChannelMsg::Exec { command, .. }) => {
                break Program::Command(String::from_utf8_lossy(&command).into_owned())
            }
            Some(ChannelMsg::RequestSubsystem { name, .. }) => match sftp_server() {
                Some(path) if name == "sftp" => break Program::Sftp(path),
                _ => {
                    let _ = handle.close(channel.id()).await;
                    return;
                }
            },
            Some(_) => {}
        }
    };
    let id = channel.id();
    let (argv, login) = command_line(&program);
    let mut vars = login_env();
    vars.extend(env.env.iter().cloned());
    vars.extend(extra);
    if let (Some(_), Program::Shell) = (&pty, &program) {
        if let Some(text) = motd(&env) {
            let _ = handle.data(id, text).await;
        }
    }
    let code = match pty {
        Some(p) => run_on_pty(&mut channel, &handle, &env.dir, &vars, argv, login, p).await,
        None => run_on_pipes(&mut channel, &handle, &env.dir, &vars, argv).await,
    };
    let code = code.unwrap_or_else(|e| {
        let message = format!("hangar agent: cannot start the session: {e}\r\n");
        let _ = futures::FutureExt::now_or_never(handle.extended_data(id, 1, message.into_bytes()));
        127
    });
    drop(agent_socket);
    let _ = handle.exit_status_request(id, code).await;
    let _ = handle.eof(id).await;
    let _ = handle.close(id).await;
}

fn size(cols: u32, rows: u32) -> PtySize {
    PtySize {
        rows: rows.clamp(1, 1000) as u16,
        cols: cols.clamp(1, 1000) as u16,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// The user's shell: `$SHELL`, else bash, else sh.
fn shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            ["/bin/bash", "/bin/sh"]
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| p.to_string())
        })
        .unwrap_or_else(|| "sh".into())
}

/// The argv to run, and whether it is an interactive login.
fn command_line(program: &Program) -> (Vec<String>, bool) {
    match program {
        Program::Shell => (vec![shell(), "-l".into()], true),
        Program::Command(c) => (vec![shell(), "-c".into(), c.clone()], false),
        Program::Sftp(path) => (vec![path.to_string()], false),
    }
}

/// Variables a session never inherits from the agent: its token is the agent's identity.
const WITHHELD: &[&str] = &[contract::AGENT_TOKEN, "CODER_AGENT_TOKEN"];
/// Prefixes of what a build gives terraform (and so an agent a template starts from a
/// provisioner inherits): never a session's business, and some are secrets (the owner's
/// session token, SSH key). Sessions get the workspace's names from the manifest instead.
const BUILD_PREFIXES: &[&str] = &["TF_", "HANGAR_", "CODER_", "CHECKPOINT_"];

/// The agent's own variables a session must not inherit.
pub(super) fn withheld() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| {
            let k = k.to_string_lossy();
            WITHHELD.contains(&k.as_ref()) || BUILD_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect()
}

/// What a login sets, as sshd does: who the user is, where home is, which shell, and
/// that this is an SSH session.
fn login_env() -> Vec<(String, String)> {
    let mut vars = Vec::new();
    if let Ok(Some(user)) = crate::unix_user::by_uid(crate::unix_user::effective_uid()) {
        vars.push(("USER".into(), user.name.clone()));
        vars.push(("LOGNAME".into(), user.name));
        vars.push(("HOME".into(), user.home.display().to_string()));
        if !user.shell.is_empty() {
            vars.push(("SHELL".into(), user.shell));
        }
    }
    // No real addresses exist: the connection came through Hangar's tunnel.
    vars.push(("SSH_CONNECTION".into(), "127.0.0.1 0 127.0.0.1 22".into()));
    vars.push(("SSH_CLIENT".into(), "127.0.0.1 0 22".into()));
    vars
}

async fn run_on_pipes(
    channel: &mut Channel<Msg>,
    handle: &Handle,
    dir: &std::path::Path,
    vars: &[(String, String)],
    argv: Vec<String>,
) -> std::io::Result<u32> {
    let id = channel.id();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    for w in withheld() {
        cmd.env_remove(w);
    }
    cmd.args(&argv[1..])
        .current_dir(dir)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    // Input goes through its own task: were this loop to block writing to a program
    // that is itself blocked writing output, russh's session (waiting to hand this
    // loop more input) could not carry that output, and all three would wait forever.
    // Bounded: a client sending faster than the program reads waits (at most
    // INPUT_QUEUE chunks of an SSH packet each are held for it).
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(INPUT_QUEUE);
    let mut stdin_pipe = child.stdin.take();
    let input = tokio::spawn(async move {
        while let Some(chunk) = in_rx.recv().await {
            let Some(s) = stdin_pipe.as_mut() else { break };
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Dropping the pipe is the program's end of input.
    });
    let mut stdin = Some(in_tx);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 || handle.data(id, buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        })
    };
    let err = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0
                    || handle
                        .extended_data(id, 1, buf[..n].to_vec())
                        .await
                        .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut client_gone = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            msg = channel.wait(), if !client_gone => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(s) = stdin.as_ref() {
                        if s.send(data.to_vec()).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(ChannelMsg::Eof) => stdin = None,
                // The client went away: the command goes with it.
                None => {
                    client_gone = true;
                    let _ = child.start_kill();
                }
                Some(_) => {}
            },
        }
    };
    let _ = out.await;
    let _ = err.await;
    input.abort();
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u32,
        (None, Some(sig)) => 128 + sig as u32,
        _ => 255,
    }
}

async fn run_on_pty(
    channel: &mut Channel<Msg>,
    handle: &Handle,
    dir: &std::path::Path,
    vars: &[(String, String)],
    argv: Vec<String>,
    login: bool,
    pty: PtyRequest,
) -> std::io::Result<u32> {
    let id = channel.id();
    let io = |e: anyhow::Error| std::io::Error::other(e.to_string());
    let pair = portable_pty::native_pty_system()
        .openpty(pty.size)
        .map_err(io)?;
    let mut cmd = CommandBuilder::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd.cwd(dir);
    for w in withheld() {
        cmd.env_remove(w);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.env(
        "TERM",
        if pty.term.is_empty() {
            "xterm-256color"
        } else {
            &pty.term
        },
    );
    let mut child = pair.slave.spawn_command(cmd).map_err(io)?;
    drop(pair.slave);
    let master: Box<dyn MasterPty + Send> = pair.master;
    let mut reader = master.try_clone_reader().map_err(io)?;
    let mut writer = master.take_writer().map_err(io)?;
    if login {
        tracing::debug!("interactive login");
    }

    // The PTY's ends are blocking: a thread each, bridged with channels.
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(INPUT_QUEUE);
    std::thread::spawn(move || {
        while let Some(chunk) = in_rx.blocking_recv() {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let pid = child.process_id();
    let (exit_tx, mut exit_rx) = tokio::sync::oneshot::channel();
    // Set once the child is reaped: after that its pid may be someone else's.
    let reaped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reaped_by_waiter = reaped.clone();
    let mut killer = child.clone_killer();
    std::thread::spawn(move || {
        let status = child.wait();
        reaped_by_waiter.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = exit_tx.send(status);
    });

    let mut exited = None;
    let mut output_done = false;
    let mut client_gone = false;
    while exited.is_none() || !output_done {
        tokio::select! {
            chunk = out_rx.recv(), if !output_done => match chunk {
                Some(c) => {
                    if handle.data(id, c).await.is_err() {
                        let _ = killer.kill();
                    }
                }
                None => output_done = true,
            },
            status = &mut exit_rx, if exited.is_none() => {
                exited = Some(match status {
                    Ok(Ok(s)) => s.exit_code(),
                    _ => 255,
                });
                // Whatever the shell left running keeps the PTY open; its output is
                // drained briefly, then the session ends as sshd's would.
                if !output_done {
                    let drain = tokio::time::sleep(std::time::Duration::from_millis(200));
                    tokio::pin!(drain);
                    loop {
                        tokio::select! {
                            chunk = out_rx.recv() => match chunk {
                                Some(c) => { let _ = handle.data(id, c).await; }
                                None => break,
                            },
                            _ = &mut drain => break,
                        }
                    }
                    output_done = true;
                }
            },
            msg = channel.wait(), if exited.is_none() && !client_gone => match msg {
                Some(ChannelMsg::Data { data }) => {
                    let _ = in_tx.send(data.to_vec()).await;
                }
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    let _ = master.resize(size(col_width, row_height));
                }
                // The client went away: hang up, and kill what ignores that.
                None => {
                    client_gone = true;
                    let _ = killer.kill();
                    if let Some(pid) = pid {
                        let reaped = reaped.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(HANGUP_GRACE).await;
                            if reaped.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            // SAFETY: a plain signal to our own child, not yet reaped (so
                            // its pid is still its own).
                            unsafe {
                                libc::kill(pid as i32, libc::SIGKILL);
                            }
                        });
                    }
                }
                Some(_) => {}
            },
        }
    }
    Ok(exited.unwrap_or(255))
}
