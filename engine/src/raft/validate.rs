//! The edge of the Raft core: a message from the network is checked for content that no
//! correct peer sends before any of it reaches the state machine, so a corrupt or hostile
//! frame is dropped with a [`StepError`] instead of tripping an assertion deep inside.
//!
//! These are shape checks a node can make alone (entries numbered one after another, terms that
//! never run ahead of the message's own, an acknowledgement inside the leader's log). They do
//! not make Raft tolerate a lying member that sends well-formed messages; nothing can
//! (Raft assumes fail-stop peers, §5 of the paper).

use super::raft_log::RaftLog;
use super::types::{Index, Message, MessageKind, NodeId, SNAPSHOT_TOTAL_MAX, StepError, Term};

/// Checks `m`. `leader_last` is this node's last log index if it leads in `m`'s term (the
/// only case in which answers to AppendEntries are acted on).
pub(super) fn check(m: &Message, leader_last: Option<Index>) -> Result<(), StepError> {
    let from_leader = matches!(
        m.kind,
        MessageKind::Append { .. } | MessageKind::Snapshot { .. }
    );
    if from_leader && leader_last.is_some() {
        // Election safety (Raft §5.2) makes this impossible among correct peers; a node that
        // sees it keeps leading and says so rather than crash.
        return Err(StepError::Malformed(
            "AppendEntries from another leader of this node's term",
        ));
    }
    match &m.kind {
        MessageKind::Append {
            prev_log_index,
            prev_log_term,
            entries,
            ..
        } => check_entries(m.term, *prev_log_index, *prev_log_term, entries),
        MessageKind::AppendResponse {
            success,
            match_index,
            hint,
            ..
        } => {
            let Some(last) = leader_last else {
                return Ok(());
            };
            if *success && *match_index > last {
                return Err(StepError::Malformed(
                    "acknowledges entries beyond the leader's log",
                ));
            }
            if hint.is_some_and(|h| h.rejected > last) {
                return Err(StepError::Malformed(
                    "rejects an index beyond the leader's log",
                ));
            }
            Ok(())
        }
        MessageKind::Snapshot {
            index,
            term,
            offset,
            total,
            data,
            done,
            membership,
        } => {
            if membership.validate().is_err() {
                return Err(StepError::Malformed("an ill-formed configuration"));
            }
            check_chunk((*index, *term), m.term, *offset, *total, data.len(), *done)
        }
        MessageKind::SnapshotResponse { offset, .. } => {
            if *offset > SNAPSHOT_TOTAL_MAX {
                return Err(StepError::Malformed("wants a byte beyond any snapshot"));
            }
            Ok(())
        }
        MessageKind::Vote {
            last_log_index,
            last_log_term,
            ..
        }
        | MessageKind::PreVote {
            last_log_index,
            last_log_term,
        } => {
            if *last_log_term > m.term || (*last_log_index == Index(0) && *last_log_term > Term(0))
            {
                return Err(StepError::Malformed("candidate's last entry is impossible"));
            }
            Ok(())
        }
        MessageKind::VoteResponse { .. }
        | MessageKind::PreVoteResponse { .. }
        | MessageKind::Propose { .. }
        | MessageKind::ReadIndex { .. }
        | MessageKind::ReadIndexResponse { .. }
        | MessageKind::TimeoutNow => Ok(()),
    }
}

/// InstallSnapshot, one chunk (Raft Figure 13): a snapshot of a real entry (index above 0, its
/// term no later than the message's), of a size this node takes, the chunk inside it, `done`
/// exactly on the last one, and no empty chunk before the last (it would never advance).
fn check_chunk(
    (index, term): (Index, Term),
    msg_term: Term,
    offset: u64,
    total: u64,
    len: usize,
    done: bool,
) -> Result<(), StepError> {
    if index == Index(0) || term == Term(0) || term > msg_term {
        return Err(StepError::Malformed("snapshot index and term disagree"));
    }
    if total > SNAPSHOT_TOTAL_MAX {
        return Err(StepError::Malformed(
            "snapshot larger than any this node takes",
        ));
    }
    let end = offset.checked_add(len as u64);
    if end.is_none_or(|end| end > total) {
        return Err(StepError::Malformed(
            "snapshot chunk beyond the snapshot's size",
        ));
    }
    if done != (end == Some(total)) {
        return Err(StepError::Malformed(
            "snapshot chunk's done flag disagrees with its size",
        ));
    }
    if len == 0 && !done {
        return Err(StepError::Malformed("empty snapshot chunk before the last"));
    }
    Ok(())
}

/// TimeoutNow (Raft thesis §3.10) is acted on only from the leader this node follows in its
/// own term (`term`, `leader`): only that leader may hand its leadership over. One of an older
/// term passes, to be dropped as stale; one of a newer term, or from anyone else, is refused.
///
/// Refusing is about availability, not safety: a TimeoutNow only makes a node start an
/// election, and an election at any moment is safe in Raft (votes still need an up-to-date
/// log, §5.4.1, and one vote per term, §5.2). It keeps a stray or forged one from deposing a
/// healthy leader.
pub(super) fn check_timeout_now(
    m: &Message,
    term: Term,
    leader: Option<NodeId>,
) -> Result<(), StepError> {
    if !matches!(m.kind, MessageKind::TimeoutNow) || m.term < term {
        return Ok(());
    }
    if m.term > term || leader != Some(m.from) {
        return Err(StepError::Malformed(
            "TimeoutNow not from the leader of this node's term",
        ));
    }
    Ok(())
}

/// An AppendEntries this node will act on (its term is not stale) must not rewrite an entry the
/// node knows committed: a correct leader holds every committed entry (Leader Completeness, Raft
/// §5.4), so such a message is corrupt or forged, and obeying it would break State Machine
/// Safety.
pub(super) fn check_committed(m: &Message, log: &RaftLog) -> Result<(), StepError> {
    let MessageKind::Append { entries, .. } = &m.kind else {
        return Ok(());
    };
    let rewrites = entries.iter().any(|e| {
        e.index > log.offset() && e.index <= log.commit() && log.term(e.index) != Some(e.term)
    });
    if rewrites {
        return Err(StepError::Malformed("rewrites a committed entry"));
    }
    Ok(())
}

/// AppendEntries: entries follow `prev_log_index` one by one, their terms never go down, never
/// run below the previous entry's or above the message's term (a leader appends only entries of
/// its term or earlier ones it holds).
fn check_entries(
    term: Term,
    prev_log_index: Index,
    prev_log_term: Term,
    entries: &[super::types::Entry],
) -> Result<(), StepError> {
    if prev_log_term > term || (prev_log_index == Index(0) && prev_log_term > Term(0)) {
        return Err(StepError::Malformed("previous entry is impossible"));
    }
    let mut last_term = prev_log_term;
    for (i, e) in entries.iter().enumerate() {
        if e.index != Index(prev_log_index.0.saturating_add(1 + i as u64)) {
            return Err(StepError::Malformed("entries are not contiguous"));
        }
        if e.term < last_term || e.term > term || e.term == Term(0) {
            return Err(StepError::Malformed("entry terms out of order"));
        }
        last_term = e.term;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind, NodeId, RejectHint};

    fn append(term: u64, prev: (u64, u64), entries: &[(u64, u64)]) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(term),
            kind: MessageKind::Append {
                prev_log_index: Index(prev.0),
                prev_log_term: Term(prev.1),
                entries: entries
                    .iter()
                    .map(|&(index, term)| Entry {
                        term: Term(term),
                        index: Index(index),
                        kind: EntryKind::Noop,
                    })
                    .collect(),
                leader_commit: Index(0),
                read_seq: 0,
            },
        }
    }

    #[test]
    fn appends_must_be_contiguous_with_sane_terms() {
        assert!(check(&append(3, (2, 1), &[(3, 1), (4, 3)]), None).is_ok());
        assert!(check(&append(3, (2, 1), &[(4, 1)]), None).is_err(), "gap");
        assert!(check(&append(3, (2, 1), &[(3, 2), (4, 1)]), None).is_err());
        assert!(
            check(&append(3, (2, 1), &[(3, 4)]), None).is_err(),
            "future term"
        );
        assert!(check(&append(3, (2, 4), &[]), None).is_err(), "future prev");
        assert!(check(&append(3, (2, 2), &[(3, 1)]), None).is_err());
        assert!(check(&append(3, (u64::MAX, 1), &[(0, 1)]), None).is_err());
    }

    #[test]
    fn answers_must_stay_inside_the_leaders_log() {
        let answer = |success, match_index, rejected: Option<u64>| Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(3),
            kind: MessageKind::AppendResponse {
                success,
                match_index: Index(match_index),
                hint: rejected.map(|r| RejectHint {
                    rejected: Index(r),
                    conflict_term: None,
                    conflict_index: Index(1),
                    lost: false,
                }),
                read_seq: 0,
            },
        };
        assert!(check(&answer(true, 10, None), Some(Index(10))).is_ok());
        assert!(check(&answer(true, 11, None), Some(Index(10))).is_err());
        assert!(check(&answer(false, 0, Some(11)), Some(Index(10))).is_err());
        assert!(
            check(&answer(true, 11, None), None).is_ok(),
            "not leading: ignored"
        );
    }

    #[test]
    fn timeout_now_only_from_the_leader_of_the_term() {
        let timeout_now = |from: u64, term: u64| Message {
            from: NodeId(from),
            to: NodeId(2),
            term: Term(term),
            kind: MessageKind::TimeoutNow,
        };
        let leader = Some(NodeId(1));
        assert!(check_timeout_now(&timeout_now(1, 3), Term(3), leader).is_ok());
        assert!(check_timeout_now(&timeout_now(3, 3), Term(3), leader).is_err());
        assert!(check_timeout_now(&timeout_now(1, 3), Term(3), None).is_err());
        assert!(check_timeout_now(&timeout_now(1, 4), Term(3), leader).is_err());
        assert!(
            check_timeout_now(&timeout_now(3, 2), Term(3), leader).is_ok(),
            "stale: dropped later"
        );
    }
}
