//! Hostile input on the peer port of a live 3-member cluster: connections that say a valid
//! hello (as member c) to member a and then send random frames and mutated encodings of Raft
//! messages (bit flips, cut and grown payloads, lying lengths), beside strangers that send
//! random bytes with no hello at all. No member crashes, member a's peak memory stays bounded,
//! and once the noise stops the cluster elects a leader and serves writes and quorum reads on
//! every member.
//!
//! Sent too: TimeoutNow (a forged leadership transfer), SnapshotResponse, and InstallSnapshot
//! chunks that are not the last (offsets and claimed totals up to far beyond any snapshot: the
//! member may not reserve what a chunk claims). Not sent: a last chunk. A forged snapshot that
//! completes and does not restore stops the member with a clear message (a member cannot tell a
//! forged snapshot from a corrupt one); the defence against a stranger that can speak as a
//! member is peer authentication (TLS client certificates: `--peer-client-cert-auth`,
//! tests/tls.rs), not the frame checks this test exercises.
//!
//! `FLOE_HOSTILE_PEER_FRAMES` sets the count of frames sent on a connection the member kept
//! open after them (default 20,000, a slice for the test suite; 100,000
//! for a full run); `FLOE_HOSTILE_SEED` the seed.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use engine::raft::{
    Entry, EntryKind, Index, Membership, Message, MessageKind, NodeId, Proposal, RejectHint, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{FLOE, Proc, env_number, http, peak_rss, spawn, temp_dir, wait_healthy};

/// (name, client port); the peer port is the client port + 1.
const MEMBERS: [(&str, u16); 3] = [("a", 25591), ("b", 25593), ("c", 25595)];
/// Peak resident memory member a may reach, bytes.
const PEAK_RSS_MAX: u64 = 256 << 20;
/// Frames sent on one connection at most before it is closed and a new one opened.
const FRAMES_PER_CONNECTION: usize = 200;

/// A plausible message from member 3 to member 1: the base that mutations start from.
fn message(rng: &mut ChaCha8Rng) -> Message {
    let term = Term(rng.gen_range(0..4));
    let index = |rng: &mut ChaCha8Rng| Index(rng.gen_range(0..50));
    let entry = |rng: &mut ChaCha8Rng, i: u64| Entry {
        term: Term(rng.gen_range(1..=term.0.max(1))),
        index: Index(i),
        kind: if rng.gen_bool(0.5) {
            EntryKind::Noop
        } else {
            EntryKind::Command((0..rng.gen_range(0..40)).map(|_| rng.r#gen()).collect())
        },
    };
    let kind = match rng.gen_range(0..12) {
        0 => MessageKind::Vote {
            last_log_index: index(rng),
            last_log_term: term,
            transfer: rng.r#gen(),
        },
        1 => MessageKind::VoteResponse {
            granted: rng.r#gen(),
        },
        2 => MessageKind::PreVote {
            last_log_index: index(rng),
            last_log_term: term,
        },
        3 => MessageKind::PreVoteResponse {
            granted: rng.r#gen(),
        },
        4 => {
            let prev = rng.gen_range(0..30);
            MessageKind::Append {
                prev_log_index: Index(prev),
                prev_log_term: Term(rng.gen_range(0..=term.0)),
                entries: (0..rng.gen_range(0..4))
                    .map(|i| entry(rng, prev + 1 + i))
                    .collect(),
                leader_commit: index(rng),
                read_seq: rng.gen_range(0..5),
            }
        }
        5 => MessageKind::AppendResponse {
            success: rng.r#gen(),
            match_index: index(rng),
            hint: rng.gen_bool(0.5).then(|| RejectHint {
                rejected: index(rng),
                conflict_term: rng.gen_bool(0.5).then_some(term),
                conflict_index: index(rng),
                lost: rng.gen_bool(0.5),
            }),
            read_seq: rng.gen_range(0..5),
        },
        6 => MessageKind::Propose {
            proposals: (0..rng.gen_range(0..3))
                .map(|_| Proposal {
                    tag: rng.r#gen(),
                    data: (0..rng.gen_range(0..60)).map(|_| rng.r#gen()).collect(),
                })
                .collect(),
        },
        7 => MessageKind::ReadIndex { ctx: rng.r#gen() },
        8 => MessageKind::TimeoutNow,
        9 => MessageKind::SnapshotResponse {
            index: index(rng),
            offset: rng.gen_range(0..1 << 40),
        },
        10 => {
            // A chunk that is never the last: its claimed total runs from tiny to far beyond
            // any snapshot.
            let data: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.r#gen()).collect();
            let bits = rng.gen_range(1..44);
            let total = data.len() as u64 + 1 + rng.gen_range(0..1u64 << bits);
            MessageKind::Snapshot {
                index: index(rng),
                term,
                offset: if rng.gen_bool(0.7) {
                    0
                } else {
                    rng.gen_range(0..total)
                },
                total,
                data: data.into(),
                done: false,
                // Any configuration, even one the member is not in (its own, or a stranger's).
                membership: Box::new(Membership::with_voters(
                    (1..=rng.gen_range(1..=5)).map(NodeId).collect(),
                )),
            }
        }
        _ => MessageKind::ReadIndexResponse {
            ctx: rng.r#gen(),
            index: index(rng),
        },
    };
    Message {
        from: NodeId(3),
        to: NodeId(1),
        term,
        kind,
    }
}

/// One frame: a mutated message encoding, or random bytes, with a true or lying length.
fn hostile_frame(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut payload = if rng.gen_range(0..20) == 0 {
        (0..rng.gen_range(0..300)).map(|_| rng.r#gen()).collect()
    } else {
        postcard::to_stdvec(&message(rng)).expect("a message encodes")
    };
    for _ in 0..rng.gen_range(0..3) {
        match rng.gen_range(0..3) {
            0 if !payload.is_empty() => {
                let i = rng.gen_range(0..payload.len());
                payload[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => payload.truncate(rng.gen_range(0..=payload.len())),
            _ => payload.extend((0..rng.gen_range(1..20)).map(|_| rng.r#gen::<u8>())),
        }
    }
    let mut frame = engine::net::frame(&payload);
    if rng.gen_range(0..50) == 0 {
        // A length that promises more (or far more) than follows.
        let lie: u32 = if rng.r#gen() {
            rng.r#gen()
        } else {
            payload.len() as u32 + 1
        };
        frame[..4].copy_from_slice(&lie.to_be_bytes());
    }
    frame
}

fn cluster_id(port: u16) -> u64 {
    let r = http(port, "GET", "/v2/keys/", "").expect("keys answered");
    let id = r
        .lines()
        .find_map(|l| l.strip_prefix("X-Etcd-Cluster-Id: "))
        .expect("cluster id header");
    u64::from_str_radix(id.trim(), 16).expect("hex cluster id")
}

/// Connects to `port` (a's peer port), writing the hello and then frames from `rng` until
/// `left` frames went out or the member closed the connection (it closes one on an undecodable
/// frame: a frame counts only if the connection was still open after it).
fn send_connection(port: u16, hello: &[u8], rng: &mut ChaCha8Rng, left: &mut usize) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("peer port accepts");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    if stream.write_all(hello).is_err() {
        return;
    }
    for _ in 0..FRAMES_PER_CONNECTION {
        if *left == 0 || stream.write_all(&hostile_frame(rng)).is_err() || closed(&mut stream) {
            return;
        }
        *left -= 1;
    }
}

/// True if the member closed the connection (it never writes on an inbound one).
fn closed(stream: &mut TcpStream) -> bool {
    // Let the member read what was sent before looking.
    std::thread::sleep(Duration::from_micros(200));
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1];
    let gone =
        !matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    gone
}

#[test]
fn hostile_peer_frames_never_crash_or_bloat_a_member() {
    let dir = temp_dir("hostile-peer");
    let cluster = MEMBERS
        .iter()
        .map(|(name, client)| format!("{name}=http://127.0.0.1:{}", client + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Proc> = MEMBERS
        .iter()
        .map(|(name, client)| {
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", dir.join(name).display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{}", client + 1),
                format!("--initial-cluster={cluster}"),
            ];
            spawn(name, FLOE, &args, &dir.join(format!("{name}.log")))
        })
        .collect();
    for (_, client) in MEMBERS {
        wait_healthy(client);
    }
    let count: usize = env_number("FLOE_HOSTILE_PEER_FRAMES", 20_000);
    let seed: u64 = env_number("FLOE_HOSTILE_SEED", 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a_peer = MEMBERS[0].1 + 1;
    let hello = engine::net::hello_frame(cluster_id(MEMBERS[0].1), NodeId(3), "c");
    let mut left = count;
    let mut connections = 0;
    while left > 0 {
        connections += 1;
        if rng.gen_range(0..10) == 0 {
            // A stranger: random bytes, no hello.
            let mut s = TcpStream::connect(("127.0.0.1", a_peer)).expect("peer port accepts");
            let junk: Vec<u8> = (0..rng.gen_range(1..2000)).map(|_| rng.r#gen()).collect();
            let _ = s.write_all(&junk);
            continue;
        }
        send_connection(a_peer, &hello, &mut rng, &mut left);
        for m in &mut members {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("member {} exited ({status}) (seed {seed})", m.name);
            }
        }
    }
    let peak = peak_rss(members[0].child.id());
    let log = std::fs::read_to_string(dir.join("a.log")).unwrap_or_default();
    let undecodable = log.matches("malformed peer frame").count();
    let refused = log.matches("dropped a message").count();
    eprintln!(
        "{count} frames on {connections} connections (seed {seed}); member a: {undecodable} \
         undecodable frames (connection closed), {refused} messages refused by the Raft core, \
         peak RSS {} MiB",
        peak >> 20
    );
    assert!(peak < PEAK_RSS_MAX, "peak RSS {} MiB", peak >> 20);
    // The noise stopped: the cluster settles and every member serves.
    for (name, client) in MEMBERS {
        wait_healthy(client);
        let path = format!("/v2/keys/after-{name}");
        let mut written = None;
        for _ in 0..100 {
            let r = http(client, "PUT", &path, "value=ok").unwrap_or_default();
            if r.starts_with("HTTP/1.0 20") {
                written = Some(r);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            written.is_some(),
            "member {name} takes a write after the noise"
        );
        let r = http(client, "GET", &format!("{path}?quorum=true"), "").expect("read");
        assert!(r.contains("\"value\":\"ok\""), "member {name}: {r}");
    }
    for m in &mut members {
        assert!(
            m.child.try_wait().expect("wait").is_none(),
            "{} alive",
            m.name
        );
    }
}
