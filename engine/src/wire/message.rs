//! The message frames' payload written and read by hand, byte for byte what postcard makes of a
//! [`Message`] (so the protocol is unchanged: a peer using postcard reads these bytes, and these
//! functions read a postcard peer's): an unsigned integer is a LEB128 varint, a `bool` one byte
//! (0 or 1), an `Option` a byte 0 (none) or 1 then the value, an enum its variant's index (a
//! varint) then its fields in order, a byte string or a list its length (a varint) then its
//! items.
//!
//! Every message goes through the codec twice per delivery in the simulator, and postcard's
//! generic serializer spends more on the small integers of the common messages than on
//! anything else there. The rare and large kinds (InstallSnapshot chunks and configuration
//! entries) are left to postcard: [`encode`] declines them, and [`decode`] declines anything it
//! does not read with certainty (those kinds, and every malformed or unusual input), so that
//! postcard decides, with its own errors.

use crate::raft::{
    Entry, EntryKind, Index, Message, MessageKind, NodeId, Proposal, RejectHint, Term,
};

// postcard's variant indices: the variants' places in their declarations.
const VOTE: u64 = 0;
const VOTE_RESPONSE: u64 = 1;
const PRE_VOTE: u64 = 2;
const PRE_VOTE_RESPONSE: u64 = 3;
const APPEND: u64 = 4;
const APPEND_RESPONSE: u64 = 5;
const SNAPSHOT_RESPONSE: u64 = 7;
const PROPOSE: u64 = 8;
const READ_INDEX: u64 = 9;
const READ_INDEX_RESPONSE: u64 = 10;
const TIMEOUT_NOW: u64 = 11;
const ENTRY_NOOP: u64 = 0;
const ENTRY_COMMAND: u64 = 1;
const ENTRY_FORWARDED: u64 = 2;

/// Appends `msg`'s payload to `out` and returns true, or returns false with `out` untouched for
/// a message it leaves to postcard (a snapshot chunk, or an append carrying a configuration).
pub(super) fn encode(msg: &Message, out: &mut Vec<u8>) -> bool {
    match &msg.kind {
        MessageKind::Snapshot { .. } => return false,
        MessageKind::Append { entries, .. }
            if entries
                .iter()
                .any(|e| matches!(e.kind, EntryKind::Config(_))) =>
        {
            return false;
        }
        _ => {}
    }
    varint(out, msg.from.0);
    varint(out, msg.to.0);
    varint(out, msg.term.0);
    match &msg.kind {
        MessageKind::Vote {
            last_log_index,
            last_log_term,
            transfer,
        } => {
            varint(out, VOTE);
            varint(out, last_log_index.0);
            varint(out, last_log_term.0);
            out.push(u8::from(*transfer));
        }
        MessageKind::VoteResponse { granted } => {
            varint(out, VOTE_RESPONSE);
            out.push(u8::from(*granted));
        }
        MessageKind::PreVote {
            last_log_index,
            last_log_term,
        } => {
            varint(out, PRE_VOTE);
            varint(out, last_log_index.0);
            varint(out, last_log_term.0);
        }
        MessageKind::PreVoteResponse { granted } => {
            varint(out, PRE_VOTE_RESPONSE);
            out.push(u8::from(*granted));
        }
        MessageKind::Append {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_seq,
        } => {
            varint(out, APPEND);
            varint(out, prev_log_index.0);
            varint(out, prev_log_term.0);
            varint(out, entries.len() as u64);
            for entry in entries {
                encode_entry(entry, out);
            }
            varint(out, leader_commit.0);
            varint(out, *read_seq);
        }
        MessageKind::AppendResponse {
            success,
            match_index,
            hint,
            read_seq,
        } => {
            varint(out, APPEND_RESPONSE);
            out.push(u8::from(*success));
            varint(out, match_index.0);
            encode_hint(hint.as_ref(), out);
            varint(out, *read_seq);
        }
        MessageKind::SnapshotResponse { index, offset } => {
            varint(out, SNAPSHOT_RESPONSE);
            varint(out, index.0);
            varint(out, *offset);
        }
        MessageKind::Propose { proposals } => {
            varint(out, PROPOSE);
            varint(out, proposals.len() as u64);
            for p in proposals {
                varint(out, p.tag);
                byte_string(out, &p.data);
            }
        }
        MessageKind::ReadIndex { ctx } => {
            varint(out, READ_INDEX);
            varint(out, *ctx);
        }
        MessageKind::ReadIndexResponse { ctx, index } => {
            varint(out, READ_INDEX_RESPONSE);
            varint(out, *ctx);
            varint(out, index.0);
        }
        MessageKind::TimeoutNow => varint(out, TIMEOUT_NOW),
        MessageKind::Snapshot { .. } => unreachable!("declined above"),
    }
    true
}

/// A rejection's hint, an option.
fn encode_hint(hint: Option<&RejectHint>, out: &mut Vec<u8>) {
    let Some(hint) = hint else {
        out.push(0);
        return;
    };
    out.push(1);
    varint(out, hint.rejected.0);
    match hint.conflict_term {
        None => out.push(0),
        Some(term) => {
            out.push(1);
            varint(out, term.0);
        }
    }
    varint(out, hint.conflict_index.0);
    out.push(u8::from(hint.lost));
}

/// An entry other than a configuration (the caller declined those).
fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    varint(out, entry.term.0);
    varint(out, entry.index.0);
    match &entry.kind {
        EntryKind::Noop => varint(out, ENTRY_NOOP),
        EntryKind::Command(data) => {
            varint(out, ENTRY_COMMAND);
            byte_string(out, data);
        }
        EntryKind::Forwarded { origin, tag, data } => {
            varint(out, ENTRY_FORWARDED);
            varint(out, origin.0);
            varint(out, *tag);
            byte_string(out, data);
        }
        EntryKind::Config(_) => unreachable!("declined by encode"),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn byte_string(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a payload as postcard would, or None to leave it to postcard: a snapshot chunk, a
/// configuration entry, or anything unusual (a varint of ten bytes, an unknown variant, a
/// bad bool or option byte, too few bytes). Bytes after the message are ignored, as
/// `postcard::from_bytes` ignores them.
pub(super) fn decode(payload: &[u8]) -> Option<Message> {
    let mut r = Reader { bytes: payload };
    let from = NodeId(r.varint()?);
    let to = NodeId(r.varint()?);
    let term = Term(r.varint()?);
    let kind = match r.variant()? {
        VOTE => MessageKind::Vote {
            last_log_index: Index(r.varint()?),
            last_log_term: Term(r.varint()?),
            transfer: r.bool()?,
        },
        VOTE_RESPONSE => MessageKind::VoteResponse { granted: r.bool()? },
        PRE_VOTE => MessageKind::PreVote {
            last_log_index: Index(r.varint()?),
            last_log_term: Term(r.varint()?),
        },
        PRE_VOTE_RESPONSE => MessageKind::PreVoteResponse { granted: r.bool()? },
        APPEND => {
            let prev_log_index = Index(r.varint()?);
            let prev_log_term = Term(r.varint()?);
            let count = r.len()?;
            // Each entry takes at least three bytes: the count cannot claim more than are left.
            let mut entries = Vec::with_capacity(count.min(r.bytes.len() / 3));
            for _ in 0..count {
                entries.push(r.entry()?);
            }
            MessageKind::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: Index(r.varint()?),
                read_seq: r.varint()?,
            }
        }
        APPEND_RESPONSE => {
            let success = r.bool()?;
            let match_index = Index(r.varint()?);
            let hint = match r.option()? {
                false => None,
                true => Some(RejectHint {
                    rejected: Index(r.varint()?),
                    conflict_term: match r.option()? {
                        false => None,
                        true => Some(Term(r.varint()?)),
                    },
                    conflict_index: Index(r.varint()?),
                    lost: r.bool()?,
                }),
            };
            MessageKind::AppendResponse {
                success,
                match_index,
                hint,
                read_seq: r.varint()?,
            }
        }
        SNAPSHOT_RESPONSE => MessageKind::SnapshotResponse {
            index: Index(r.varint()?),
            offset: r.varint()?,
        },
        PROPOSE => {
            let count = r.len()?;
            // Each proposal takes at least two bytes.
            let mut proposals = Vec::with_capacity(count.min(r.bytes.len() / 2));
            for _ in 0..count {
                proposals.push(Proposal {
                    tag: r.varint()?,
                    data: r.byte_string()?.to_vec(),
                });
            }
            MessageKind::Propose { proposals }
        }
        READ_INDEX => MessageKind::ReadIndex { ctx: r.varint()? },
        READ_INDEX_RESPONSE => MessageKind::ReadIndexResponse {
            ctx: r.varint()?,
            index: Index(r.varint()?),
        },
        TIMEOUT_NOW => MessageKind::TimeoutNow,
        // A snapshot chunk, or no variant at all.
        _ => return None,
    };
    Some(Message {
        from,
        to,
        term,
        kind,
    })
}

/// The unread rest of a payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    /// A varint of at most nine bytes (63 bits: postcard reads every such one the same way;
    /// a tenth byte has rules of its own, left to postcard).
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        // Most varints of a message are one byte: ids, variants, lengths, small terms.
        if let Some((&b, rest)) = self.bytes.split_first()
            && b & 0x80 == 0
        {
            self.bytes = rest;
            return Some(u64::from(b));
        }
        let mut v = 0u64;
        for i in 0..9 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// An enum's variant index: a u32 varint to postcard, read here only when it takes at most
    /// four bytes (28 bits, which postcard reads the same way).
    fn variant(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..4 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// An option's tag: true if a value follows.
    fn option(&mut self) -> Option<bool> {
        self.bool()
    }

    fn byte_string(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        if len > self.bytes.len() {
            return None;
        }
        let (s, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(s)
    }

    fn entry(&mut self) -> Option<Entry> {
        let term = Term(self.varint()?);
        let index = Index(self.varint()?);
        let kind = match self.variant()? {
            ENTRY_NOOP => EntryKind::Noop,
            ENTRY_COMMAND => EntryKind::Command(self.byte_string()?.into()),
            ENTRY_FORWARDED => EntryKind::Forwarded {
                origin: NodeId(self.varint()?),
                tag: self.varint()?,
                data: self.byte_string()?.into(),
            },
            // A configuration, or no variant at all.
            _ => return None,
        };
        Some(Entry { term, index, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Membership, SnapshotData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Small and large integers alike (every varint length, up to 64 bits).
    fn int(rng: &mut ChaCha8Rng) -> u64 {
        let bits = rng.gen_range(0..=64);
        if bits == 0 {
            0
        } else {
            rng.r#gen::<u64>() >> (64 - bits)
        }
    }

    fn bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
        let len = [0, 1, 5, 127, 128, 300][rng.gen_range(0..6)];
        (0..len).map(|_| rng.r#gen()).collect()
    }

    fn entry(rng: &mut ChaCha8Rng) -> Entry {
        let kind = match rng.gen_range(0..4) {
            0 => EntryKind::Noop,
            1 => EntryKind::Command(bytes(rng).into()),
            2 => EntryKind::Forwarded {
                origin: NodeId(int(rng)),
                tag: int(rng),
                data: bytes(rng).into(),
            },
            _ => EntryKind::Config(Box::new(Membership::with_voters(vec![
                NodeId(1),
                NodeId(2),
            ]))),
        };
        Entry {
            term: Term(int(rng)),
            index: Index(int(rng)),
            kind,
        }
    }

    fn message(rng: &mut ChaCha8Rng) -> Message {
        let kind = match rng.gen_range(0..12) {
            0 => MessageKind::Vote {
                last_log_index: Index(int(rng)),
                last_log_term: Term(int(rng)),
                transfer: rng.r#gen(),
            },
            1 => MessageKind::VoteResponse {
                granted: rng.r#gen(),
            },
            2 => MessageKind::PreVote {
                last_log_index: Index(int(rng)),
                last_log_term: Term(int(rng)),
            },
            3 => MessageKind::PreVoteResponse {
                granted: rng.r#gen(),
            },
            4 => MessageKind::Append {
                prev_log_index: Index(int(rng)),
                prev_log_term: Term(int(rng)),
                entries: (0..rng.gen_range(0..4)).map(|_| entry(rng)).collect(),
                leader_commit: Index(int(rng)),
                read_seq: int(rng),
            },
            5 => MessageKind::AppendResponse {
                success: rng.r#gen(),
                match_index: Index(int(rng)),
                hint: rng.r#gen::<bool>().then(|| RejectHint {
                    rejected: Index(int(rng)),
                    conflict_term: rng.r#gen::<bool>().then(|| Term(int(rng))),
                    conflict_index: Index(int(rng)),
                    lost: rng.r#gen(),
                }),
                read_seq: int(rng),
            },
            6 => MessageKind::Snapshot {
                index: Index(int(rng)),
                term: Term(int(rng)),
                offset: int(rng),
                total: int(rng),
                data: SnapshotData::from(bytes(rng)),
                done: rng.r#gen(),
                membership: Box::new(Membership::with_voters(vec![NodeId(3)])),
            },
            7 => MessageKind::SnapshotResponse {
                index: Index(int(rng)),
                offset: int(rng),
            },
            8 => MessageKind::Propose {
                proposals: (0..rng.gen_range(0..3))
                    .map(|_| Proposal {
                        tag: int(rng),
                        data: bytes(rng),
                    })
                    .collect(),
            },
            9 => MessageKind::ReadIndex { ctx: int(rng) },
            10 => MessageKind::ReadIndexResponse {
                ctx: int(rng),
                index: Index(int(rng)),
            },
            _ => MessageKind::TimeoutNow,
        };
        Message {
            from: NodeId(int(rng)),
            to: NodeId(int(rng)),
            term: Term(int(rng)),
            kind,
        }
    }

    /// What the frame decoder makes of `payload`: this module's reading, else postcard's.
    fn read(payload: &[u8]) -> Option<Message> {
        decode(payload).or_else(|| postcard::from_bytes::<Message>(payload).ok())
    }

    #[test]
    fn every_kind_encodes_to_postcards_bytes_and_decodes_to_postcards_value() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let mut by_hand = 0;
        for _ in 0..3_000 {
            let msg = message(&mut rng);
            let theirs = postcard::to_allocvec(&msg).expect("postcard encodes");
            let mut ours = Vec::new();
            if encode(&msg, &mut ours) {
                by_hand += 1;
                assert_eq!(ours, theirs, "{msg:?}");
            } else {
                assert!(ours.is_empty(), "declined without writing");
            }
            assert_eq!(read(&theirs), Some(msg.clone()));
            // Bytes after the message are ignored, as postcard ignores them.
            let mut longer = theirs.clone();
            longer.extend_from_slice(&[7, 0xff]);
            assert_eq!(read(&longer), Some(msg));
        }
        assert!(by_hand > 2_000, "most kinds go by hand: {by_hand}");
    }

    #[test]
    fn every_truncation_and_every_changed_byte_reads_as_postcard_reads_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        for _ in 0..300 {
            let bytes = postcard::to_allocvec(&message(&mut rng)).expect("postcard encodes");
            let postcard_reads = |b: &[u8]| postcard::from_bytes::<Message>(b).ok();
            for cut in 0..bytes.len() {
                assert_eq!(
                    read(&bytes[..cut]),
                    postcard_reads(&bytes[..cut]),
                    "cut {cut}"
                );
            }
            for at in 0..bytes.len().min(40) {
                for value in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, bytes[at] ^ 0x01] {
                    let mut changed = bytes.clone();
                    changed[at] = value;
                    assert_eq!(
                        read(&changed),
                        postcard_reads(&changed),
                        "byte {at} = {value}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_and_unusual_varints_read_as_postcard_reads_them() {
        // A vote whose last log index is written in 1..=11 bytes, the last few non-canonical
        // or over 64 bits: where this reader is unsure it leaves the payload to postcard.
        for len in 1..=11 {
            for last in [0x00, 0x01, 0x02, 0x7f] {
                let mut payload = vec![1, 2, 3, VOTE as u8];
                payload.extend(std::iter::repeat_n(0x80, len - 1));
                payload.push(last);
                payload.extend_from_slice(&[5, 1]);
                let theirs = postcard::from_bytes::<Message>(&payload).ok();
                assert_eq!(read(&payload), theirs, "{payload:?}");
            }
        }
        // A variant index written in five bytes.
        let payload = [1, 2, 3, 0x81, 0x80, 0x80, 0x80, 0x00, 1];
        assert_eq!(
            read(&payload),
            postcard::from_bytes::<Message>(&payload).ok()
        );
    }
}
