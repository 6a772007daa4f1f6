//! The peer transport: Raft messages over TCP, one connection per direction and peer.
//!
//! Each connection starts with a `Hello` (cluster id, sender, its name and client URLs), then
//! carries frames: a u32 big-endian length and a postcard-encoded [`Message`]. Sending never
//! waits: each peer has a bounded queue drained by its own task, which connects with back-off,
//! writes through a buffer and flushes when the queue is momentarily empty. Receivers feed one
//! bounded channel that the node loop reads. Raft tolerates loss, so a full queue drops (counted
//! in `/metrics` as `etcd_network_peer_sent_failures_total`, the first of a burst logged).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::SystemClock;
use crate::raft::{Message, NodeId};
use crate::server::{Clock, Metrics, Network};

/// Largest frame accepted from a peer; a larger length closes the connection. A frame carries
/// one message, and the largest is a whole snapshot (InstallSnapshot).
const FRAME_BYTES_MAX: usize = crate::log::SNAPSHOT_BYTES_MAX + (1 << 20);
/// Messages written before a flush, when more are queued.
const WRITE_BATCH_MAX: usize = 256;
/// Incoming messages buffered for the node loop.
const INBOUND_MAX: usize = 8192;
/// Tells a Floe peer stream from anything else that connects.
const MAGIC: u32 = 0x464c_4f45;
/// The peer protocol's version, checked in the hello (2: forwarded proposals and the version
/// field itself; 3: InstallSnapshot in chunks).
const PROTOCOL_VERSION: u32 = 3;
/// Most inbound peer connections open at once (each reads at most a hello until it proves it
/// belongs to the cluster, within 5 s).
const INBOUND_CONNECTIONS_MAX: usize = 256;
/// Largest hello: nothing bigger is read before the peer proved it belongs to the cluster.
const HELLO_BYTES_MAX: usize = 64 << 10;
/// Bytes allocated ahead of a frame's payload: a frame's buffer grows as its bytes arrive, so a
/// claimed length costs nothing until it is backed by data.
const FRAME_CHUNK_BYTES: usize = 64 << 10;

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
}

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

/// The first frame of every connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hello {
    magic: u32,
    /// [`PROTOCOL_VERSION`]: a peer speaking another refuses the connection.
    version: u32,
    cluster_id: u64,
    from: NodeId,
    name: String,
    client_urls: Vec<String>,
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
        spawn(accept_loop(listener, directory, tx, cluster_id));
    }
    let me = setup.members.iter().find(|m| m.id == setup.id);
    let hello = Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        cluster_id: setup.cluster_id,
        from: setup.id,
        name: setup.name.clone(),
        client_urls: me.map(|m| m.client_urls.clone()).unwrap_or_default(),
    };
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
    let hello = Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        cluster_id,
        from,
        name: name.to_string(),
        client_urls: Vec::new(),
    };
    frame(&postcard::to_stdvec(&hello).expect("a hello encodes"))
}

/// `payload` as a frame: its length (u32, big endian), then the payload. The payload of a
/// message frame is the postcard encoding of a [`Message`].
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame under 4 GiB");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

async fn write_frame<W: AsyncWriteExt + Unpin>(out: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(payload).await
}

/// Reads one frame of at most `max` bytes. The buffer grows with the bytes that arrive, not
/// with the length the sender claims.
async fn read_frame(stream: &mut TcpStream, max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes is over the {max}-byte limit"
        )));
    }
    let mut payload = Vec::with_capacity(len.min(FRAME_CHUNK_BYTES));
    let read = (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await?;
    if read < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(payload)
}

/// Keeps one outgoing connection to `to` and writes its queue into it.
async fn send_loop(
    to: NodeId,
    addrs: Vec<String>,
    hello: Hello,
    mut queue: mpsc::Receiver<Message>,
    directory: Directory,
) {
    let Ok(hello) = postcard::to_stdvec(&hello) else {
        return;
    };
    let mut backoff_ms = 20;
    let mut attempt = 0usize;
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
        backoff_ms = 20;
        let mut out = BufWriter::with_capacity(256 << 10, stream);
        if write_frame(&mut out, &hello).await.is_err() || out.flush().await.is_err() {
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

/// Writes queued messages until a write fails (false) or the queue closes (true).
async fn write_queue(out: &mut BufWriter<TcpStream>, queue: &mut mpsc::Receiver<Message>) -> bool {
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
            let Ok(payload) = postcard::to_stdvec(msg) else {
                continue;
            };
            if write_frame(out, &payload).await.is_err() {
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
                let read = read_loop(stream, from, directory.clone(), inbound.clone(), cluster_id);
                spawn(async move {
                    read.await;
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

/// Reads one incoming connection: the `Hello`, then messages, until it closes or misbehaves.
async fn read_loop(
    mut stream: TcpStream,
    addr: SocketAddr,
    directory: Directory,
    inbound: mpsc::Sender<Message>,
    cluster_id: u64,
) {
    let first = read_frame(&mut stream, HELLO_BYTES_MAX);
    let hello = match tokio::time::timeout(Duration::from_secs(5), first).await {
        Ok(Ok(bytes)) => postcard::from_bytes::<Hello>(&bytes).ok(),
        _ => None,
    };
    let Some(hello) = hello.filter(|h| h.magic == MAGIC) else {
        tracing::warn!(%addr, "peer connection without a valid hello closed");
        return;
    };
    if hello.version != PROTOCOL_VERSION {
        tracing::error!(
            %addr,
            theirs = hello.version,
            ours = PROTOCOL_VERSION,
            "refused a peer speaking another protocol version"
        );
        return;
    }
    if hello.cluster_id != cluster_id {
        tracing::error!(
            %addr,
            theirs = format!("{:x}", hello.cluster_id),
            ours = format!("{cluster_id:x}"),
            "refused a peer of another cluster"
        );
        return;
    }
    let known = directory.lock().contains_key(&hello.from);
    if !known {
        tracing::error!(%addr, from = hello.from.0, "refused a peer that is not a member");
        return;
    }
    directory.update(hello.from, |m| m.client_urls = hello.client_urls.clone());
    loop {
        let payload = match read_frame(&mut stream, FRAME_BYTES_MAX).await {
            Ok(payload) => payload,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::warn!(%addr, error = %e, "peer connection closed");
                }
                return;
            }
        };
        match postcard::from_bytes::<Message>(&payload) {
            Ok(msg) if msg.from == hello.from => {
                if inbound.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(msg) => {
                tracing::warn!(%addr, claimed = msg.from.0, "message with a forged sender dropped");
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "malformed peer frame; connection closed");
                return;
            }
        }
    }
}
