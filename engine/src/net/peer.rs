//! The peer transport: Raft messages over TCP, one connection per direction and peer.
//!
//! With `https://` peer URLs every connection is TLS first ([`PeerTls`]): the dialer checks the
//! other member's certificate against the trusted CA and presents its own, and the accepting
//! side (with `--peer-client-cert-auth`) refuses, at the handshake, a dialer without a
//! certificate signed by that CA. Everything below runs over the TLS stream unchanged.
//!
//! Each connection starts with a `Hello` (cluster id, sender, its name and client URLs), then
//! carries frames: a u32 big-endian length and a postcard-encoded [`Message`], encoded and
//! decoded by [`crate::wire`] (the codec the simulator runs too). Sending never
//! waits: each peer has a bounded queue drained by its own task, which connects with back-off,
//! writes through a buffer and flushes when the queue is momentarily empty. Receivers feed one
//! bounded channel that the node loop reads. Raft tolerates loss, so a full queue drops (counted
//! in `/metrics` as `etcd_network_peer_sent_failures_total`, the first of a burst logged).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::{PeerTls, SystemClock};
use crate::raft::{Message, NodeId};
use crate::server::{Clock, Metrics, Network};
use crate::wire::{self, Decoded, Decoder, Hello, WireError};

/// Messages written before a flush, when more are queued.
const WRITE_BATCH_MAX: usize = 256;
/// Incoming messages buffered for the node loop.
const INBOUND_MAX: usize = 8192;
/// Most inbound peer connections open at once (each reads at most a hello until it proves it
/// belongs to the cluster, within 5 s).
const INBOUND_CONNECTIONS_MAX: usize = 256;
/// How long a TLS handshake may take, either side, before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from a peer connection at a time, into the connection's [`Decoder`]: a frame's
/// buffer grows as its bytes arrive, so a claimed length costs nothing until it is backed by data.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// One member of the cluster as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its Raft id.
    pub id: NodeId,
    /// Its `--name`.
    pub name: String,
    /// Its advertised peer URLs (`http://host:port`).
    pub peer_urls: Vec<String>,
    /// Its advertised client URLs: known for this node, learned from the others' `Hello`.
    pub client_urls: Vec<String>,
}

/// How to start the transport.
#[derive(Clone, Debug)]
pub struct PeerSetup {
    /// This node.
    pub id: NodeId,
    /// This node's name.
    pub name: String,
    /// Connections from another cluster are refused.
    pub cluster_id: u64,
    /// Peer listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Every member, this one included.
    pub members: Vec<Member>,
    /// Bounded queue per peer (messages).
    pub queue_max: usize,
    /// The node loop's clock (deadlines of `recv_until` are in its time).
    pub clock: SystemClock,
    /// Where drops are counted (the node's `/metrics`).
    pub metrics: Arc<Metrics>,
    /// TLS for both directions (`https://` peer URLs); `None`: plain TCP.
    pub tls: Option<PeerTls>,
}

/// A peer connection's byte stream: TCP, or TLS over TCP.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}
type PeerStream = Box<dyn PeerIo>;

/// One member as the directory knows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Its Raft id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it said hello, for other members).
    pub client_urls: Vec<String>,
    /// True while this node has a live outgoing connection to it (always true for itself).
    pub connected: bool,
}

/// The members as the transport knows them, shared with the HTTP layer.
#[derive(Clone, Debug)]
pub struct Directory {
    members: Arc<Mutex<BTreeMap<NodeId, MemberView>>>,
}

impl Directory {
    /// Every member, by id.
    pub fn members(&self) -> Vec<MemberView> {
        self.lock().values().cloned().collect()
    }

    /// The client URLs of member `id` (empty if unknown yet).
    pub fn client_urls(&self, id: NodeId) -> Vec<String> {
        self.lock()
            .get(&id)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, MemberView>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, id: NodeId, change: impl FnOnce(&mut MemberView)) {
        if let Some(member) = self.lock().get_mut(&id) {
            change(member);
        }
    }
}

/// The production [`Network`]: TCP to every peer.
pub struct TcpNetwork {
    outbound: BTreeMap<NodeId, mpsc::Sender<Message>>,
    inbound: mpsc::Receiver<Message>,
    clock: SystemClock,
    metrics: Arc<Metrics>,
}

impl TcpNetwork {
    /// Messages dropped so far because a peer's queue was full.
    pub fn dropped(&self) -> u64 {
        Metrics::get(&self.metrics.peer_sends_dropped)
    }
}

impl Network for TcpNetwork {
    fn send(&mut self, msg: Message) {
        match self.outbound.get(&msg.to) {
            Some(queue) => {
                if let Err(e) = queue.try_send(msg) {
                    // Raft retries what is lost (heartbeats re-probe a follower); the count is
                    // kept for /metrics, and the first drop of a burst is logged.
                    let before = self
                        .metrics
                        .peer_sends_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    if before.is_power_of_two() || before == 0 {
                        tracing::warn!(
                            to = e.into_inner().to.0,
                            dropped = before + 1,
                            "peer queue full: message dropped"
                        );
                    }
                }
            }
            None => tracing::warn!(to = msg.to.0, "message for an unknown member dropped"),
        }
    }

    async fn recv_until(&mut self, deadline_ms: u64) -> Option<Message> {
        let sleep = self.clock.sleep_until(deadline_ms);
        tokio::select! {
            biased;
            msg = self.inbound.recv() => msg,
            () = sleep => None,
        }
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.inbound.try_recv().ok()
    }
}

/// `host:port` of an `http://host:port[/...]` URL.
pub fn url_authority(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    (!authority.is_empty() && authority.contains(':')).then(|| authority.to_string())
}

/// Binds a listener with SO_REUSEADDR, so a killed node can restart on its port at once.
pub fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(1024)
}

#[allow(
    clippy::disallowed_methods,
    reason = "production transport: tasks on tokio's runtime"
)]
fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(future: F) {
    tokio::spawn(future);
}

/// Binds the peer listeners and starts one sender task per peer.
pub async fn start_peers(setup: PeerSetup) -> std::io::Result<(TcpNetwork, Directory)> {
    let directory = Directory {
        members: Arc::new(Mutex::new(
            setup
                .members
                .iter()
                .map(|m| {
                    let view = MemberView {
                        id: m.id,
                        name: m.name.clone(),
                        peer_urls: m.peer_urls.clone(),
                        client_urls: m.client_urls.clone(),
                        connected: m.id == setup.id,
                    };
                    (m.id, view)
                })
                .collect(),
        )),
    };
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_MAX);
    for addr in &setup.listen {
        let listener = bind_reusable(*addr)?;
        let (directory, tx, cluster_id) = (directory.clone(), inbound_tx.clone(), setup.cluster_id);
        let tls = setup.tls.as_ref().map(|t| t.acceptor.clone());
        spawn(accept_loop(listener, directory, tx, cluster_id, tls));
    }
    let me = setup.members.iter().find(|m| m.id == setup.id);
    let hello = Hello::new(
        setup.cluster_id,
        setup.id,
        &setup.name,
        me.map(|m| m.client_urls.clone()).unwrap_or_default(),
    );
    let mut outbound = BTreeMap::new();
    for member in setup.members.iter().filter(|m| m.id != setup.id) {
        let (tx, rx) = mpsc::channel(setup.queue_max.max(1));
        outbound.insert(member.id, tx);
        let addrs: Vec<String> = member
            .peer_urls
            .iter()
            .filter_map(|u| url_authority(u))
            .collect();
        spawn(send_loop(
            member.id,
            addrs,
            hello.clone(),
            rx,
            directory.clone(),
            setup.tls.as_ref().map(|t| t.connector.clone()),
        ));
    }
    let network = TcpNetwork {
        outbound,
        inbound,
        clock: setup.clock,
        metrics: setup.metrics.clone(),
    };
    Ok((network, directory))
}

/// The frames a peer sends first on a connection: the hello of member `from` (a name and no
/// client URLs) of cluster `cluster_id`, length-prefixed as on the wire. For tools and tests
/// that speak the peer protocol (the hostile-peer test); members build their own.
pub fn hello_frame(cluster_id: u64, from: NodeId, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_hello(&Hello::new(cluster_id, from, name, Vec::new()), &mut out)
        .expect("a hello encodes");
    out
}

/// Why reading the next frame of a connection failed.
enum ReadError {
    /// The stream failed or ended.
    Io(std::io::Error),
    /// The bytes did not decode ([`Decoder`]'s errors: over the limit, not a hello, malformed).
    Wire(WireError),
}

/// Reads from `stream` into `decoder` until it yields the next hello or message. The decoder's
/// buffer grows with the bytes that arrive, not with the length the sender claims.
async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    decoder: &mut Decoder,
    chunk: &mut [u8],
) -> Result<Decoded, ReadError> {
    loop {
        match decoder.next() {
            Ok(Some(decoded)) => return Ok(decoded),
            Ok(None) => {}
            Err(e) => return Err(ReadError::Wire(e)),
        }
        let read = stream.read(chunk).await.map_err(ReadError::Io)?;
        if read == 0 {
            return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        decoder.push(&chunk[..read]);
    }
}

/// Keeps one outgoing connection to `to` and writes its queue into it.
async fn send_loop(
    to: NodeId,
    addrs: Vec<String>,
    hello: Hello,
    mut queue: mpsc::Receiver<Message>,
    directory: Directory,
    tls: Option<tokio_rustls::TlsConnector>,
) {
    let mut hello_bytes = Vec::new();
    if wire::encode_hello(&hello, &mut hello_bytes).is_err() {
        return;
    }
    let hello = hello_bytes;
    let mut backoff_ms = 20;
    let mut attempt = 0usize;
    let mut tls_failures = 0u64;
    loop {
        if addrs.is_empty() {
            tracing::error!(peer = to.0, "no usable peer URL");
            return;
        }
        let addr = &addrs[attempt % addrs.len()];
        attempt += 1;
        let stream = match TcpStream::connect(addr.as_str()).await {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(1000);
                // Keep the queue from holding stale messages while the peer is away.
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream: PeerStream = match &tls {
            None => Box::new(stream),
            Some(connector) => match dial_tls(connector, addr, stream).await {
                Ok(stream) => Box::new(stream),
                Err(e) => {
                    // The other member is up but refuses us (or we it): back off as for a
                    // refused connection, and log the first of a run and then sparsely.
                    tls_failures += 1;
                    if tls_failures.is_power_of_two() {
                        tracing::warn!(peer = to.0, %addr, error = %e, failures = tls_failures, "peer TLS handshake failed");
                    }
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(1000);
                    while queue.try_recv().is_ok() {}
                    continue;
                }
            },
        };
        backoff_ms = 20;
        tls_failures = 0;
        let mut out = BufWriter::with_capacity(256 << 10, stream);
        if out.write_all(&hello).await.is_err() || out.flush().await.is_err() {
            continue;
        }
        directory.update(to, |m| m.connected = true);
        let ended = write_queue(&mut out, &mut queue).await;
        directory.update(to, |m| m.connected = false);
        if ended {
            return;
        }
        tracing::debug!(peer = to.0, "peer connection lost; reconnecting");
    }
}

/// The TLS handshake of a dial to `addr` (`host:port`): the host is the name the other
/// member's certificate must carry.
async fn dial_tls(
    connector: &tokio_rustls::TlsConnector,
    addr: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = super::server_name(addr)?;
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// Writes queued messages until a write fails (false) or the queue closes (true).
async fn write_queue(out: &mut BufWriter<PeerStream>, queue: &mut mpsc::Receiver<Message>) -> bool {
    let mut frame = Vec::new();
    loop {
        let Some(first) = queue.recv().await else {
            return true;
        };
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH_MAX {
            match queue.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        for msg in &batch {
            frame.clear();
            if wire::encode_message(msg, &mut frame).is_err() {
                continue;
            }
            if out.write_all(&frame).await.is_err() {
                return false;
            }
        }
        if out.flush().await.is_err() {
            return false;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    directory: Directory,
    inbound: mpsc::Sender<Message>,
    cluster_id: u64,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // A member needs one inbound connection per peer; strangers wait in the kernel's backlog
    // rather than cost memory here.
    let permits = Arc::new(tokio::sync::Semaphore::new(INBOUND_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, from)) => {
                let _ = stream.set_nodelay(true);
                let (directory, inbound, tls) = (directory.clone(), inbound.clone(), tls.clone());
                spawn(async move {
                    // The handshake runs on the connection's own task, under the same permit,
                    // so a slow or silent dialer holds one slot for at most the timeout.
                    if let Some(stream) = accept_tls(stream, from, tls).await {
                        read_loop(stream, from, directory, inbound, cluster_id).await;
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The accepted stream, after the TLS handshake if there is one; `None` (logged) if it failed.
async fn accept_tls(
    stream: TcpStream,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Option<PeerStream> {
    let Some(acceptor) = tls else {
        return Some(Box::new(stream));
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "peer TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::warn!(%addr, "peer TLS handshake timed out");
            None
        }
    }
}

/// Reads one incoming connection: the `Hello`, then messages, until it closes or misbehaves.
async fn read_loop(
    mut stream: PeerStream,
    addr: SocketAddr,
    directory: Directory,
    inbound: mpsc::Sender<Message>,
    cluster_id: u64,
) {
    let mut decoder = Decoder::new(cluster_id);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let first = read_frame(&mut stream, &mut decoder, &mut chunk);
    let hello = match tokio::time::timeout(Duration::from_secs(5), first).await {
        Ok(Ok(Decoded::Hello(hello))) => hello,
        Ok(Err(ReadError::Wire(WireError::Version { theirs, ours }))) => {
            tracing::error!(
                %addr,
                theirs,
                ours,
                "refused a peer speaking another protocol version"
            );
            return;
        }
        Ok(Err(ReadError::Wire(WireError::Cluster { theirs, ours }))) => {
            tracing::error!(
                %addr,
                theirs = format!("{theirs:x}"),
                ours = format!("{ours:x}"),
                "refused a peer of another cluster"
            );
            return;
        }
        _ => {
            tracing::warn!(%addr, "peer connection without a valid hello closed");
            return;
        }
    };
    let known = directory.lock().contains_key(&hello.from);
    if !known {
        tracing::error!(%addr, from = hello.from.0, "refused a peer that is not a member");
        return;
    }
    directory.update(hello.from, |m| m.client_urls = hello.client_urls.clone());
    loop {
        match read_frame(&mut stream, &mut decoder, &mut chunk).await {
            Ok(Decoded::Message(msg)) if msg.from == hello.from => {
                if inbound.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(Decoded::Message(msg)) => {
                tracing::warn!(%addr, claimed = msg.from.0, "message with a forged sender dropped");
            }
            Ok(Decoded::Hello(_)) => {
                // The decoder yields one hello per connection, first; never here.
                return;
            }
            Err(ReadError::Wire(e @ WireError::Malformed(_))) => {
                tracing::warn!(%addr, error = %e, "malformed peer frame; connection closed");
                return;
            }
            Err(ReadError::Wire(e)) => {
                tracing::warn!(%addr, error = %e, "peer connection closed");
                return;
            }
            Err(ReadError::Io(e)) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::warn!(%addr, error = %e, "peer connection closed");
                }
                return;
            }
        }
    }
}
