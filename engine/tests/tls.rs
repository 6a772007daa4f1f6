//! TLS on client and peer URLs, end to end: real `floe` processes with `https://` URLs and
//! certificates this test makes (a CA, a member certificate for 127.0.0.1 and localhost, a
//! client certificate, and a stranger's CA and certificate).
//!
//! - A 3-member cluster with client-cert auth on both sides serves writes and reads at the
//!   leader and at a follower; clients without a certificate, or with one from another CA, are
//!   refused at the handshake; peers dialing without a valid certificate (or in plain TCP) are
//!   refused and the cluster stays healthy.
//! - Misconfigurations (https without certificate files, mixed schemes, unreadable files) stop
//!   `floe` at once with an error that names the flag or the file.
//! - etcdctl v2 (`--ca-file`, `--cert-file`, `--key-file`) and python-etcd
//!   (`protocol='https'`, `ca_cert`, `cert`) work against a TLS member.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use engine::raft::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use support::{FLOE, Proc, repo, run_ok, setup, spawn, temp_dir};

/// The certificate files of one test, written under its directory.
struct Pki {
    ca: PathBuf,
    /// The members' certificate (127.0.0.1 and localhost; server and client use).
    node_cert: PathBuf,
    node_key: PathBuf,
    /// A client's certificate, signed by the same CA.
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A certificate for 127.0.0.1 signed by another CA the members do not trust.
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, key)
}

fn leaf(name: &str, issuer: &(rcgen::Certificate, KeyPair)) -> (String, String) {
    let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, &issuer.0, &issuer.1)
        .expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

fn make_pki(dir: &Path) -> Pki {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let ours = ca("floe test CA");
    let theirs = ca("stranger CA");
    let (node_cert, node_key) = leaf("floe member", &ours);
    let (client_cert, client_key) = leaf("floe client", &ours);
    let (stranger_cert, stranger_key) = leaf("stranger", &theirs);
    Pki {
        ca: write("ca.pem", &ours.0.pem()),
        node_cert: write("node.pem", &node_cert),
        node_key: write("node-key.pem", &node_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
        stranger_cert: write("stranger.pem", &stranger_cert),
        stranger_key: write("stranger-key.pem", &stranger_key),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client config trusting `ca`, presenting `identity` (certificate, key) if given.
fn client_tls(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in engine::net::load_certs(ca, "CA").expect("CA") {
        roots.add(cert).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                engine::net::load_certs(cert, "cert").expect("cert"),
                engine::net::load_key(key, "key").expect("key"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A TLS stream to 127.0.0.1:`port` (the handshake runs on first use).
fn tls_connect(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client connection");
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// One HTTP/1.0 request over TLS: the whole response, or the error (a refused handshake).
fn https(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<String, String> {
    let mut tls = tls_connect(port, config)?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify: what arrived is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The body of a 200 answer (panics with the whole answer otherwise).
fn ok_body(answer: Result<String, String>, what: &str) -> String {
    let text = answer.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(text.starts_with("HTTP/1.0 20"), "{what}: {text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Waits (up to 30 s) until `/health` over TLS on `port` says true.
fn wait_healthy_tls(port: u16, config: &Arc<rustls::ClientConfig>) {
    for _ in 0..300 {
        if let Ok(r) = https(port, config, "GET", "/health", "")
            && r.contains("\"health\":\"true\"")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the TLS member on port {port} never became healthy");
}

/// The TLS flags of a member with client-cert auth on both sides.
fn tls_flags(pki: &Pki) -> Vec<String> {
    let path = |p: &PathBuf| p.display().to_string();
    vec![
        format!("--cert-file={}", path(&pki.node_cert)),
        format!("--key-file={}", path(&pki.node_key)),
        format!("--trusted-ca-file={}", path(&pki.ca)),
        "--client-cert-auth".to_string(),
        format!("--peer-cert-file={}", path(&pki.node_cert)),
        format!("--peer-key-file={}", path(&pki.node_key)),
        format!("--peer-trusted-ca-file={}", path(&pki.ca)),
        "--peer-client-cert-auth".to_string(),
    ]
}

/// Starts members `n1..=n<count>` with https client ports `client_base + i` and https peer
/// ports `peer_base + i`, client-cert auth on both sides.
fn start_tls_cluster(
    dir: &Path,
    pki: &Pki,
    count: u16,
    client_base: u16,
    peer_base: u16,
) -> Vec<Proc> {
    let cluster: Vec<String> = (1..=count)
        .map(|i| format!("n{i}=https://127.0.0.1:{}", peer_base + i))
        .collect();
    (1..=count)
        .map(|i| {
            let mut args = vec![
                format!("--name=n{i}"),
                format!("--data-dir={}", dir.join(format!("n{i}")).display()),
                format!("--initial-cluster={}", cluster.join(",")),
                format!("--listen-client-urls=https://127.0.0.1:{}", client_base + i),
                format!("--listen-peer-urls=https://127.0.0.1:{}", peer_base + i),
            ];
            args.extend(tls_flags(pki));
            let log = dir.join(format!("n{i}.log"));
            spawn(&format!("n{i}"), FLOE, &args, &log)
        })
        .collect()
}

/// What a raw TLS client sees after its handshake with a peer port, sending nothing: a TLS
/// alert or a closed connection (`Err`), or silence while the member waits for a hello (`Ok`).
fn peer_probe(port: u16, config: &Arc<rustls::ClientConfig>) -> Result<(), String> {
    let mut tls = tls_connect(port, config)?;
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let mut byte = [0u8; 1];
    match tls.read(&mut byte) {
        Ok(0) => Err("closed".into()),
        Ok(_) => Err("unexpected data".into()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The client port of the member that says it leads (waits up to 10 s for one).
fn find_leader(ports: &[u16], config: &Arc<rustls::ClientConfig>) -> u16 {
    for _ in 0..100 {
        let leader = ports.iter().copied().find(|&p| {
            https(p, config, "GET", "/v2/stats/self", "").is_ok_and(|r| r.contains("StateLeader"))
        });
        if let Some(leader) = leader {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader among {ports:?}");
}

/// The members' peer ports (`peer_base + 1..=3`) refuse, at the TLS handshake, dialers
/// without a certificate of the cluster's CA, and never read a plain-TCP hello.
fn refuses_stranger_peers(dir: &Path, pki: &Pki, peer_base: u16, cluster_id: u64) {
    let stranger = client_tls(&pki.ca, Some((&pki.stranger_cert, &pki.stranger_key)));
    let anonymous = client_tls(&pki.ca, None);
    // Peers: a member's certificate gets through the handshake (the member then waits for a
    // hello); no certificate, or a stranger's, is refused at the handshake.
    let peer_ports: Vec<u16> = (1..=3).map(|i| peer_base + i).collect();
    let member = client_tls(&pki.ca, Some((&pki.node_cert, &pki.node_key)));
    peer_probe(peer_ports[0], &member).expect("a member's certificate was refused");
    let err = peer_probe(peer_ports[1], &stranger)
        .expect_err("a peer with a stranger's certificate got through the handshake");
    assert!(err.contains("UnknownCA"), "{err}");
    let err = peer_probe(peer_ports[2], &anonymous)
        .expect_err("a peer without a certificate got through the handshake");
    assert!(err.contains("CertificateRequired"), "{err}");
    // A plain-TCP hello of this very cluster, claiming to be member 1, is not read as one.
    for &port in &peer_ports {
        let mut raw = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        raw.write_all(&engine::net::hello_frame(cluster_id, NodeId(1), "n1"))
            .expect("send a plain hello");
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
        // At most a TLS alert record (content type 21) comes back before the close.
        assert!(rest.is_empty() || rest[0] == 21, "{rest:?}");
    }
    for i in 1..=3 {
        let log = std::fs::read_to_string(dir.join(format!("n{i}.log"))).expect("log");
        assert!(log.contains("peer TLS handshake refused"), "n{i}:\n{log}");
    }
}

#[test]
fn tls_cluster_serves_members_and_refuses_strangers() {
    let dir = temp_dir("tls-cluster");
    let pki = make_pki(&dir);
    let (client_base, peer_base) = (29610, 29620);
    let _nodes = start_tls_cluster(&dir, &pki, 3, client_base, peer_base);
    let good = client_tls(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let ports: Vec<u16> = (1..=3).map(|i| client_base + i).collect();
    for &port in &ports {
        wait_healthy_tls(port, &good);
    }
    let leader = find_leader(&ports, &good);
    // Silent dialers: connected, never a handshake byte. Each member cuts them off (client
    // port 10 s, peer port 5 s), so a slow client cannot hold a connection slot forever.
    let silent = [leader, peer_base + 1]
        .map(|port| TcpStream::connect(("127.0.0.1", port)).expect("connect silently"));
    let followers: Vec<u16> = ports.iter().copied().filter(|&p| p != leader).collect();

    // Writes and reads at the leader and through a follower.
    let put = ok_body(
        https(leader, &good, "PUT", "/v2/keys/tls/a", "value=at-leader"),
        "PUT at the leader",
    );
    assert!(put.contains("\"value\":\"at-leader\""), "{put}");
    let get = ok_body(
        https(followers[0], &good, "GET", "/v2/keys/tls/a?quorum=true", ""),
        "quorum GET at a follower",
    );
    assert!(get.contains("\"value\":\"at-leader\""), "{get}");
    let put = ok_body(
        https(
            followers[0],
            &good,
            "PUT",
            "/v2/keys/tls/b",
            "value=via-follower",
        ),
        "PUT through a follower",
    );
    assert!(put.contains("\"action\":\"set\""), "{put}");
    for &port in &[leader, followers[1]] {
        let get = ok_body(
            https(port, &good, "GET", "/v2/keys/tls/b?quorum=true", ""),
            "quorum GET after a follower's write",
        );
        assert!(get.contains("\"value\":\"via-follower\""), "{get}");
    }
    let machines = ok_body(https(leader, &good, "GET", "/v2/machines", ""), "machines");
    assert_eq!(
        machines.matches("https://127.0.0.1:").count(),
        3,
        "{machines}"
    );

    // Clients without a certificate of our CA are refused at the handshake.
    let anonymous = client_tls(&pki.ca, None);
    let err = https(leader, &anonymous, "GET", "/v2/keys/tls/a", "")
        .expect_err("a client without a certificate was served");
    assert!(err.contains("CertificateRequired"), "{err}");
    let stranger = client_tls(&pki.ca, Some((&pki.stranger_cert, &pki.stranger_key)));
    let err = https(followers[0], &stranger, "GET", "/v2/keys/tls/a", "")
        .expect_err("a client with a stranger's certificate was served");
    assert!(err.contains("UnknownCA"), "{err}");
    // Plain HTTP on an https port gets no HTTP answer.
    let plain = support::http(leader, "GET", "/v2/keys/tls/a", "").unwrap_or_default();
    assert!(!plain.contains("at-leader"), "{plain}");

    let probe = https(leader, &good, "GET", "/v2/members", "").expect("members");
    let cluster_hex = header(&probe, "X-Etcd-Cluster-Id").expect("cluster id header");
    let cluster_id = u64::from_str_radix(cluster_hex, 16).expect("hex cluster id");
    refuses_stranger_peers(&dir, &pki, peer_base, cluster_id);

    for (mut socket, port) in silent.into_iter().zip([leader, peer_base + 1]) {
        // The checks above took a few seconds; the cut must come within 12 s more.
        socket
            .set_read_timeout(Some(Duration::from_secs(12)))
            .expect("timeout");
        let mut rest = Vec::new();
        match socket.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a silent connection to port {port} was not cut off: {e}"),
        }
    }

    // The cluster stays healthy and keeps taking writes everywhere.
    for &port in &ports {
        wait_healthy_tls(port, &good);
        let body = format!("value=after-{port}");
        let put = ok_body(
            https(
                port,
                &good,
                "PUT",
                &format!("/v2/keys/tls/after/{port}"),
                &body,
            ),
            "PUT after the strangers",
        );
        assert!(put.contains(&format!("after-{port}")), "{put}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `floe args` expecting it to stop at once with an error; its output.
fn startup_error(args: &[String]) -> String {
    let dir = temp_dir("tls-startup");
    let mut child = Command::new(FLOE)
        .args(args)
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start floe");
    for _ in 0..200 {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().expect("wait").is_none() {
        let _ = child.kill();
        panic!("floe {args:?} kept running instead of refusing its configuration");
    }
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "floe {args:?} succeeded: {text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn tls_misconfiguration_is_a_clear_startup_error() {
    let help = run_ok("floe --help", Command::new(FLOE).arg("--help"));
    for flag in [
        "--cert-file",
        "--key-file",
        "--trusted-ca-file",
        "--client-cert-auth",
        "--peer-cert-file",
        "--peer-key-file",
        "--peer-trusted-ca-file",
        "--peer-client-cert-auth",
    ] {
        assert!(
            help.contains(&format!("  {flag} ")),
            "--help lacks {flag}:\n{help}"
        );
    }
    let dir = temp_dir("tls-misconfig");
    let pki = make_pki(&dir);
    let s = |v: &str| v.to_string();
    let client = s("--listen-client-urls=https://127.0.0.1:29651");
    let peer = s("--listen-peer-urls=https://127.0.0.1:29652");
    let peer_files = vec![
        format!("--peer-cert-file={}", pki.node_cert.display()),
        format!("--peer-key-file={}", pki.node_key.display()),
        format!("--peer-trusted-ca-file={}", pki.ca.display()),
    ];
    let plain_peer = s("--listen-peer-urls=http://127.0.0.1:29652");

    let e = startup_error(&[client.clone(), plain_peer.clone()]);
    assert!(e.contains("https:// client URLs need --cert-file"), "{e}");
    let e = startup_error(&[
        client.clone(),
        plain_peer.clone(),
        format!("--cert-file={}", pki.node_cert.display()),
    ]);
    assert!(e.contains("need --key-file"), "{e}");
    let missing = dir.join("no-such-cert.pem");
    let e = startup_error(&[
        client.clone(),
        plain_peer.clone(),
        format!("--cert-file={}", missing.display()),
        format!("--key-file={}", pki.node_key.display()),
    ]);
    assert!(
        e.contains("cannot read --cert-file") && e.contains("no-such-cert.pem"),
        "{e}"
    );
    // A key file that holds a certificate, not a key.
    let e = startup_error(&[
        client.clone(),
        plain_peer.clone(),
        format!("--cert-file={}", pki.node_cert.display()),
        format!("--key-file={}", pki.node_cert.display()),
    ]);
    assert!(
        e.contains("--key-file") && e.contains("node.pem") && e.contains("no PRIVATE KEY"),
        "{e}"
    );
    // A key that is not the certificate's.
    let e = startup_error(&[
        client.clone(),
        plain_peer.clone(),
        format!("--cert-file={}", pki.node_cert.display()),
        format!("--key-file={}", pki.client_key.display()),
    ]);
    assert!(
        e.contains("client-key.pem") && e.contains("the key is not the certificate's"),
        "{e}"
    );
    let e = startup_error(&[
        client.clone(),
        plain_peer.clone(),
        format!("--cert-file={}", pki.node_cert.display()),
        format!("--key-file={}", pki.node_key.display()),
        s("--client-cert-auth"),
    ]);
    assert!(
        e.contains("--client-cert-auth needs --trusted-ca-file"),
        "{e}"
    );
    // Peers: https needs all three files, and one scheme everywhere.
    let e = startup_error(std::slice::from_ref(&peer));
    assert!(
        e.contains("https:// peer URLs need --peer-cert-file"),
        "{e}"
    );
    let e = startup_error(&[peer.clone(), peer_files[0].clone(), peer_files[1].clone()]);
    assert!(e.contains("need --peer-trusted-ca-file"), "{e}");
    let mut mixed = vec![
        peer.clone(),
        s("--name=a"),
        s("--initial-cluster=a=https://127.0.0.1:29652,b=http://127.0.0.1:29662"),
    ];
    mixed.extend(peer_files.clone());
    let e = startup_error(&mixed);
    assert!(e.contains("mix http:// and https://"), "{e}");
    let e = startup_error(&[
        s("--listen-client-urls=https://127.0.0.1:29651"),
        s("--advertise-client-urls=http://127.0.0.1:29651"),
        plain_peer,
    ]);
    assert!(e.contains("mix http:// and https://"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-member TLS floe (client-cert auth on) on `client`/`peer` ports, healthy.
fn tls_single(dir: &Path, pki: &Pki, client: u16, peer: u16) -> Vec<Proc> {
    let nodes = start_tls_cluster(dir, pki, 1, client - 1, peer - 1);
    let good = client_tls(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    wait_healthy_tls(client, &good);
    nodes
}

#[test]
fn etcdctl_v2_over_tls() {
    setup(&["etcd"]);
    let dir = temp_dir("tls-etcdctl");
    let pki = make_pki(&dir);
    let _floe = tls_single(&dir, &pki, 29631, 29632);
    let url = "https://127.0.0.1:29631";
    let ctl = |args: &[&str], with_cert: bool| {
        let mut command = Command::new("etcdctl");
        command.env("ETCDCTL_API", "2").args(["--endpoints", url]);
        command.arg("--ca-file").arg(&pki.ca);
        if with_cert {
            command.arg("--cert-file").arg(&pki.client_cert);
            command.arg("--key-file").arg(&pki.client_key);
        }
        command.args(args);
        command
    };
    let out = run_ok("etcdctl set", &mut ctl(&["set", "/tls/ctl", "hello"], true));
    assert_eq!(out.trim(), "hello");
    let out = run_ok("etcdctl get", &mut ctl(&["get", "/tls/ctl"], true));
    assert_eq!(out.trim(), "hello");
    let refused = ctl(&["get", "/tls/ctl"], false)
        .output()
        .expect("etcdctl runs");
    assert!(
        !refused.status.success(),
        "etcdctl without a certificate was served: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    // The whole etcdctl script of clients.rs, over TLS, with etcdctl's ETCDCTL_* variables.
    let out = run_ok(
        "etcdctl.sh over TLS",
        Command::new("bash")
            .arg(repo().join("engine/tests/clients/etcdctl.sh"))
            .arg(url)
            .env("ETCDCTL_CA_FILE", &pki.ca)
            .env("ETCDCTL_CERT_FILE", &pki.client_cert)
            .env("ETCDCTL_KEY_FILE", &pki.client_key),
    );
    assert!(out.contains("behaved"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_etcd_over_tls() {
    setup(&["python-etcd"]);
    let dir = temp_dir("tls-python-etcd");
    let pki = make_pki(&dir);
    let _floe = tls_single(&dir, &pki, 29641, 29642);
    let python = repo().join("target/venvs/python-etcd/bin/python");
    let out = run_ok(
        "python_etcd_tls.py",
        Command::new(python)
            .arg(repo().join("engine/tests/clients/python_etcd_tls.py"))
            .args(["127.0.0.1", "29641"])
            .arg(&pki.ca)
            .arg(&pki.client_cert)
            .arg(&pki.client_key),
    );
    assert!(out.contains("python-etcd over TLS behaved"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
