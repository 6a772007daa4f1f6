//! `floe`: the production node. Runs like etcd (same flags, same client API), built from the
//! engine the simulator tests.

mod flags;

/// glibc's malloc took about a sixth of a busy leader's CPU (perf); mimalloc is cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use engine::http::members::added_member_id;
use engine::http::{App, HttpConfig, MemberInfo, Membership};
use engine::net::{
    Directory, FileDataDir, FileDisk, Member, PeerSetup, PeerTls, SystemClock, TlsFiles,
    bind_reusable,
};
use engine::raft::{NodeId, RoleKind};
use engine::server::data_dir::{self, MemberIdentity};
use engine::server::{
    Clock, Env, KvClient, KvMachine, MembershipHook, NoObserver, NodeError, NodeSettings,
};
use engine::store::ExpirationStyle;
use flags::Flags;

const HELP: &str = "\
floe: a Raft key-value store that speaks the etcd v2 API

Usage: floe [flags]            (etcd's flags; -flag, --flag, -flag=value and --flag value all work;
                                a repeated flag's last value wins; ETCD_<FLAG> variables too)

With no flags: a one-member cluster named 'default', clients on http://127.0.0.1:2379 and
http://127.0.0.1:4001, peers on http://127.0.0.1:2380, data in ./default.floe.

  --name NAME                          member name (default: default)
  --data-dir DIR                       where the log lives (default: NAME.floe)
  --listen-client-urls URLS            client listen URLs, comma-separated
                                       (default: http://127.0.0.1:2379,http://127.0.0.1:4001)
  --advertise-client-urls URLS         client URLs told to others (default: the listen URLs)
  --listen-peer-urls URLS              peer listen URLs (default: http://127.0.0.1:2380)
  --initial-advertise-peer-urls URLS   peer URLs told to others (default: the listen URLs)
  --initial-cluster NAME=URL,...       every member (default: NAME=<advertised peer URLs>)
  --initial-cluster-state new|existing new: found the cluster of --initial-cluster; existing: join a
                                       running cluster this member was added to (POST
                                       /v2/members, etcdctl member add): it learns the
                                       configuration from the leader (--initial-cluster names the
                                       members it may hear from first)
  --initial-cluster-token TOKEN        tells clusters apart (default: etcd-cluster)
  --heartbeat-interval MS              heartbeat period in ms (default: 100)
  --election-timeout MS                minimum election timeout in ms (default: 1000)
  --snapshot-count N                   snapshot the store and compact the log every N applied
                                       entries; 0 never does (default: 100000, as etcd)
  --pre-vote BOOL                      Raft PreVote (default: true)
  --check-quorum BOOL                  Raft CheckQuorum: a leader cut off steps down (default: true)
  --legacy BOOL                        the etcd 0.x layer: /mod/v2/lock, /mod/v2/leader,
                                       /v2/keys/_etcd/machines, text /v2/leader (default: true)
  --expiration-suffix offset|z         'expiration' ends in +00:00 (default) or Z (etcd 3.4)
  --help                               this text

TLS (rustls): https:// client URLs need --cert-file and --key-file; https:// peer URLs (every
member's, all https) need --peer-cert-file, --peer-key-file and --peer-trusted-ca-file. PEM files.
  --cert-file FILE                     certificate chain served on client URLs
  --key-file FILE                      its private key
  --trusted-ca-file FILE               CA that signs client certificates
  --client-cert-auth BOOL              refuse clients without a certificate signed by that CA
                                       (default: false; with only a CA file, certificates are
                                       checked when a client offers one)
  --peer-cert-file FILE                certificate served to and presented to other members
  --peer-key-file FILE                 its private key
  --peer-trusted-ca-file FILE          CA that signs every member's certificate
  --peer-client-cert-auth BOOL         refuse, at the handshake, members without a certificate
                                       signed by that CA (default: false)

Testing only (never in production):
  --unsafe-disk-faults SPEC            make the log's disk fail: sync-error-after=N (every
                                       fdatasync after N fails with EIO), space=BYTES (the log
                                       cannot grow past BYTES: ENOSPC); comma-separated

Logging: RUST_LOG (e.g. RUST_LOG=debug); default info.
v2 auth and the v3 API are not supported. A member removed from the cluster (DELETE
/v2/members/<id>) exits with status 1 and says so.
";

/// Everything the command line decides.
struct Settings {
    name: String,
    data_dir: PathBuf,
    listen_client: Vec<SocketAddr>,
    advertise_client: Vec<String>,
    listen_peer: Vec<SocketAddr>,
    members: Vec<(String, Vec<String>)>,
    state: String,
    token: String,
    heartbeat_ms: u64,
    election_ms: u64,
    snapshot_count: u64,
    pre_vote: bool,
    check_quorum: bool,
    legacy: bool,
    expiration: ExpirationStyle,
    /// TLS of the client URLs (`https://`).
    client_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// TLS between members (`https://` peer URLs).
    peer_tls: Option<PeerTls>,
    /// `--unsafe-disk-faults`: the log's disk fails on purpose (tests).
    disk_faults: engine::net::DiskFaults,
}

fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// Socket addresses of `http://host:port` URLs (`localhost` resolves to loopback).
fn listen_addrs(urls: &[String], what: &str) -> Result<Vec<SocketAddr>, String> {
    let mut addrs = Vec::new();
    for url in urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "{what} URL {url:?} must start with http:// or https://"
            ));
        }
        let authority = engine::net::url_authority(url)
            .ok_or_else(|| format!("{what} URL {url:?} needs a host and a port"))?;
        let resolved: Vec<SocketAddr> = authority
            .to_socket_addrs()
            .map_err(|e| format!("{what} URL {url:?}: {e}"))?
            .collect();
        let addr = resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .ok_or_else(|| format!("{what} URL {url:?} resolves to nothing"))?;
        addrs.push(*addr);
    }
    Ok(addrs)
}

/// Whether `urls` (from the flags in `what`) are all `https://` (true) or all `http://`
/// (false); a mix is an error.
fn one_scheme<'a>(urls: impl IntoIterator<Item = &'a String>, what: &str) -> Result<bool, String> {
    let mut https = None;
    for url in urls {
        let this = url.starts_with("https://");
        if *https.get_or_insert(this) != this {
            return Err(format!(
                "{what} mix http:// and https:// URLs: use one scheme for all of them"
            ));
        }
    }
    Ok(https.unwrap_or(false))
}

/// A file flag's path, or an error saying which flag an https URL needs.
fn tls_file(flags: &Flags, name: &str, why: &str) -> Result<PathBuf, String> {
    match flags.get(name) {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(format!("{why} need --{name}")),
    }
}

/// The TLS of client URLs and of peer URLs, as their schemes and the TLS flags say.
fn tls_settings(
    flags: &Flags,
    client_urls: &[&String],
    peer_urls: &[&String],
) -> Result<
    (
        Option<std::sync::Arc<rustls::ServerConfig>>,
        Option<PeerTls>,
    ),
    String,
> {
    let client = if one_scheme(
        client_urls.iter().copied(),
        "--listen-client-urls and --advertise-client-urls",
    )? {
        let why = "https:// client URLs";
        let files = TlsFiles {
            flag_prefix: "",
            cert: tls_file(flags, "cert-file", why)?,
            key: tls_file(flags, "key-file", why)?,
            trusted_ca: flags.get("trusted-ca-file").map(PathBuf::from),
            client_cert_auth: flags.bool("client-cert-auth", false)?,
        };
        Some(engine::net::server_config(&files)?)
    } else {
        for name in [
            "cert-file",
            "key-file",
            "trusted-ca-file",
            "client-cert-auth",
        ] {
            if flags.get(name).is_some() {
                tracing::warn!(
                    flag = name,
                    "the client URLs are http://: --{name} is not used"
                );
            }
        }
        None
    };
    let peer = if one_scheme(
        peer_urls.iter().copied(),
        "--listen-peer-urls, --initial-advertise-peer-urls and --initial-cluster",
    )? {
        let why = "https:// peer URLs";
        let files = TlsFiles {
            flag_prefix: "peer-",
            cert: tls_file(flags, "peer-cert-file", why)?,
            key: tls_file(flags, "peer-key-file", why)?,
            trusted_ca: Some(tls_file(flags, "peer-trusted-ca-file", why)?),
            client_cert_auth: flags.bool("peer-client-cert-auth", false)?,
        };
        Some(PeerTls::new(&files)?)
    } else {
        for name in [
            "peer-cert-file",
            "peer-key-file",
            "peer-trusted-ca-file",
            "peer-client-cert-auth",
        ] {
            if flags.get(name).is_some() {
                tracing::warn!(
                    flag = name,
                    "the peer URLs are http://: --{name} is not used"
                );
            }
        }
        None
    };
    Ok((client, peer))
}

/// `--initial-cluster`: `name=url,name=url2,...` (a name may repeat for several URLs).
fn parse_cluster(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, url) = item
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster item {item:?} is not NAME=URL"))?;
        if name.is_empty() || engine::net::url_authority(url).is_none() {
            return Err(format!(
                "--initial-cluster item {item:?} is not NAME=http://host:port"
            ));
        }
        match members.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => members.push((name.to_string(), vec![url.to_string()])),
        }
    }
    if members.is_empty() {
        return Err("--initial-cluster names no member".into());
    }
    members.sort();
    Ok(members)
}

fn settings(flags: &Flags) -> Result<Settings, String> {
    let name = flags.get("name").unwrap_or("default").to_string();
    let data_dir = PathBuf::from(
        flags
            .get("data-dir")
            .map_or_else(|| format!("{name}.floe"), str::to_string),
    );
    let listen_client = split_urls(
        flags
            .get("listen-client-urls")
            .unwrap_or("http://127.0.0.1:2379,http://127.0.0.1:4001"),
    );
    let advertise_client = flags
        .get("advertise-client-urls")
        .map_or_else(|| listen_client.clone(), split_urls);
    let listen_peer = split_urls(
        flags
            .get("listen-peer-urls")
            .unwrap_or("http://127.0.0.1:2380"),
    );
    let advertise_peer = flags
        .get("initial-advertise-peer-urls")
        .map_or_else(|| listen_peer.clone(), split_urls);
    let cluster = flags.get("initial-cluster").map_or_else(
        || format!("{name}={}", advertise_peer.join(&format!(",{name}="))),
        str::to_string,
    );
    let members = parse_cluster(&cluster)?;
    if !members.iter().any(|(n, _)| *n == name) {
        return Err(format!(
            "--initial-cluster {cluster:?} has no member named {name:?} (--name)"
        ));
    }
    let state = flags
        .get("initial-cluster-state")
        .unwrap_or("new")
        .to_string();
    if state != "new" && state != "existing" {
        return Err(format!(
            "--initial-cluster-state {state:?}: want new or existing"
        ));
    }
    let heartbeat_ms = flags.uint("heartbeat-interval", 100)?.max(1);
    let election_ms = flags.uint("election-timeout", 1000)?;
    if election_ms < 5 * heartbeat_ms {
        return Err(format!(
            "--election-timeout {election_ms} should be at least 5 times --heartbeat-interval {heartbeat_ms}"
        ));
    }
    let client_urls: Vec<&String> = listen_client.iter().chain(&advertise_client).collect();
    let peer_urls: Vec<&String> = listen_peer
        .iter()
        .chain(&advertise_peer)
        .chain(members.iter().flat_map(|(_, urls)| urls))
        .collect();
    let (client_tls, peer_tls) = tls_settings(flags, &client_urls, &peer_urls)?;
    let expiration = match flags.get("expiration-suffix").unwrap_or("offset") {
        "offset" | "+00:00" => ExpirationStyle::Offset,
        "z" | "Z" => ExpirationStyle::Zulu,
        other => return Err(format!("--expiration-suffix {other:?}: want offset or z")),
    };
    Ok(Settings {
        listen_client: listen_addrs(&listen_client, "client")?,
        listen_peer: listen_addrs(&listen_peer, "peer")?,
        name,
        data_dir,
        advertise_client,
        members,
        state,
        token: flags
            .get("initial-cluster-token")
            .unwrap_or("etcd-cluster")
            .to_string(),
        heartbeat_ms,
        election_ms,
        snapshot_count: flags.uint("snapshot-count", 100_000)?,
        pre_vote: flags.bool("pre-vote", true)?,
        check_quorum: flags.bool("check-quorum", true)?,
        legacy: flags.bool("legacy", true)?,
        expiration,
        client_tls,
        peer_tls,
        disk_faults: engine::net::DiskFaults::parse(flags.get("unsafe-disk-faults").unwrap_or(""))?,
    })
}

/// FNV-1a, for member and cluster ids that are the same on every member and every start.
fn fnv(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The member list as the HTTP layer shows it, from the transport's directory.
struct DirectoryMembership {
    directory: Directory,
    hex_ids: Vec<(NodeId, String)>,
    /// The founding members' etcd ids by name, for a member that joined (it learns their Raft
    /// ids from the cluster, not from its flags).
    hex_by_name: Vec<(String, String)>,
}

impl DirectoryMembership {
    fn new(directory: Directory, hex_ids: Vec<(NodeId, String)>, s: &Settings) -> Self {
        let hex_by_name = s
            .members
            .iter()
            .map(|(name, urls)| (name.clone(), founder_hex(&s.token, name, urls)))
            .collect();
        DirectoryMembership {
            directory,
            hex_ids,
            hex_by_name,
        }
    }
}

impl DirectoryMembership {
    fn info(&self, m: engine::net::MemberView) -> MemberInfo {
        MemberInfo {
            id: m.id,
            // Members added at run time are known by their Raft id.
            hex_id: self
                .hex_ids
                .iter()
                .find(|(id, _)| *id == m.id)
                .map(|(_, hex)| hex)
                .or_else(|| {
                    // Founders are 1..=n; members added at run time have large ids.
                    (m.id.0 < 1 << 32)
                        .then(|| self.hex_by_name.iter().find(|(n, _)| *n == m.name))
                        .flatten()
                        .map(|(_, hex)| hex)
                })
                .map_or_else(|| format!("{:x}", m.id.0), String::clone),
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
        }
    }
}

impl Membership for DirectoryMembership {
    fn members(&self) -> Vec<MemberInfo> {
        self.directory
            .members()
            .into_iter()
            .map(|m| self.info(m))
            .collect()
    }

    fn removed(&self) -> Vec<MemberInfo> {
        self.directory
            .removed()
            .into_iter()
            .map(|m| self.info(m))
            .collect()
    }
}

/// Who is who: Raft ids by sorted name, etcd-style hex ids, the cluster id.
struct Identity {
    me: NodeId,
    peers: Vec<NodeId>,
    hex_ids: Vec<(NodeId, String)>,
    /// 0 for a member joining a running cluster that has not heard from it yet.
    cluster_id: u64,
    members: Vec<Member>,
    /// Members a joining member may hear from first, by name (`PeerSetup::named`).
    named: Vec<(String, Vec<String>)>,
}

/// `--initial-cluster-state existing`: a member added at run time. Its Raft id is the one the
/// leader gave it from its peer URLs ([`added_member_id`]); the founding members' ids and the
/// cluster id are learned from the cluster (the cluster id from the first hello, or from the
/// data dir's meta record after that).
fn joining_identity(s: &Settings, known_cluster: Option<u64>) -> Result<Identity, String> {
    let (_, urls) = s
        .members
        .iter()
        .find(|(n, _)| *n == s.name)
        .ok_or("no member has this --name")?;
    let me = added_member_id(&s.token, urls);
    Ok(Identity {
        me,
        // Ignored while joining (`Config::joining`): the configuration comes from the log.
        peers: vec![me],
        hex_ids: vec![(me, format!("{:x}", me.0))],
        cluster_id: known_cluster.unwrap_or(0),
        members: vec![Member {
            id: me,
            name: s.name.clone(),
            peer_urls: urls.clone(),
            client_urls: s.advertise_client.clone(),
        }],
        named: s
            .members
            .iter()
            .filter(|(n, _)| *n != s.name)
            .cloned()
            .collect(),
    })
}

/// The cluster id a data dir's meta record names, if it has one.
fn meta_cluster(data_dir: &std::path::Path) -> Option<u64> {
    let meta = std::fs::read_to_string(data_dir.join("floe.meta")).ok()?;
    let hex = meta.lines().find_map(|l| l.strip_prefix("cluster="))?;
    u64::from_str_radix(hex, 16).ok()
}

/// A founding member's etcd id: FNV-1a of its name, the token and its peer URLs.
fn founder_hex(token: &str, name: &str, urls: &[String]) -> String {
    let mut parts = vec![name, token];
    parts.extend(urls.iter().map(String::as_str));
    format!("{:x}", fnv(&parts))
}

fn identity(s: &Settings) -> Result<Identity, String> {
    let mut hex_ids = Vec::new();
    let mut members = Vec::new();
    let mut me = None;
    for (i, (name, urls)) in s.members.iter().enumerate() {
        let id = NodeId(i as u64 + 1);
        hex_ids.push((id, founder_hex(&s.token, name, urls)));
        if *name == s.name {
            me = Some(id);
        }
        members.push(Member {
            id,
            name: name.clone(),
            peer_urls: urls.clone(),
            client_urls: if *name == s.name {
                s.advertise_client.clone()
            } else {
                Vec::new()
            },
        });
    }
    let mut cluster_parts: Vec<&str> = hex_ids.iter().map(|(_, h)| h.as_str()).collect();
    cluster_parts.push(&s.token);
    Ok(Identity {
        me: me.ok_or("no member has this --name")?,
        peers: members.iter().map(|m| m.id).collect(),
        cluster_id: fnv(&cluster_parts),
        hex_ids,
        members,
        named: Vec::new(),
    })
}

/// Checks (or, on a first start, makes) this member's data directory; returns the log's path.
async fn open_data_dir(
    s: &Settings,
    cluster_hex: &str,
    member_hex: &str,
    state: &str,
) -> Result<PathBuf, String> {
    let mut data_dir = FileDataDir::new(&s.data_dir);
    let who = MemberIdentity {
        cluster: cluster_hex.to_string(),
        member: member_hex.to_string(),
        name: s.name.clone(),
    };
    // Members beside this one can repair a log damaged before its tail (see data_dir::check).
    let repairable = s.members.len() > 1;
    data_dir::check(&mut data_dir, &who, state, repairable)
        .await
        .map_err(|e| e.to_string())?;
    Ok(data_dir.wal_path())
}

/// Who this member is and, unless it joins a cluster it has not heard from yet, its checked
/// data dir's log path.
async fn identity_and_data_dir(
    s: &Settings,
    joining: bool,
) -> Result<(Identity, String, Option<PathBuf>), String> {
    let identity = if joining {
        joining_identity(s, meta_cluster(&s.data_dir))?
    } else {
        identity(s)?
    };
    let member_hex = identity
        .hex_ids
        .iter()
        .find(|(id, _)| *id == identity.me)
        .ok_or("no id")?
        .1
        .clone();
    // A member that joins and has no data dir yet opens it once it knows the cluster.
    let mut wal_path = None;
    if identity.cluster_id != 0 {
        let cluster_hex = format!("{:x}", identity.cluster_id);
        wal_path = Some(open_data_dir(s, &cluster_hex, &member_hex, &s.state).await?);
    }
    Ok((identity, member_hex, wal_path))
}

/// A joining member without a data dir: waits until the cluster's leader said hello (giving
/// the cluster id), then makes its data dir.
async fn joined_data_dir(
    s: &Settings,
    directory: &Directory,
    clock: SystemClock,
    member_hex: &str,
) -> Result<PathBuf, String> {
    tracing::info!(
        name = %s.name,
        member = %member_hex,
        "joining: waiting for the cluster's leader to contact this member (was it added with POST /v2/members or etcdctl member add?)"
    );
    while directory.cluster_id() == 0 {
        clock.sleep_until(clock.now_ms() + 20).await;
    }
    let cluster_hex = format!("{:x}", directory.cluster_id());
    open_data_dir(s, &cluster_hex, member_hex, "new").await
}

/// The node loop's configuration from the flags; a joining member starts with no
/// configuration; the transport follows the configurations (`Directory::apply_membership`).
fn node_config(
    s: &Settings,
    (me, peers): (NodeId, Vec<NodeId>),
    clock: SystemClock,
    metrics: std::sync::Arc<engine::server::Metrics>,
    (joining, directory): (bool, &Directory),
) -> engine::server::NodeConfig {
    let mut node_settings = NodeSettings::with_timing(s.heartbeat_ms, s.election_ms);
    node_settings.pre_vote = s.pre_vote;
    node_settings.check_quorum = s.check_quorum;
    // etcd's --snapshot-count: applied entries between snapshots; half as many stay in the log
    // so that a follower slightly behind catches up without a whole snapshot.
    node_settings.set_snapshot_count(s.snapshot_count);
    let mut node =
        node_settings.node_config(me, peers, clock.unix_ms() ^ (me.0 << 48), clock.unix_ns());
    node.metrics = metrics;
    node.raft.joining = joining;
    node.exit_when_removed = true;
    let peers_directory = directory.clone();
    node.on_membership = Some(MembershipHook(std::sync::Arc::new(move |m, reached| {
        peers_directory.apply_membership(m, reached);
    })));
    node
}

async fn run(s: Settings) -> Result<(), String> {
    let joining = s.state == "existing";
    let (
        Identity {
            me,
            peers,
            hex_ids,
            cluster_id,
            members,
            named,
        },
        member_hex,
        wal_path,
    ) = identity_and_data_dir(&s, joining).await?;
    let clock = SystemClock::new();
    let mut client_listeners = Vec::new();
    for addr in &s.listen_client {
        let listener = bind_reusable(*addr).map_err(|e| format!("client listener: {e}"))?;
        client_listeners.push(listener);
    }
    let metrics = std::sync::Arc::new(engine::server::Metrics::default());
    let (network, directory) = engine::net::start_peers(PeerSetup {
        id: me,
        name: s.name.clone(),
        cluster_id,
        named,
        listen: s.listen_peer.clone(),
        members,
        queue_max: 4096,
        clock,
        metrics: metrics.clone(),
        tls: s.peer_tls.clone(),
    })
    .await
    .map_err(|e| format!("peer listener: {e}"))?;
    let wal_path = match wal_path {
        Some(path) => path,
        None => joined_data_dir(&s, &directory, clock, &member_hex).await?,
    };
    let cluster_hex = format!("{:x}", directory.cluster_id());
    let disk = FileDisk::open(&wal_path)
        .map_err(|e| format!("log {}: {e}", wal_path.display()))?
        .with_faults(s.disk_faults);
    if s.disk_faults != engine::net::DiskFaults::default() {
        tracing::warn!(faults = ?s.disk_faults, "--unsafe-disk-faults: the log's disk will fail on purpose");
    }

    let node = node_config(&s, (me, peers), clock, metrics, (joining, &directory));
    let (client, requests) = KvClient::channel(8192);
    let control = client.clone();
    let app = App::new(
        client,
        clock,
        engine::http::spawn_on_tokio,
        HttpConfig {
            id: me,
            cluster_id: cluster_hex.clone(),
            cluster_token: s.token.clone(),
            legacy: s.legacy,
            request_timeout_ms: 5_000 + 2 * s.election_ms,
            expiration: s.expiration,
            metrics: node.metrics.clone(),
        },
        Box::new(DirectoryMembership::new(directory, hex_ids.clone(), &s)),
    );
    for listener in client_listeners {
        tokio_spawn(engine::http::serve(
            listener,
            app.clone(),
            s.client_tls.clone(),
        ));
    }
    tracing::info!(
        name = %s.name,
        member = %member_hex,
        cluster = %cluster_hex,
        clients = ?s.advertise_client,
        data_dir = %s.data_dir.display(),
        "floe is serving"
    );
    let env = Env {
        clock,
        net: network,
        disk,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
    let node_loop = engine::server::run(node, env, KvMachine::default(), requests, NoObserver);
    tokio::pin!(node_loop);
    tokio::select! {
        stopped = &mut node_loop => return stopped.map_err(|e| match e {
            NodeError::Removed { .. } => e.to_string(),
            e => format!("node stopped: {e}"),
        }),
        _ = terminate.recv() => {}
    }
    // The node loop keeps running while the leadership is handed over.
    tokio::select! {
        stopped = &mut node_loop => stopped.map_err(|e| format!("node stopped: {e}")),
        () = hand_over(&control, clock, s.election_ms) => Ok(()),
    }
}

/// On SIGTERM: a leader hands its leadership to its most up-to-date follower (Raft thesis
/// §3.10) and waits, at most about an election timeout, until another member leads, so that
/// clients wait for a handover instead of an election timeout. Logs what happened.
async fn hand_over(control: &KvClient, clock: SystemClock, election_ms: u64) {
    let Ok(status) = control.status().await else {
        return;
    };
    if status.role != RoleKind::Leader {
        tracing::info!(term = status.term.0, "SIGTERM: not the leader; stopping");
        return;
    }
    let target = match control.transfer_leader(None).await {
        Ok(Ok(target)) => target,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "SIGTERM: leadership transfer refused; stopping");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM: node did not answer; stopping");
            return;
        }
    };
    let started = clock.now_ms();
    tracing::info!(
        target = target.0,
        term = status.term.0,
        "SIGTERM: handing over leadership"
    );
    let deadline = started + election_ms;
    while clock.now_ms() < deadline {
        clock.sleep_until(clock.now_ms() + 5).await;
        let Ok(now) = control.status().await else {
            return;
        };
        if let Some(leader) = now.leader.filter(|&l| l != status.id) {
            tracing::info!(
                leader = leader.0,
                term = now.term.0,
                ms = clock.now_ms() - started,
                "SIGTERM: leadership handed over; stopping"
            );
            return;
        }
    }
    tracing::warn!(
        target = target.0,
        ms = election_ms,
        "SIGTERM: no handover within an election timeout; stopping anyway"
    );
}

#[allow(
    clippy::disallowed_methods,
    reason = "production: the HTTP servers run on tokio's runtime"
)]
fn tokio_spawn<F: std::future::Future<Output = ()> + Send + 'static>(future: F) {
    tokio::spawn(future);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match Flags::parse(&args, std::env::vars()) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("floe: {e}\nRun 'floe --help' for the flags.");
            return ExitCode::from(2);
        }
    };
    if flags.get("help").is_some() {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if flags.get("version").is_some() {
        println!(
            "floe {} (etcd v2 API, as etcd 3.4.23)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    for ignored in &flags.ignored {
        tracing::warn!(flag = %ignored, "flag not used by floe; ignored");
    }
    let settings = match settings(&flags) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("floe: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("floe: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe: {e}");
            ExitCode::FAILURE
        }
    }
}
