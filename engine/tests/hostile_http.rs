//! Hostile input on the client port: random and mutated HTTP requests (bad methods, paths,
//! encodings, huge headers and values, truncated heads, lying lengths) against a live member,
//! with slow senders holding connections open meanwhile. Every complete request gets an HTTP
//! answer, the member never crashes, its peak memory stays bounded, the slow senders are cut
//! off, and afterwards it still serves writes and reads.
//!
//! `FLOE_HOSTILE_HTTP_REQUESTS` sets the count (default 20,000, a slice for the test suite; the
//! full 100,000 with `FLOE_HOSTILE_HTTP_REQUESTS=100000`); `FLOE_HOSTILE_SEED` the seed.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{env_number, floe_single, http, peak_rss, temp_dir};

const CLIENT: u16 = 25581;
const PEER: u16 = 25582;
/// Threads sending requests at once.
const SENDERS: usize = 8;
/// Connections that send half a request head and then nothing.
const SLOW_SENDERS: usize = 64;
/// Peak resident memory the member may reach, bytes.
const PEAK_RSS_MAX: u64 = 256 << 20;

/// Well-formed requests the mutations start from.
const TEMPLATES: &[&str] = &[
    "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/keys/?recursive=true&sorted=true HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/keys/a?quorum=true HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/keys/?wait=true&recursive=true&waitIndex=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1",
    "PUT /v2/keys/d?dir=true HTTP/1.1\r\nHost: x\r\n\r\n",
    "PUT /v2/keys/a?prevExist=false&ttl=5 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=2",
    "PUT /v2/keys/a?prevValue=1&prevIndex=3 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=3",
    "POST /v2/keys/q HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=4",
    "DELETE /v2/keys/a?prevValue=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    "DELETE /v2/keys/d?dir=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/stats/self HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/stats/store HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/members HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/machines HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /version HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /mod/v2/lock/l?ttl=5&timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /mod/v2/lock/l HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /mod/v2/leader/l HTTP/1.1\r\nHost: x\r\n\r\n",
    "DELETE /mod/v2/leader/l?name=n HTTP/1.1\r\nHost: x\r\n\r\n",
];

const JUNK: &[&str] = &[
    "%",
    "%zz",
    "%00",
    "%ff%fe",
    "..",
    "/../",
    "//",
    "?",
    "&",
    "=",
    "\u{0}",
    "\r\n",
    "\r\n\r\n",
    " ",
    "\t",
    ":",
    "ttl=-1",
    "ttl=99999999999999999999",
    "waitIndex=-5",
    "prevIndex=x",
    "dir=maybe",
    "recursive=2",
    "value=",
    "%2F",
    "\u{ff}",
    "Content-Length: -1\r\n",
    "Content-Length: 99999999999\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Expect: 100-continue\r\n",
];

const METHODS: &[&str] = &[
    "GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "FOO", "get",
    "", "G\u{0}T",
];

/// One request: a template with a few mutations, or random bytes.
fn request(rng: &mut ChaCha8Rng) -> Vec<u8> {
    if rng.gen_range(0..20) == 0 {
        let len = rng.gen_range(0..512);
        return (0..len).map(|_| rng.r#gen()).collect();
    }
    let mut bytes = TEMPLATES[rng.gen_range(0..TEMPLATES.len())]
        .as_bytes()
        .to_vec();
    for _ in 0..rng.gen_range(0..4) {
        mutate(rng, &mut bytes);
    }
    bytes
}

fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    let at = rng.gen_range(0..=bytes.len());
    match rng.gen_range(0..8) {
        0 if !bytes.is_empty() => {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.r#gen();
        }
        1 => {
            let junk = JUNK[rng.gen_range(0..JUNK.len())].as_bytes();
            bytes.splice(at..at, junk.iter().copied());
        }
        2 => bytes.truncate(at),
        3 => {
            // A huge value or path segment.
            let n = rng.gen_range(1_000..200_000);
            let fill = [b'a', b'%', b'/', b'x'][rng.gen_range(0..4)];
            bytes.splice(at..at, std::iter::repeat_n(fill, n));
        }
        4 => {
            // Many headers after the request line.
            let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
            let count = rng.gen_range(1..300);
            let headers: Vec<u8> = (0..count)
                .flat_map(|i| format!("X-H{i}: {}\r\n", "v".repeat(i % 50)).into_bytes())
                .collect();
            let line_end = line_end.min(bytes.len());
            bytes.splice(line_end..line_end, headers);
        }
        5 => {
            let method = METHODS[rng.gen_range(0..METHODS.len())].as_bytes();
            let space = bytes.iter().position(|&b| b == b' ').unwrap_or(0);
            bytes.splice(0..space, method.iter().copied());
        }
        6 if bytes.len() > 8 => {
            let from = rng.gen_range(0..bytes.len() - 4);
            let chunk = bytes[from..from + 4].to_vec();
            bytes.splice(at..at, chunk);
        }
        _ => bytes
            .splice(at..at, [0xc3, 0x28, 0xa0, 0xa1])
            .for_each(drop),
    }
}

/// What the member did with one request.
enum Outcome {
    /// It answered with an HTTP status line.
    Answered,
    /// It closed the connection without an answer.
    Closed,
    /// Nothing within the read timeout.
    Silent,
}

/// Sends one request. A complete request keeps the write side open (the member, as etcd, takes a
/// client that hangs up for gone and drops its request); an incomplete one is ended with a
/// half-close, so that the member sees that no more is coming.
fn send(bytes: &[u8], complete: bool) -> Outcome {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", CLIENT)) else {
        panic!("the member stopped accepting connections");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The member may answer (and close) before it read everything: a write error is fine.
    let _ = stream.write_all(bytes);
    if !complete {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut head = [0u8; 16];
    let mut got = 0;
    loop {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got == head.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => return Outcome::Silent,
        }
    }
    if head[..got].starts_with(b"HTTP/1.") {
        Outcome::Answered
    } else {
        Outcome::Closed
    }
}

/// True if `bytes` holds a whole request: a head (up to the blank line that ends it) whose one
/// `Content-Length`, if any, the body after it fills.
fn complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let lengths: Vec<&str> = head
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("content-length:"))
        .collect();
    let body = bytes.len() - end - 4;
    match lengths[..] {
        [] => !head.contains("transfer-encoding"),
        [one] => one.trim().parse::<usize>().is_ok_and(|n| n <= body),
        _ => false,
    }
}

/// Sends `count` requests drawn from `seed`; returns (answered, incomplete and closed, silent).
fn run_sender(seed: u64, count: usize) -> (usize, usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut answered, mut closed, mut silent) = (0, 0, 0);
    for i in 0..count {
        let bytes = request(&mut rng);
        let whole = complete(&bytes);
        match send(&bytes, whole) {
            Outcome::Answered => answered += 1,
            Outcome::Closed if !whole => closed += 1,
            Outcome::Closed => panic!(
                "request {i} of sender seed {seed} got no HTTP answer: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
            Outcome::Silent => {
                if silent < 3 {
                    eprintln!(
                        "silent for 5 s: {:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    );
                }
                silent += 1;
            }
        }
    }
    (answered, closed, silent)
}

#[allow(
    clippy::disallowed_methods,
    reason = "a process-level test: real client threads against a real member"
)]
fn spawn_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(f)
}

#[test]
fn hostile_requests_get_answers_and_never_hurt_the_member() {
    let dir = temp_dir("hostile-http");
    let mut node = floe_single(&dir, CLIENT, PEER);
    let count: usize = env_number("FLOE_HOSTILE_HTTP_REQUESTS", 20_000);
    let seed: u64 = env_number("FLOE_HOSTILE_SEED", 1);
    let mut slow: Vec<TcpStream> = (0..SLOW_SENDERS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", CLIENT)).expect("connect");
            s.write_all(b"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("half a head");
            s
        })
        .collect();
    // Several senders at once, each with its own stream of requests from the seed.
    let per_sender = count.div_ceil(SENDERS);
    let senders: Vec<_> = (0..SENDERS)
        .map(|k| {
            let sender_seed = seed.wrapping_mul(1_000_003).wrapping_add(k as u64);
            spawn_thread(move || run_sender(sender_seed, per_sender))
        })
        .collect();
    let (mut answered, mut closed, mut silent) = (0, 0, 0);
    for sender in senders {
        let tally = sender.join().expect("a sender panicked");
        answered += tally.0;
        closed += tally.1;
        silent += tally.2;
    }
    if let Ok(Some(status)) = node.child.try_wait() {
        panic!("the member exited ({status}) (seed {seed})");
    }
    let count = per_sender * SENDERS;
    let peak = peak_rss(node.child.id());
    eprintln!(
        "{count} requests (seed {seed}): {answered} answered, {closed} incomplete requests closed, \
         {silent} silent; peak RSS {} MiB",
        peak >> 20
    );
    // A request the member waits on (a watch that a mutation pointed elsewhere) may stay
    // silent, and that is rare.
    assert!(
        silent * 100 <= count,
        "{silent} of {count} requests got no answer within 5 s"
    );
    assert!(peak < PEAK_RSS_MAX, "peak RSS {} MiB", peak >> 20);
    // The slow senders are cut off by the header timeout (10 s after they connected): each
    // read ends (end of stream, or hyper's 408) rather than waiting on.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        assert!(
            s.read(&mut buf).is_ok(),
            "a slow sender was still connected 15 s on"
        );
    }
    // The member still works.
    let r = http(CLIENT, "PUT", "/v2/keys/after", "value=ok").expect("PUT answered");
    assert!(r.starts_with("HTTP/1.0 20"), "{r}");
    let r = http(CLIENT, "GET", "/v2/keys/after?quorum=true", "").expect("GET answered");
    assert!(r.contains("\"value\":\"ok\""), "{r}");
    assert!(
        node.child.try_wait().expect("wait").is_none(),
        "member alive"
    );
}
