//! The WAL's record format, hand-encoded so that every byte on disk is specified here.
//!
//! A record is, little endian: `[payload_len: u32][crc32: u32][kind: u8][payload]`, where the
//! CRC covers the record's own offset in the file (a `u64`, not stored), then the kind byte and
//! the payload. Binding the checksum to the offset makes a record that is intact but not where
//! it was written (a misdirected write that lands on a record boundary, a block the disk
//! returns from the wrong place) fail its check like a flipped bit would. Every file starts
//! with a header record. Payloads:
//! - header: `magic: [u8; 8] = "FLOE-WAL", format: u32` ([`WAL_FORMAT`]);
//! - hard state: `term: u64, voted_for: u64 (0 = None), commit: u64`;
//! - entry: `term: u64, index: u64, tag: u8 (0 = Noop, 1 = Command, 2 = Forwarded, 3 = Config),
//!   data_len: u32, data`, where a forwarded command's data starts with `origin: u64, tag: u64`,
//!   and a configuration's data is its membership (below);
//! - snapshot: `format: u32, index: u64, term: u64, log_start_index: u64, log_start_term: u64,
//!   membership, data` (the state machine up to `index`; the entries that follow it in the file
//!   come after `log_start_index`, whose term is `log_start_term`; the configuration as of
//!   `index`; `format` is [`WAL_FORMAT`]);
//! - recovering: `index: u64, term: u64`: from here on the node may not vote until it has
//!   caught up past `(index, term)` from a leader (see `Wal::open`); `(0, 0)` ends that;
//! - membership: three lists (voters, outgoing voters of a joint configuration, learners), each
//!   `count: u32` then `count` ids `u64`, sorted ascending.
//!
//! Depends only on `crate::raft` data types.

use crate::raft::{Entry, EntryKind, HardState, Index, Membership, NodeId, Snapshot, Term};

/// Largest payload a record may carry, in bytes. Recovery treats a longer length field as
/// corruption, so a flipped bit in a length can never make it allocate or wait for gigabytes.
pub const RECORD_BYTES_MAX: usize = 64 << 20;

/// Largest payload of a snapshot record, in bytes: the whole state machine.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// Bytes of a snapshot payload before its data.
pub(super) const SNAPSHOT_FIXED_BYTES: usize = 36;

/// The on-disk format this build writes and reads: 2 added the header record, the snapshot's
/// format field and the recovering record (format 1 had no header); 3 binds every record's CRC
/// to its offset (formats 1 and 2 checksummed the kind and payload alone); 4: the store commands
/// in entries are in their binary encoding (`store::Command::encode`), no longer JSON.
pub const WAL_FORMAT: u32 = 4;
/// The header's magic bytes.
const WAL_MAGIC: [u8; 8] = *b"FLOE-WAL";
/// Bytes of the whole header record.
pub(super) const HEADER_RECORD_BYTES: usize = HEADER_BYTES + 12;

/// Bytes before the payload: length, CRC and kind.
pub(super) const HEADER_BYTES: usize = 9;
/// Bytes of a hard-state payload.
pub(super) const HARD_STATE_PAYLOAD_BYTES: usize = 24;
/// Bytes of an entry payload before its data.
pub(super) const ENTRY_FIXED_BYTES: usize = 21;

const KIND_HARD_STATE: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const KIND_HEADER: u8 = 4;
const KIND_RECOVERING: u8 = 5;
/// Bytes of a recovering payload.
const RECOVERING_PAYLOAD_BYTES: usize = 16;
const TAG_NOOP: u8 = 0;
const TAG_COMMAND: u8 = 1;
const TAG_FORWARDED: u8 = 2;
const TAG_CONFIG: u8 = 3;
/// Bytes a forwarded command's origin and tag add before its data.
const FORWARDED_PREFIX_BYTES: usize = 16;

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Record {
    /// A new hard state, replacing the previous one.
    HardState(HardState),
    /// An entry, replacing every entry at or after its index.
    Entry(Entry),
    /// A snapshot, replacing every entry; the entries after it follow `log_start`.
    Snapshot {
        /// The snapshot.
        snapshot: Snapshot,
        /// The last index before the entries kept after the snapshot, and its term.
        log_start: (Index, Term),
    },
    /// The file's header: the format it was written in.
    Header {
        /// The format version.
        format: u32,
    },
    /// The node may not vote until it caught up past this index and term (`None`: it may).
    Recovering(Option<(Index, Term)>),
}

/// Why recovery stopped reading the WAL and cut its tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// Fewer bytes than a record header were left.
    ShortHeader,
    /// The length field exceeds [`RECORD_BYTES_MAX`].
    TooLong,
    /// Fewer bytes than the length field promises were left.
    ShortPayload,
    /// The CRC does not match the kind and payload.
    BadCrc,
    /// The CRC matched but the kind or payload is not a valid record.
    Undecodable,
    /// An entry's index is 0 or leaves a gap after the entries replayed so far.
    IndexGap,
}

/// Payload bytes of `entry`'s record.
pub(super) fn entry_payload_bytes(entry: &Entry) -> usize {
    let prefix = match &entry.kind {
        EntryKind::Forwarded { .. } => FORWARDED_PREFIX_BYTES,
        EntryKind::Config(m) => membership_bytes(m),
        _ => 0,
    };
    ENTRY_FIXED_BYTES + prefix + entry.data().len()
}

/// Bytes of a membership's encoding.
pub(super) fn membership_bytes(m: &Membership) -> usize {
    m.encoded_len()
}

/// Payload bytes of a snapshot record with this configuration and `data_len` bytes of state.
pub(super) fn snapshot_payload_bytes(membership: &Membership, data_len: usize) -> usize {
    SNAPSHOT_FIXED_BYTES + membership_bytes(membership) + data_len
}

/// Appends the record of a hard state to `out`.
pub(super) fn encode_hard_state(hard_state: &HardState, out: &mut Vec<u8>, base: u64) {
    // 0 encodes "no vote", so a vote for node 0 would silently read back as no vote.
    assert!(
        hard_state.voted_for != Some(NodeId(0)),
        "voted_for node 0 (ids start at 1)"
    );
    encode_record(KIND_HARD_STATE, base, out, |out| {
        out.extend_from_slice(&hard_state.term.0.to_le_bytes());
        out.extend_from_slice(&hard_state.voted_for.map_or(0, |id| id.0).to_le_bytes());
        out.extend_from_slice(&hard_state.commit.0.to_le_bytes());
    });
}

/// Appends the record of an entry to `out`. The caller has checked the size against the max.
pub(super) fn encode_entry(entry: &Entry, out: &mut Vec<u8>, base: u64) {
    let data = entry.data();
    let (tag, prefix) = match &entry.kind {
        EntryKind::Noop => (TAG_NOOP, None),
        EntryKind::Command(_) => (TAG_COMMAND, None),
        EntryKind::Forwarded { origin, tag, .. } => (TAG_FORWARDED, Some((*origin, *tag))),
        EntryKind::Config(_) => (TAG_CONFIG, None),
    };
    let data_len = u32::try_from(entry_payload_bytes(entry) - ENTRY_FIXED_BYTES)
        .expect("entry size checked against RECORD_BYTES_MAX");
    encode_record(KIND_ENTRY, base, out, |out| {
        out.extend_from_slice(&entry.term.0.to_le_bytes());
        out.extend_from_slice(&entry.index.0.to_le_bytes());
        out.push(tag);
        out.extend_from_slice(&data_len.to_le_bytes());
        if let Some((origin, tag)) = prefix {
            out.extend_from_slice(&origin.0.to_le_bytes());
            out.extend_from_slice(&tag.to_le_bytes());
        }
        if let EntryKind::Config(m) = &entry.kind {
            m.encode(out);
        }
        out.extend_from_slice(data);
    });
}

/// Appends the header record of the current format to `out`.
pub(super) fn encode_header(out: &mut Vec<u8>, base: u64) {
    encode_record(KIND_HEADER, base, out, |out| {
        out.extend_from_slice(&WAL_MAGIC);
        out.extend_from_slice(&WAL_FORMAT.to_le_bytes());
    });
}

/// Appends a recovering record to `out` (`None` ends recovery).
pub(super) fn encode_recovering(bound: Option<(Index, Term)>, out: &mut Vec<u8>, base: u64) {
    let (index, term) = bound.unwrap_or((Index(0), Term(0)));
    encode_record(KIND_RECOVERING, base, out, |out| {
        out.extend_from_slice(&index.0.to_le_bytes());
        out.extend_from_slice(&term.0.to_le_bytes());
    });
}

/// Appends the record of a snapshot to `out`. The caller has checked the size against
/// [`SNAPSHOT_BYTES_MAX`].
pub(super) fn encode_snapshot(
    snapshot: &Snapshot,
    log_start: (Index, Term),
    out: &mut Vec<u8>,
    base: u64,
) {
    encode_record(KIND_SNAPSHOT, base, out, |out| {
        out.extend_from_slice(&WAL_FORMAT.to_le_bytes());
        out.extend_from_slice(&snapshot.index.0.to_le_bytes());
        out.extend_from_slice(&snapshot.term.0.to_le_bytes());
        out.extend_from_slice(&log_start.0.0.to_le_bytes());
        out.extend_from_slice(&log_start.1.0.to_le_bytes());
        snapshot.membership.encode(out);
        out.extend_from_slice(&snapshot.data);
    });
}

/// The largest payload a record of `kind` may have.
fn payload_max(kind: u8) -> usize {
    if kind == KIND_SNAPSHOT {
        SNAPSHOT_BYTES_MAX
    } else {
        RECORD_BYTES_MAX
    }
}

/// Writes a header placeholder, the payload, then fills in the length and CRC. `out[0]` lies at
/// offset `base` of the file (so this record at `base + out.len()`).
fn encode_record(kind: u8, base: u64, out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES - 1]);
    out.push(kind);
    payload(out);
    let payload_len = out.len() - start - HEADER_BYTES;
    assert!(
        payload_len <= payload_max(kind),
        "record payload {payload_len} bytes over max"
    );
    let len = u32::try_from(payload_len).expect("the maxima fit in u32");
    let at = base + u64::try_from(start).expect("usize fits in u64");
    // `record_crc(at, kind and payload)` in one pass: the offset's eight bytes stand where the
    // header's length and CRC go, just before the kind, until those replace them.
    out[start..start + 8].copy_from_slice(&at.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC of a record at offset `at` whose kind byte and payload are `checked`.
fn record_crc(at: u64, checked: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&at.to_le_bytes());
    hasher.update(checked);
    hasher.finalize()
}

/// How a record's CRC is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CrcCheck {
    /// Against the record's kind and payload bound to its offset in the file (format 3).
    At(u64),
    /// Against the kind and payload alone, as formats 1 and 2 wrote it: only to recognise an
    /// older log's first record and refuse it with a clear message.
    Unbound,
    /// Not at all (only the planted bug `ignore-checksum`).
    #[cfg(feature = "planted-bugs")]
    Off,
}

/// Decodes the record at the start of `bytes`, which lie at offset `at` of the file, returning
/// it and its size in bytes.
///
/// Never panics and never allocates more than the record's own payload, whatever `bytes` hold.
pub(super) fn decode_record(bytes: &[u8], at: usize) -> Result<(Record, usize), CutReason> {
    let at = u64::try_from(at).expect("usize fits in u64");
    decode_record_checked(bytes, CrcCheck::At(at))
}

/// [`decode_record`], checking the CRC as `check` says.
pub(super) fn decode_record_checked(
    bytes: &[u8],
    check: CrcCheck,
) -> Result<(Record, usize), CutReason> {
    let mut header = Reader(bytes);
    let (Some(len), Some(crc), Some(kind)) = (header.u32(), header.u32(), header.u8()) else {
        return Err(CutReason::ShortHeader);
    };
    let payload_len = usize::try_from(len).map_err(|_| CutReason::TooLong)?;
    if payload_len > payload_max(kind) {
        return Err(CutReason::TooLong);
    }
    let record_len = HEADER_BYTES + payload_len;
    if bytes.len() < record_len {
        return Err(CutReason::ShortPayload);
    }
    let checked = &bytes[8..record_len];
    let expected = match check {
        CrcCheck::At(at) => Some(record_crc(at, checked)),
        CrcCheck::Unbound => Some(crc32fast::hash(checked)),
        #[cfg(feature = "planted-bugs")]
        CrcCheck::Off => None,
    };
    if expected.is_some_and(|expected| expected != crc) {
        return Err(CutReason::BadCrc);
    }
    let record = decode_payload(checked[0], &checked[1..]).ok_or(CutReason::Undecodable)?;
    Ok((record, record_len))
}

/// The offset of the first intact record that starts after `from`, if any. Recovery cuts the log
/// at its first bad record; an intact record after that point means the damage was not a torn
/// last write but corruption in the middle, which a production node must refuse to cut.
pub fn intact_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(HEADER_BYTES)).find(|&at| {
        let kind = bytes[at + 8];
        (KIND_HARD_STATE..=KIND_RECOVERING).contains(&kind)
            && decode_record(&bytes[at..], at).is_ok()
    })
}

/// Where each record of the intact prefix of `bytes` starts (the header's included), in order.
/// The simulator's at-rest corruption uses it to find the last record's length field.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while let Ok((_, len)) = decode_record(&bytes[at..], at) {
        offsets.push(at);
        at += len;
    }
    offsets
}

/// The intact records that start after `from`, found by trying every offset (a record's own
/// length then skips it), each with the offset just past it: what a damaged log still holds
/// after its first bad record.
pub(super) fn intact_records_after(bytes: &[u8], from: usize) -> Vec<(Record, usize)> {
    let mut found = Vec::new();
    let mut at = from + 1;
    while at + HEADER_BYTES <= bytes.len() {
        let kind = bytes[at + 8];
        if (KIND_HARD_STATE..=KIND_RECOVERING).contains(&kind)
            && let Ok((record, len)) = decode_record(&bytes[at..], at)
        {
            at += len;
            found.push((record, at));
        } else {
            at += 1;
        }
    }
    found
}

/// Decodes a CRC-checked payload; `None` if it is not exactly one valid record.
fn decode_payload(kind: u8, payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let record = match kind {
        KIND_HARD_STATE if payload.len() == HARD_STATE_PAYLOAD_BYTES => {
            let term = Term(r.u64()?);
            let voted_for = Some(NodeId(r.u64()?)).filter(|id| id.0 != 0);
            let commit = Index(r.u64()?);
            Record::HardState(HardState {
                term,
                voted_for,
                commit,
            })
        }
        KIND_ENTRY => {
            let term = Term(r.u64()?);
            let index = Index(r.u64()?);
            let tag = r.u8()?;
            let data_len = usize::try_from(r.u32()?).ok()?;
            let data = r.take(data_len)?;
            let kind = match tag {
                TAG_NOOP if data.is_empty() => EntryKind::Noop,
                TAG_COMMAND => EntryKind::Command(data.into()),
                TAG_FORWARDED if data.len() >= FORWARDED_PREFIX_BYTES => {
                    let (prefix, data) = data.split_at(FORWARDED_PREFIX_BYTES);
                    let (origin, tag) = prefix.split_at(8);
                    EntryKind::Forwarded {
                        origin: NodeId(u64::from_le_bytes(origin.try_into().ok()?)),
                        tag: u64::from_le_bytes(tag.try_into().ok()?),
                        data: data.into(),
                    }
                }
                TAG_CONFIG => match Membership::decode(data)? {
                    (m, []) => EntryKind::Config(Box::new(m)),
                    _ => return None,
                },
                _ => return None,
            };
            Record::Entry(Entry { term, index, kind })
        }
        KIND_HEADER if payload.len() == 12 => {
            if r.array::<8>()? != WAL_MAGIC {
                return None;
            }
            Record::Header { format: r.u32()? }
        }
        KIND_RECOVERING if payload.len() == RECOVERING_PAYLOAD_BYTES => {
            let (index, term) = (Index(r.u64()?), Term(r.u64()?));
            Record::Recovering((index.0 > 0 || term.0 > 0).then_some((index, term)))
        }
        KIND_SNAPSHOT => {
            if r.u32()? != WAL_FORMAT {
                return None;
            }
            let index = Index(r.u64()?);
            let term = Term(r.u64()?);
            let log_start = (Index(r.u64()?), Term(r.u64()?));
            if log_start.0 > index {
                return None;
            }
            let (membership, rest) = Membership::decode(r.0)?;
            let data = rest.to_vec().into();
            r.0 = &[];
            Record::Snapshot {
                snapshot: Snapshot {
                    index,
                    term,
                    data,
                    membership,
                },
                log_start,
            }
        }
        _ => return None,
    };
    // Trailing bytes mean the length and the content disagree: not a record we wrote.
    r.0.is_empty().then_some(record)
}

/// A little-endian cursor over a byte slice; every read is `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64, data: Option<&[u8]>) -> Entry {
        let kind = data.map_or(EntryKind::Noop, |d| EntryKind::Command(d.into()));
        Entry {
            term: Term(term),
            index: Index(index),
            kind,
        }
    }

    #[test]
    fn records_round_trip_with_documented_sizes() {
        let hs = HardState {
            term: Term(7),
            voted_for: Some(NodeId(3)),
            commit: Index(5),
        };
        let no_vote = HardState {
            voted_for: None,
            ..hs
        };
        let entries = [
            entry(1, 1, None),
            entry(2, 2, Some(b"")),
            entry(u64::MAX, 3, Some(b"hello")),
            Entry {
                term: Term(3),
                index: Index(4),
                kind: EntryKind::Config(Box::new(Membership {
                    voters: vec![NodeId(1), NodeId(4)],
                    outgoing: vec![NodeId(1), NodeId(2), NodeId(3)],
                    learners: vec![NodeId(9)],
                    // A member added at run time carries its address (protocol 6).
                    addresses: vec![crate::raft::MemberAddr {
                        id: NodeId(9),
                        name: "n9".into(),
                        peer_urls: vec!["http://127.0.0.1:2390".into()],
                    }],
                })),
            },
        ];
        let mut bytes = Vec::new();
        encode_hard_state(&hs, &mut bytes, 0);
        assert_eq!(bytes.len(), HEADER_BYTES + HARD_STATE_PAYLOAD_BYTES);
        encode_hard_state(&no_vote, &mut bytes, 0);
        for e in &entries {
            let before = bytes.len();
            encode_entry(e, &mut bytes, 0);
            assert_eq!(bytes.len() - before, HEADER_BYTES + entry_payload_bytes(e));
        }
        let mut expected = vec![Record::HardState(hs), Record::HardState(no_vote)];
        expected.extend(entries.iter().cloned().map(Record::Entry));
        let mut at = 0;
        for want in expected {
            let (got, len) = decode_record(&bytes[at..], at).expect("valid record");
            assert_eq!(got, want);
            at += len;
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn header_layout_is_little_endian_len_crc_kind() {
        let mut bytes = Vec::new();
        encode_entry(&entry(1, 2, Some(b"ab")), &mut bytes, 40);
        assert_eq!(bytes[0..4], 23u32.to_le_bytes());
        // The CRC covers the record's offset, then the kind and payload.
        let crc = crc32fast::hash(&[&40u64.to_le_bytes()[..], &bytes[8..]].concat());
        assert_eq!(bytes[4..8], crc.to_le_bytes());
        assert_eq!(bytes[8], KIND_ENTRY);
        assert_eq!(bytes[9..17], 1u64.to_le_bytes());
        assert_eq!(bytes[17..25], 2u64.to_le_bytes());
        assert_eq!(bytes[25], TAG_COMMAND);
        assert_eq!(bytes[26..30], 2u32.to_le_bytes());
        assert_eq!(&bytes[30..], b"ab");
    }

    #[test]
    fn decode_names_each_kind_of_damage() {
        let mut bytes = Vec::new();
        encode_entry(&entry(1, 1, Some(b"xyz")), &mut bytes, 0);
        assert_eq!(decode_record(&bytes[..8], 0), Err(CutReason::ShortHeader));
        assert_eq!(
            decode_record(&bytes[..bytes.len() - 1], 0),
            Err(CutReason::ShortPayload)
        );
        let mut bad = bytes.clone();
        *bad.last_mut().expect("non-empty") ^= 1;
        assert_eq!(decode_record(&bad, 0), Err(CutReason::BadCrc));
        let mut long = bytes.clone();
        long[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_record(&long, 0), Err(CutReason::TooLong));
        // A well-checksummed record with an unknown kind or a Noop carrying data is not ours.
        let mut unknown = Vec::new();
        encode_record(9, 0, &mut unknown, |_| {});
        assert_eq!(decode_record(&unknown, 0), Err(CutReason::Undecodable));
        let mut noop_with_data = Vec::new();
        encode_record(KIND_ENTRY, 0, &mut noop_with_data, |out| {
            out.extend_from_slice(&[0; 16]);
            out.push(TAG_NOOP);
            out.extend_from_slice(&1u32.to_le_bytes());
            out.push(0);
        });
        assert_eq!(
            decode_record(&noop_with_data, 0),
            Err(CutReason::Undecodable)
        );
    }

    #[test]
    fn an_intact_record_at_another_offset_fails_its_crc() {
        // A misdirected write that lands a whole record on a record boundary of its own size.
        let mut bytes = Vec::new();
        encode_entry(&entry(1, 1, Some(b"xyz")), &mut bytes, 0);
        let len = bytes.len();
        encode_entry(&entry(1, 2, Some(b"abc")), &mut bytes, 0);
        assert!(decode_record(&bytes[len..], len).is_ok());
        let moved = bytes[len..].to_vec();
        bytes[..len].copy_from_slice(&moved);
        assert_eq!(decode_record(&bytes, 0), Err(CutReason::BadCrc));
        assert_eq!(record_offsets(&bytes), Vec::<usize>::new());
        assert_eq!(intact_record_after(&bytes, 0), Some(len));
        // Written where it lies, the same record is intact.
        let mut here = Vec::new();
        encode_entry(&entry(1, 2, Some(b"abc")), &mut here, 0);
        assert!(decode_record(&here, 0).is_ok());
        assert!(decode_record(&here, 1).is_err());
    }
}
