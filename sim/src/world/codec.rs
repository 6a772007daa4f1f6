//! The production peer codec (`engine::wire`) on the simulated network. Each directed link
//! `from -> to` behaves like one of `floe`'s peer connections: the first message on it (and the
//! first after the connection was reset: a crash or restart of either end, or a cut of the
//! link) opens a connection with `from`'s hello; every message is encoded to frame bytes by the
//! production encoder when it is sent, and decoded by the receiver's per-link production
//! decoder when it is delivered, which checks the hello against the receiver's cluster id and
//! protocol version first. The bytes reach the decoder in pieces cut from the seed, so a read
//! that ends inside a frame, or inside its length prefix, happens all the time.
//!
//! The network may lose, duplicate and reorder messages, but it never corrupts a byte: each
//! message's frame reaches the decoder whole and alone, so anything but exactly that message
//! coming out (an error, bytes left over, a second message, another sender) is a codec bug,
//! reported as a violation of the rule "peer codec".

use std::sync::Arc;

use engine::raft::{Message, NodeId};
use engine::wire::{self, Decoded, Decoder, Hello, LEN_BYTES};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A message's bytes in flight.
pub struct Wire {
    /// The connection it was written on (1, 2, ... over the run).
    conn: u64,
    /// That connection's hello, as its sender encoded it.
    hello: Arc<[u8]>,
    /// The message's frame.
    frame: Vec<u8>,
}

/// A decoding failure at a receiver.
#[derive(Clone, Debug)]
pub struct CodecFault {
    /// The sending end of the link.
    pub from: NodeId,
    /// The receiving end.
    pub to: NodeId,
    /// What went wrong.
    pub detail: String,
}

/// One directed link: the sender's connection and the receiver's decoder.
struct Link {
    /// The sender's connection (0: none open).
    tx_conn: u64,
    /// Its hello.
    tx_hello: Arc<[u8]>,
    /// The connection the receiver's decoder is reading.
    rx_conn: u64,
    decoder: Decoder,
}

/// Every link's codec state.
pub struct Codec {
    size: usize,
    cluster_id: u64,
    links: Vec<Link>,
    next_conn: u64,
    /// Where the pieces are cut: a stream of its own, so no other draw of the seed moves.
    rng: ChaCha8Rng,
    cuts: Vec<usize>,
    /// A new connection's hello and first frame, read as one stream.
    joined: Vec<u8>,
    /// Frame buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// Connections opened (hellos sent).
    pub hellos: u64,
    /// Bytes encoded (frames and hellos).
    pub bytes: u64,
}

fn slot(id: NodeId) -> usize {
    id.0 as usize - 1
}

impl Codec {
    /// No connection open yet, on a cluster of `size` nodes with id `cluster_id`.
    pub fn new(size: usize, cluster_id: u64, rng: ChaCha8Rng) -> Codec {
        let empty: Arc<[u8]> = Arc::from(Vec::new());
        Codec {
            size,
            cluster_id,
            links: (0..size * size)
                .map(|_| Link {
                    tx_conn: 0,
                    tx_hello: empty.clone(),
                    rx_conn: 0,
                    decoder: Decoder::new(cluster_id),
                })
                .collect(),
            next_conn: 0,
            rng,
            cuts: Vec::new(),
            joined: Vec::new(),
            spare: Vec::new(),
            hellos: 0,
            bytes: 0,
        }
    }

    /// Plants the codec's bugs in every receiver's decoder.
    pub fn set_bugs(&mut self, bugs: wire::WireBugs) {
        for link in &mut self.links {
            link.decoder.set_bugs(bugs);
        }
    }

    fn link(&self, from: NodeId, to: NodeId) -> usize {
        slot(from) * self.size + slot(to)
    }

    /// Node `id` crashed or restarted: every connection from or to it is gone, and its decoders
    /// start over.
    pub fn reset_node(&mut self, id: NodeId) {
        for peer in 1..=self.size as u64 {
            let (out, into) = (self.link(id, NodeId(peer)), self.link(NodeId(peer), id));
            self.links[out].tx_conn = 0;
            self.links[into].tx_conn = 0;
            self.links[into].rx_conn = 0;
            self.links[into].decoder.reset();
        }
    }

    /// The link `from -> to` was cut: its connection is gone.
    pub fn reset_link(&mut self, from: NodeId, to: NodeId) {
        let i = self.link(from, to);
        self.links[i].tx_conn = 0;
    }

    /// Writes `msg` on its link: a hello first if no connection is open, then its frame.
    pub fn encode(&mut self, msg: &Message) -> Result<Wire, CodecFault> {
        let i = self.link(msg.from, msg.to);
        let fault = |e: wire::WireError| CodecFault {
            from: msg.from,
            to: msg.to,
            detail: format!("the sender could not encode: {e}"),
        };
        if self.links[i].tx_conn == 0 {
            let hello = Hello::new(
                self.cluster_id,
                msg.from,
                &format!("n{}", msg.from.0),
                Vec::new(),
            );
            let mut bytes = Vec::new();
            wire::encode_hello(&hello, &mut bytes).map_err(fault)?;
            self.next_conn += 1;
            self.hellos += 1;
            self.bytes += bytes.len() as u64;
            self.links[i].tx_conn = self.next_conn;
            self.links[i].tx_hello = Arc::from(bytes);
        }
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        wire::encode_message(msg, &mut frame).map_err(fault)?;
        self.bytes += frame.len() as u64;
        let link = &self.links[i];
        Ok(Wire {
            conn: link.tx_conn,
            hello: link.tx_hello.clone(),
            frame,
        })
    }

    /// A second copy of the same bytes (the network duplicated them).
    pub fn copy(&mut self, wire: &Wire) -> Wire {
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        frame.extend_from_slice(&wire.frame);
        Wire {
            conn: wire.conn,
            hello: wire.hello.clone(),
            frame,
        }
    }

    /// Bytes that were lost: their buffer is reused.
    pub fn recycle(&mut self, wire: Wire) {
        self.spare.push(wire.frame);
    }

    /// Reads `wire` at `to`, as sent by `from`, and returns the message it carries.
    pub fn decode(&mut self, from: NodeId, to: NodeId, wire: Wire) -> Result<Message, CodecFault> {
        let i = self.link(from, to);
        let fault = |detail: String| CodecFault { from, to, detail };
        let new_conn = self.links[i].rx_conn != wire.conn;
        if new_conn {
            // A connection the receiver has not read yet: its hello comes first.
            self.links[i].rx_conn = wire.conn;
            self.links[i].decoder.reset();
            self.joined.clear();
            self.joined.extend_from_slice(&wire.hello);
            self.joined.extend_from_slice(&wire.frame);
        }
        let mut got = [None, None, None];
        let fed = if new_conn {
            let joined = std::mem::take(&mut self.joined);
            let fed = self.feed(i, &joined, &mut got);
            self.joined = joined;
            fed
        } else {
            self.feed(i, &wire.frame, &mut got)
        };
        self.spare.push(wire.frame);
        fed.map_err(|e| fault(format!("the receiver's decoder failed: {e}")))?;
        let [first, second, third] = &mut got;
        let left = self.links[i].decoder.buffered();
        let (msg, extra) = if new_conn {
            match first.take() {
                Some(Decoded::Hello(h)) if h.from == from => {}
                other => {
                    return Err(fault(format!(
                        "a new connection did not open with n{}'s hello: {other:?}",
                        from.0
                    )));
                }
            }
            (second.take(), third.take())
        } else {
            (first.take(), second.take())
        };
        let msg = match (msg, extra, left) {
            (Some(Decoded::Message(msg)), None, 0) => msg,
            (msg, extra, left) => {
                return Err(fault(format!(
                    "one frame did not decode to one message: got {msg:?}, then {extra:?}, \
                     {left} bytes left waiting"
                )));
            }
        };
        if msg.from != from || msg.to != to {
            return Err(fault(format!(
                "a message on the link n{} -> n{} says it is from n{} to n{}",
                from.0, to.0, msg.from.0, msg.to.0
            )));
        }
        Ok(msg)
    }

    /// Pushes `bytes` into link `i`'s decoder in seeded pieces, pulling out what decodes after
    /// each piece, as a read loop does. Leaves the first three things decoded in `out` (a new
    /// connection's hello, its message, and anything after it, which is already a fault);
    /// more are pulled out and dropped.
    fn feed(
        &mut self,
        i: usize,
        bytes: &[u8],
        out: &mut [Option<Decoded>; 3],
    ) -> Result<(), wire::WireError> {
        let mut n = 0;
        draw_cuts(&mut self.rng, bytes.len(), &mut self.cuts);
        let decoder = &mut self.links[i].decoder;
        let mut start = 0;
        for end in self.cuts.iter().copied().chain([bytes.len()]) {
            decoder.push(&bytes[start..end]);
            start = end;
            while let Some(d) = decoder.next()? {
                if let Some(slot) = out.get_mut(n) {
                    *slot = Some(d);
                }
                n += 1;
            }
        }
        Ok(())
    }
}

/// Where the reads of `len` bytes end, in increasing order (the last read ends at `len`): half
/// the time one read; else a few reads ending anywhere, a read ending inside the length prefix,
/// or small reads over the first bytes.
fn draw_cuts(rng: &mut ChaCha8Rng, len: usize, cuts: &mut Vec<usize>) {
    cuts.clear();
    if len < 2 {
        return;
    }
    match rng.gen_range(0..8) {
        0..=3 => return,
        4 | 5 => {
            for _ in 0..rng.gen_range(1..=3) {
                cuts.push(rng.gen_range(1..len));
            }
        }
        6 => cuts.push(rng.gen_range(1..LEN_BYTES.min(len))),
        _ => {
            let mut at = rng.gen_range(1..=16);
            while at < len.min(64) {
                cuts.push(at);
                at += rng.gen_range(1..=16);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::raft::{MessageKind, Term};
    use rand::SeedableRng;

    fn vote(from: u64, to: u64, term: u64) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            kind: MessageKind::VoteResponse { granted: true },
        }
    }

    #[test]
    fn copies_reorders_and_reconnections_decode_to_what_was_sent() {
        let mut codec = Codec::new(3, 77, ChaCha8Rng::seed_from_u64(1));
        let (a, b) = (
            codec.encode(&vote(1, 2, 1)).expect("a"),
            codec.encode(&vote(1, 2, 2)),
        );
        let b = b.expect("b");
        let copy = codec.copy(&b);
        // Delivered out of order and twice.
        for (wire, term) in [(b, 2), (a, 1), (copy, 2)] {
            let msg = codec.decode(NodeId(1), NodeId(2), wire).expect("decodes");
            assert_eq!(msg, vote(1, 2, term));
        }
        assert_eq!(codec.hellos, 1);
        // A crash of the receiver, then a restart: a new connection, a new hello; a frame of
        // the old connection still in flight is read after its own hello.
        let old = codec.encode(&vote(1, 2, 3)).expect("old");
        codec.reset_node(NodeId(2));
        let new = codec.encode(&vote(1, 2, 4)).expect("new");
        assert_eq!(codec.hellos, 2);
        assert_eq!(
            codec.decode(NodeId(1), NodeId(2), new).expect("new").term,
            Term(4)
        );
        assert_eq!(
            codec.decode(NodeId(1), NodeId(2), old).expect("old").term,
            Term(3)
        );
    }

    #[test]
    fn a_message_on_the_wrong_link_is_a_fault() {
        let mut codec = Codec::new(3, 77, ChaCha8Rng::seed_from_u64(2));
        let wire = codec.encode(&vote(1, 2, 1)).expect("encodes");
        let fault = codec
            .decode(NodeId(1), NodeId(3), wire)
            .expect_err("misrouted");
        assert!(fault.detail.contains("says it is from"), "{}", fault.detail);
    }

    #[test]
    fn the_planted_decoder_bug_is_a_fault() {
        let mut codec = Codec::new(2, 77, ChaCha8Rng::seed_from_u64(3));
        codec.set_bugs(wire::WireBugs {
            split_length_prefix: true,
        });
        let faults = (0..200)
            .filter(|&t| {
                let wire = codec.encode(&vote(1, 2, t)).expect("encodes");
                codec.decode(NodeId(1), NodeId(2), wire).is_err()
            })
            .count();
        assert!(faults > 0);
    }
}
