//! The peer wire codec: how Raft messages travel between members, byte for byte. The production
//! transport (`net::peer`, over TCP or TLS) and the simulator's network both speak it through
//! these functions, so the simulator exercises the codec that ships.
//!
//! A connection starts with a hello frame (magic, protocol version, cluster id, the sender's id,
//! name and client URLs), at most [`HELLO_BYTES_MAX`] bytes, then carries message frames: a u32
//! big-endian length and the postcard encoding of a [`Message`], at most [`FRAME_BYTES_MAX`]
//! bytes. [`Decoder`] takes the bytes in whatever pieces they arrive and hands back whole hellos
//! and messages; a length over the limit is refused as soon as its four bytes are in, before
//! any of the payload it claims is buffered.
//!
//! Runtime-agnostic: no I/O, no clock; compiled with or without the `net` feature.

use serde::{Deserialize, Serialize};

use crate::raft::{Message, NodeId};

mod message;

/// Tells a Floe peer stream from anything else that connects.
pub const MAGIC: u32 = 0x464c_4f45;
/// The peer protocol's version, checked in the hello (2: forwarded proposals and the version
/// field itself; 3: InstallSnapshot in chunks; 4: leadership transfer, TimeoutNow and
/// RequestVote's `transfer` flag; 5: configuration entries and InstallSnapshot's configuration;
/// 6: members' names and peer URLs in configurations, and a rejecting follower says whether
/// it lost acknowledged entries, `RejectHint::lost`; 7: store commands in entries in their
/// binary encoding instead of JSON).
pub const PROTOCOL_VERSION: u32 = 7;
/// Largest hello: nothing bigger is read before the peer proved it belongs to the cluster.
pub const HELLO_BYTES_MAX: usize = 64 << 10;
/// Largest frame accepted from a peer; a larger length closes the connection. A frame carries
/// one message, and the largest is a whole snapshot (InstallSnapshot).
pub const FRAME_BYTES_MAX: usize = crate::log::SNAPSHOT_BYTES_MAX + (1 << 20);
/// Bytes of a frame's length prefix.
pub const LEN_BYTES: usize = 4;
/// A decoder whose buffer grew past this (a large frame went through) gives the memory back
/// once it is empty.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// The first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`PROTOCOL_VERSION`]: a peer speaking another refuses the connection.
    pub version: u32,
    /// The sender's cluster: a peer of another cluster refuses the connection.
    pub cluster_id: u64,
    /// The sender.
    pub from: NodeId,
    /// The sender's name.
    pub name: String,
    /// The sender's client URLs.
    pub client_urls: Vec<String>,
}

impl Hello {
    /// The hello of member `from` of cluster `cluster_id`, in this build's protocol version.
    pub fn new(cluster_id: u64, from: NodeId, name: &str, client_urls: Vec<String>) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id,
            from,
            name: name.to_string(),
            client_urls,
        }
    }
}

/// Why bytes could not be encoded or decoded. After a decoding error the connection is over:
/// the decoder keeps answering with the same error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix over the limit of its place (hello or message frame).
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLong {
        /// The claimed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first frame is not a hello (it does not decode, or the magic is wrong).
    #[error("not a hello: {0}")]
    NotHello(String),
    /// The hello is of another protocol version.
    #[error("peer speaks protocol version {theirs}, this member {ours}")]
    Version {
        /// The peer's.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The hello is of another cluster.
    #[error("peer of cluster {theirs:x}, this member's is {ours:x}")]
    Cluster {
        /// The peer's.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// A message frame that does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A value that does not encode (a frame over 4 GiB, or a serializer error).
    #[error("does not encode: {0}")]
    Encode(String),
}

/// Planted bugs of the codec (feature `planted-bugs`, which only the simulator enables), each off
/// unless asked, so the simulator can prove its codec check bites.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireBugs {
    /// The decoder loses the first bytes of a length prefix that arrives split across two
    /// pieces (a TCP read ending inside the four length bytes): the length is then read from
    /// the wrong bytes.
    pub split_length_prefix: bool,
}

/// postcard output appended to a caller's buffer (no allocation once the buffer is warm).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value` to `out` as one frame: its length (u32, big endian), then its postcard
/// encoding. On error `out` is left as it was.
fn encode_frame<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = postcard::serialize_with_flavor(value, Append(out)) {
        out.truncate(start);
        return Err(WireError::Encode(e.to_string()));
    }
    finish_frame(out, start)
}

/// Writes the length prefix reserved at `start` for the body that follows it in `out`; a body
/// too long for the prefix is taken back out.
fn finish_frame(out: &mut Vec<u8>, start: usize) -> Result<(), WireError> {
    let len = out.len() - start - LEN_BYTES;
    let Ok(len) = u32::try_from(len) else {
        out.truncate(start);
        return Err(WireError::Encode(format!("a frame of {len} bytes")));
    };
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends the hello frame to `out`.
pub fn encode_hello(hello: &Hello, out: &mut Vec<u8>) -> Result<(), WireError> {
    encode_frame(hello, out)
}

/// Appends the frame of `msg` to `out`: postcard's bytes, written by hand for the common kinds
/// (see `message`), by postcard for the others.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if !message::encode(msg, out) {
        out.truncate(start);
        return encode_frame(msg, out);
    }
    finish_frame(out, start)
}

/// Decodes a message frame's payload: by hand for the common kinds, by postcard for the others
/// and for anything the hand-written reader is not sure of (postcard's errors stand).
fn decode_message(payload: &[u8]) -> Result<Message, WireError> {
    if let Some(msg) = message::decode(payload) {
        return Ok(msg);
    }
    postcard::from_bytes::<Message>(payload).map_err(|e| WireError::Malformed(e.to_string()))
}

/// `payload` as a frame: its length (u32, big endian), then the payload. For tools and tests
/// that write frames of their own making (the hostile-peer test); members use
/// [`encode_message`].
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame under 4 GiB");
    let mut out = Vec::with_capacity(LEN_BYTES + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes a hello frame's payload and checks it against this member's cluster: the magic,
/// then the protocol version, then the cluster id (any, if `cluster_id` is 0: not known yet).
pub fn decode_hello(payload: &[u8], cluster_id: u64) -> Result<Hello, WireError> {
    let hello =
        postcard::from_bytes::<Hello>(payload).map_err(|e| WireError::NotHello(e.to_string()))?;
    if hello.magic != MAGIC {
        return Err(WireError::NotHello(format!("magic {:08x}", hello.magic)));
    }
    if hello.version != PROTOCOL_VERSION {
        return Err(WireError::Version {
            theirs: hello.version,
            ours: PROTOCOL_VERSION,
        });
    }
    // 0: a member joining a running cluster does not know its id yet and takes the first.
    if cluster_id != 0 && hello.cluster_id != cluster_id {
        return Err(WireError::Cluster {
            theirs: hello.cluster_id,
            ours: cluster_id,
        });
    }
    Ok(hello)
}

/// What a connection's bytes decoded to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The connection's first frame, checked ([`decode_hello`]).
    Hello(Hello),
    /// A message frame.
    Message(Message),
}

/// The receiving end of one connection: push its bytes in the pieces they arrive in, and pull
/// the hello and then messages out with [`Decoder::next`].
#[derive(Debug)]
pub struct Decoder {
    cluster_id: u64,
    /// Received bytes; those before `pos` are consumed.
    buf: Vec<u8>,
    pos: usize,
    /// The hello was accepted: the rest are message frames.
    hello_seen: bool,
    /// The error that ended the connection.
    failed: Option<WireError>,
    #[cfg(feature = "planted-bugs")]
    bugs: WireBugs,
}

impl Decoder {
    /// A decoder for a new connection to a member of cluster `cluster_id`.
    pub fn new(cluster_id: u64) -> Decoder {
        Decoder {
            cluster_id,
            buf: Vec::new(),
            pos: 0,
            hello_seen: false,
            failed: None,
            #[cfg(feature = "planted-bugs")]
            bugs: WireBugs::default(),
        }
    }

    /// Switches planted bugs on (simulator only).
    #[cfg(feature = "planted-bugs")]
    pub fn set_bugs(&mut self, bugs: WireBugs) {
        self.bugs = bugs;
    }

    /// Starts over for a new connection (the buffer's memory is kept).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.hello_seen = false;
        self.failed = None;
    }

    /// Bytes received and not yet decoded: a partial frame, or frames not pulled yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The limit on the next frame's length: the hello's, then a message frame's.
    pub fn limit(&self) -> usize {
        if self.hello_seen {
            FRAME_BYTES_MAX
        } else {
            HELLO_BYTES_MAX
        }
    }

    /// Adds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if planted!(self.bugs.split_length_prefix) && self.buffered() < LEN_BYTES {
            // Planted: a partial length prefix is lost when the rest of it arrives.
            self.buf.truncate(self.pos);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole hello or message; `Ok(None)` until more bytes are pushed. The first
    /// frame must be a valid hello of this cluster, within [`HELLO_BYTES_MAX`]; the rest are
    /// messages within [`FRAME_BYTES_MAX`]. A length over the limit is refused as soon as its
    /// prefix is in.
    #[allow(
        clippy::should_implement_trait,
        reason = "fallible and not an iterator: it answers None until more bytes come"
    )]
    pub fn next(&mut self) -> Result<Option<Decoded>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let rest = &self.buf[self.pos..];
        let Some(prefix) = rest.first_chunk::<LEN_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        let max = self.limit();
        if len > max {
            return Err(self.fail(WireError::TooLong { len, max }));
        }
        let Some(payload) = rest.get(LEN_BYTES..LEN_BYTES + len) else {
            return Ok(None);
        };
        let decoded = if self.hello_seen {
            decode_message(payload).map(Decoded::Message)
        } else {
            decode_hello(payload, self.cluster_id).map(Decoded::Hello)
        };
        self.pos += LEN_BYTES + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_BUFFER_BYTES {
                self.buf.shrink_to(HELLO_BYTES_MAX);
            }
        }
        match decoded {
            Ok(decoded) => {
                self.hello_seen = true;
                Ok(Some(decoded))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.pos = 0;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind, Index, MessageKind, Term};

    const CLUSTER: u64 = 0xfeed;

    fn append(data_len: usize) -> Message {
        Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(7),
            kind: MessageKind::Append {
                prev_log_index: Index(3),
                prev_log_term: Term(6),
                entries: vec![Entry {
                    index: Index(4),
                    term: Term(7),
                    kind: EntryKind::Command(vec![0xab; data_len].into()),
                }],
                leader_commit: Index(3),
                read_seq: 9,
            },
        }
    }

    fn stream(msgs: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_hello(&Hello::new(CLUSTER, NodeId(2), "b", vec![]), &mut out).expect("hello");
        for m in msgs {
            encode_message(m, &mut out).expect("message");
        }
        out
    }

    fn decode_all(d: &mut Decoder) -> Result<Vec<Decoded>, WireError> {
        let mut out = Vec::new();
        while let Some(x) = d.next()? {
            out.push(x);
        }
        Ok(out)
    }

    #[test]
    fn every_split_of_a_stream_decodes_the_same() {
        let msgs = vec![append(0), append(300), append(5)];
        let bytes = stream(&msgs);
        for cut in 0..=bytes.len() {
            let mut d = Decoder::new(CLUSTER);
            d.push(&bytes[..cut]);
            let mut got = decode_all(&mut d).expect("first half");
            d.push(&bytes[cut..]);
            got.extend(decode_all(&mut d).expect("second half"));
            assert_eq!(got.len(), 4, "cut at {cut}");
            assert!(matches!(&got[0], Decoded::Hello(h) if h.from == NodeId(2)));
            for (g, m) in got[1..].iter().zip(&msgs) {
                assert_eq!(g, &Decoded::Message(m.clone()));
            }
            assert_eq!(d.buffered(), 0);
        }
        // One byte at a time.
        let mut d = Decoder::new(CLUSTER);
        let mut got = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            got.extend(decode_all(&mut d).expect("byte by byte"));
        }
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_claimed_length_over_the_limit_is_refused_before_its_payload() {
        let mut d = Decoder::new(CLUSTER);
        d.push(&((HELLO_BYTES_MAX + 1) as u32).to_be_bytes());
        assert!(matches!(d.next(), Err(WireError::TooLong { .. })));
        // The connection is over.
        d.push(&stream(&[]));
        assert!(d.next().is_err());
        let mut d = Decoder::new(CLUSTER);
        d.push(&stream(&[]));
        assert!(matches!(d.next(), Ok(Some(Decoded::Hello(_)))));
        d.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next(),
            Err(WireError::TooLong {
                len: u32::MAX as usize,
                max: FRAME_BYTES_MAX
            })
        );
    }

    #[test]
    fn hellos_of_another_cluster_version_or_kind_are_refused() {
        let check = |hello: &Hello| {
            let mut d = Decoder::new(CLUSTER);
            let mut bytes = Vec::new();
            encode_hello(hello, &mut bytes).expect("encodes");
            d.push(&bytes);
            d.next()
        };
        let good = Hello::new(CLUSTER, NodeId(1), "a", vec!["http://x:1".into()]);
        assert!(matches!(check(&good), Ok(Some(Decoded::Hello(h))) if h == good));
        let other = Hello::new(CLUSTER + 1, NodeId(1), "a", vec![]);
        assert!(matches!(check(&other), Err(WireError::Cluster { .. })));
        let mut newer = good.clone();
        newer.version += 1;
        assert!(matches!(check(&newer), Err(WireError::Version { .. })));
        let mut stranger = good;
        stranger.magic ^= 1;
        assert!(matches!(check(&stranger), Err(WireError::NotHello(_))));
        // A message where the hello should be.
        let mut d = Decoder::new(CLUSTER);
        let mut bytes = Vec::new();
        encode_message(&append(3), &mut bytes).expect("encodes");
        d.push(&bytes);
        assert!(d.next().is_err());
    }

    #[test]
    fn garbage_after_the_hello_is_malformed_not_a_panic() {
        let mut d = Decoder::new(CLUSTER);
        d.push(&stream(&[]));
        assert!(matches!(d.next(), Ok(Some(Decoded::Hello(_)))));
        d.push(&frame(&[0xff; 9]));
        assert!(matches!(d.next(), Err(WireError::Malformed(_))));
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn the_planted_bug_breaks_only_split_length_prefixes() {
        let msgs = vec![append(10), append(20)];
        let bytes = stream(&msgs);
        let bugs = WireBugs {
            split_length_prefix: true,
        };
        let mut whole = Decoder::new(CLUSTER);
        whole.set_bugs(bugs);
        whole.push(&bytes);
        assert_eq!(decode_all(&mut whole).expect("whole").len(), 3);
        let mut split = Decoder::new(CLUSTER);
        split.set_bugs(bugs);
        split.push(&bytes[..2]);
        split.push(&bytes[2..]);
        let got = decode_all(&mut split);
        assert!(got.is_err() || split.buffered() > 0, "{got:?}");
    }
}
