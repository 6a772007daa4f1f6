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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::{PeerTls, SystemClock};
use crate::raft::{Membership, Message, NodeId};
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
    /// Connections from another cluster are refused. 0: not known yet (a member joining a
    /// running cluster): the cluster of the first member that says hello is taken, and kept
    /// ([`Directory::cluster_id`]).
    pub cluster_id: u64,
    /// Members this node may hear from before it knows their Raft id: name and peer URLs (a
    /// joining member's `--initial-cluster`). A hello from an unknown id with one of these
    /// names makes it a member at those URLs.
    pub named: Vec<(String, Vec<String>)>,
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

/// The members as the transport knows them, shared with the HTTP layer and the node loop's
/// configuration changes ([`Directory::apply_membership`]).
#[derive(Clone)]
pub struct Directory {
    members: Arc<Mutex<BTreeMap<NodeId, MemberView>>>,
    /// Members this node saw removed (since it started), as they were.
    removed: Arc<Mutex<BTreeMap<NodeId, MemberView>>>,
    links: Arc<Mutex<Links>>,
    cluster_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("members", &self.members())
            .finish()
    }
}

/// The sending side: one queue (and sender task) per other member, and what a new one needs.
struct Links {
    me: NodeId,
    name: String,
    client_urls: Vec<String>,
    outbound: BTreeMap<NodeId, mpsc::Sender<Message>>,
    /// The peer URLs each sender task dials.
    dialing: BTreeMap<NodeId, Vec<String>>,
    /// The founding members (`--initial-cluster`), whose addresses no configuration carries.
    founders: BTreeMap<NodeId, Member>,
    named: Vec<(String, Vec<String>)>,
    queue_max: usize,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Directory {
    /// The cluster id (0 while a joining member has not heard from the cluster yet).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Relaxed)
    }

    /// Makes the members those of `m` (Raft thesis §4.1: the latest configuration in the log):
    /// a member the configuration gives an address is dialled there (a changed address
    /// redials), a founding member at its `--initial-cluster` URLs, one learned from its
    /// hello where it was; servers no longer in the configuration are forgotten, but the
    /// connections to those in `reached` (the servers the node still sends to: one being
    /// removed gets the entry that removes it) stay. A node without a configuration yet
    /// (joining) only learns addresses.
    pub fn apply_membership(&self, m: &Membership, reached: &[NodeId]) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let mut members = self.lock();
        let ids = m.members();
        if !m.voters.is_empty() {
            let me = links.me;
            let gone: Vec<NodeId> = members
                .keys()
                .copied()
                .filter(|id| *id != me && ids.binary_search(id).is_err())
                .collect();
            let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
            for id in gone {
                if let Some(view) = members.remove(&id) {
                    removed.insert(id, view);
                }
            }
            let unreached: Vec<NodeId> = links
                .outbound
                .keys()
                .copied()
                .filter(|id| ids.binary_search(id).is_err() && !reached.contains(id))
                .collect();
            for id in unreached {
                links.outbound.remove(&id);
                links.dialing.remove(&id);
            }
        }
        for &id in &ids {
            let (name, urls) = match (m.address(id), links.founders.get(&id)) {
                (Some(a), _) => (a.name.clone(), a.peer_urls.clone()),
                (None, Some(f)) => (f.name.clone(), f.peer_urls.clone()),
                (None, None) => match members.get(&id) {
                    Some(v) => (v.name.clone(), v.peer_urls.clone()),
                    None => continue,
                },
            };
            let view = members.entry(id).or_insert_with(|| MemberView {
                id,
                name: String::new(),
                peer_urls: Vec::new(),
                client_urls: Vec::new(),
                connected: id == links.me,
            });
            if !name.is_empty() {
                view.name = name;
            }
            view.peer_urls.clone_from(&urls);
            if id != links.me && links.dialing.get(&id) != Some(&urls) {
                links.dial(id, urls, self.clone());
            }
        }
    }

    /// A hello from `id`, not a member this node knows, named `name`: if the name is one of
    /// `PeerSetup::named`, it becomes a member at those URLs. True if it is a member now.
    fn learn_from_hello(&self, id: NodeId, name: &str) -> bool {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let mut members = self.lock();
        if members.contains_key(&id) {
            return true;
        }
        let Some((_, urls)) = links.named.iter().find(|(n, _)| n == name).cloned() else {
            return false;
        };
        tracing::info!(peer = id.0, %name, urls = ?urls, "learned a member from its hello");
        members.insert(
            id,
            MemberView {
                id,
                name: name.to_string(),
                peer_urls: urls.clone(),
                client_urls: Vec::new(),
                connected: false,
            },
        );
        drop(members);
        links.dial(id, urls, self.clone());
        true
    }

    /// Every member, by id.
    pub fn members(&self) -> Vec<MemberView> {
        self.lock().values().cloned().collect()
    }

    /// Members removed from the configuration since this node started.
    pub fn removed(&self) -> Vec<MemberView> {
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
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

impl Links {
    /// Starts (or restarts, at new URLs) the sender task of member `id`.
    fn dial(&mut self, id: NodeId, urls: Vec<String>, directory: Directory) {
        let (tx, rx) = mpsc::channel(self.queue_max.max(1));
        self.outbound.insert(id, tx);
        self.dialing.insert(id, urls.clone());
        let addrs: Vec<String> = urls.iter().filter_map(|u| url_authority(u)).collect();
        let hello = (self.me, self.name.clone(), self.client_urls.clone());
        spawn(send_loop(id, addrs, hello, rx, directory, self.tls.clone()));
    }
}

/// The production [`Network`]: TCP to every peer.
pub struct TcpNetwork {
    links: Arc<Mutex<Links>>,
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
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        match links.outbound.get(&msg.to) {
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
            None => tracing::debug!(to = msg.to.0, "message for a server not a member dropped"),
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
    let me = setup.members.iter().find(|m| m.id == setup.id);
    let links = Links {
        me: setup.id,
        name: setup.name.clone(),
        client_urls: me.map(|m| m.client_urls.clone()).unwrap_or_default(),
        outbound: BTreeMap::new(),
        dialing: BTreeMap::new(),
        founders: setup.members.iter().map(|m| (m.id, m.clone())).collect(),
        named: setup.named.clone(),
        queue_max: setup.queue_max,
        tls: setup.tls.as_ref().map(|t| t.connector.clone()),
    };
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
        removed: Arc::default(),
        links: Arc::new(Mutex::new(links)),
        cluster_id: Arc::new(AtomicU64::new(setup.cluster_id)),
    };
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_MAX);
    for addr in &setup.listen {
        let listener = bind_reusable(*addr)?;
        let (directory, tx) = (directory.clone(), inbound_tx.clone());
        let tls = setup.tls.as_ref().map(|t| t.acceptor.clone());
        spawn(accept_loop(listener, directory, tx, tls));
    }
    {
        let mut links = directory.links.lock().unwrap_or_else(|e| e.into_inner());
        for member in setup.members.iter().filter(|m| m.id != setup.id) {
            links.dial(member.id, member.peer_urls.clone(), directory.clone());
        }
    }
    let network = TcpNetwork {
        links: directory.links.clone(),
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
    (me, name, client_urls): (NodeId, String, Vec<String>),
    mut queue: mpsc::Receiver<Message>,
    directory: Directory,
    tls: Option<tokio_rustls::TlsConnector>,
) {
    let mut backoff_ms = 20;
    let mut attempt = 0usize;
    let mut tls_failures = 0u64;
    loop {
        if addrs.is_empty() {
            tracing::error!(peer = to.0, "no usable peer URL");
            return;
        }
        if queue.is_closed() {
            // The member left the configuration, or its address changed: a new task dials it.
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
        // The hello carries the cluster id as known now (a joining member learns it).
        let hello = Hello::new(directory.cluster_id(), me, &name, client_urls.clone());
        let mut hello_bytes = Vec::new();
        if wire::encode_hello(&hello, &mut hello_bytes).is_err() {
            return;
        }
        let mut out = BufWriter::with_capacity(256 << 10, stream);
        if out.write_all(&hello_bytes).await.is_err() || out.flush().await.is_err() {
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
                        read_loop(stream, from, directory, inbound).await;
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
) {
    let mut decoder = Decoder::new(directory.cluster_id());
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
    let known = directory.lock().contains_key(&hello.from)
        || directory.learn_from_hello(hello.from, &hello.name);
    if !known {
        tracing::error!(%addr, from = hello.from.0, "refused a peer that is not a member");
        return;
    }
    if directory
        .cluster_id
        .compare_exchange(0, hello.cluster_id, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tracing::info!(
            cluster = format!("{:x}", hello.cluster_id),
            from = hello.from.0,
            "joined: the cluster id is the first member's that said hello"
        );
    }
    directory.update(hello.from, |m| {
        m.client_urls = hello.client_urls.clone();
        if m.name.is_empty() {
            m.name = hello.name.clone();
        }
    });
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
