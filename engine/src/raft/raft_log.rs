//! The in-memory Raft log of one node: entries, what is persisted, what is committed and applied.
//!
//! Depends only on `types`.

use super::types::{Entry, Index, Term};

/// The log of one node.
///
/// Entries up to `offset` were compacted into a snapshot (Raft §7); the log holds
/// `offset + 1..=last_index()`, and remembers the term at `offset` for consistency checks.
///
/// Invariant: `offset <= applied <= commit <= last_index()`, and `offset <= stable <=
/// last_index()`.
#[derive(Clone, Debug)]
pub struct RaftLog {
    /// Entries `offset + 1..=last_index()`; `entries[i]` has index `offset + i + 1`.
    entries: Vec<Entry>,
    /// The last compacted index (0 if nothing was compacted).
    offset: Index,
    /// The term of the entry at `offset` (0 if `offset` is 0).
    offset_term: Term,
    /// Entries `<= stable` are on disk; later ones wait in the next `Ready`.
    stable: Index,
    /// The first index not yet handed out in a `Ready` (a truncation moves it back).
    unsent: Index,
    /// `commitIndex` (Raft Figure 2).
    commit: Index,
    /// `lastApplied` (Raft Figure 2): the highest index handed to the state machine.
    applied: Index,
}

impl RaftLog {
    /// A log recovered from disk: every entry is stable; nothing is applied yet.
    pub fn recovered(entries: Vec<Entry>, commit: Index) -> RaftLog {
        RaftLog::recovered_after(Index(0), Term(0), entries, commit, Index(0))
    }

    /// A log recovered from disk after a snapshot: entries follow `(offset, offset_term)`,
    /// every entry is stable, and the state machine was restored up to `applied`.
    pub fn recovered_after(
        offset: Index,
        offset_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        applied: Index,
    ) -> RaftLog {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                Index(offset.0 + i as u64 + 1),
                "recovered log has no gaps"
            );
        }
        let last = Index(offset.0 + entries.len() as u64);
        assert!(
            commit <= last,
            "recovered commit {commit} beyond last index {last}"
        );
        assert!(
            offset <= applied && applied <= last,
            "restored state {applied} outside the log, which runs from {offset} to {last}"
        );
        RaftLog {
            entries,
            offset,
            offset_term,
            stable: last,
            unsent: last.next(),
            commit: commit.max(applied),
            applied,
        }
    }

    /// The last compacted index: entries at or below it are only in the snapshot.
    pub fn offset(&self) -> Index {
        self.offset
    }

    /// The first index the log holds an entry for (`offset + 1`).
    pub fn first_index(&self) -> Index {
        self.offset.next()
    }

    /// The index of the last entry (the offset if the log holds none).
    pub fn last_index(&self) -> Index {
        Index(self.offset.0 + self.entries.len() as u64)
    }

    /// The term of the last entry (the offset's term if the log holds none).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    fn position(&self, index: Index) -> Option<usize> {
        if index <= self.offset {
            return None;
        }
        usize::try_from(index.0 - self.offset.0 - 1).ok()
    }

    /// The term of the entry at `index`: the offset's term at the offset, `None` below it
    /// (compacted) or past the end.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        self.position(index)
            .and_then(|i| self.entries.get(i))
            .map(|e| e.term)
    }

    /// The entry at `index`, if the log holds it.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.position(index).and_then(|i| self.entries.get(i))
    }

    /// Entries `from..=to`, at most `max` of them. `from` must not be compacted.
    pub fn slice(&self, from: Index, to: Index, max: usize) -> &[Entry] {
        assert!(
            from > self.offset,
            "slice from {from} at or below the compacted offset {}",
            self.offset
        );
        if from > to {
            return &[];
        }
        let start = self.position(from).expect("above the offset");
        let end = usize::try_from(to.0 - self.offset.0)
            .unwrap_or(usize::MAX)
            .min(start.saturating_add(max))
            .min(self.entries.len());
        &self.entries[start.min(end)..end]
    }

    /// `commitIndex`.
    pub fn commit(&self) -> Index {
        self.commit
    }

    /// `lastApplied`.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Highest persisted index.
    pub fn stable(&self) -> Index {
        self.stable
    }

    /// Appends a new entry at the end (the leader's path).
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "leader appends at the end"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// The follower's path (Raft §5.3, AppendEntries receiver rules 3 and 4): entries already
    /// present with the same term are skipped; the first conflicting one and everything after it
    /// are deleted; new entries are appended. Entries at or below the offset are committed, so
    /// they are skipped too. Returns the index of the last entry of `new`.
    pub fn merge(&mut self, new: &[Entry]) -> Index {
        self.merge_keeping::<false>(new)
    }

    /// The planted bug `no_truncate`: as [`RaftLog::merge`], but present entries are kept
    /// whatever their term.
    #[cfg(feature = "planted-bugs")]
    pub fn planted_merge_keeping_conflicts(&mut self, new: &[Entry]) -> Index {
        self.merge_keeping::<true>(new)
    }

    /// `merge`; `KEEP_CONFLICTS` is true only for the planted bug (a constant, so the correct
    /// merge carries no switch).
    fn merge_keeping<const KEEP_CONFLICTS: bool>(&mut self, new: &[Entry]) -> Index {
        let mut skip = 0;
        for e in new {
            if e.index <= self.offset {
                skip += 1;
                continue;
            }
            match self.term(e.index) {
                Some(t) if t == e.term || KEEP_CONFLICTS => skip += 1,
                Some(_) => {
                    // Raft §5.4: a committed entry is never overwritten.
                    assert!(
                        e.index > self.commit,
                        "conflict at index {} at or below commit {}",
                        e.index,
                        self.commit
                    );
                    self.truncate_from(e.index);
                    break;
                }
                None => break,
            }
        }
        for e in &new[skip..] {
            assert_eq!(e.index, self.last_index().next(), "append without a gap");
            self.entries.push(e.clone());
        }
        new.last().map_or(Index(0), |e| e.index)
    }

    /// Deletes entries `index..`.
    pub fn truncate_from(&mut self, index: Index) {
        assert!(
            index > self.offset,
            "truncating at {index}, at or below the compacted offset {}",
            self.offset
        );
        let keep = self.position(index).expect("above the offset");
        self.entries.truncate(keep);
        self.stable = self.stable.min(index.prev());
        self.unsent = self.unsent.min(index);
    }

    /// Drops the entries up to `index`, which the state machine has applied and a snapshot
    /// holds (Raft §7). A no-op if `index` is not above the offset.
    pub fn compact(&mut self, index: Index) {
        if index <= self.offset {
            return;
        }
        assert!(
            index <= self.applied,
            "compacting to {index} beyond applied {}",
            self.applied
        );
        let term = self.term(index).expect("applied entries are in the log");
        let drop = self.position(index).expect("above the offset") + 1;
        self.entries.drain(..drop);
        self.offset = index;
        self.offset_term = term;
        self.stable = self.stable.max(index);
        self.unsent = self.unsent.max(index.next());
    }

    /// A snapshot of the leader's up to `(index, term)` replaces what this log holds up to
    /// there (Raft §7, InstallSnapshot receiver rules 6 and 7): if the log has the entry at
    /// `index` with `term`, the entries after it are kept; otherwise the whole log goes. The
    /// state machine is restored from the snapshot, so `applied` and `commit` move to `index`.
    pub fn restore(&mut self, index: Index, term: Term) {
        assert!(
            index > self.commit,
            "a snapshot at {index} within commit {}",
            self.commit
        );
        if self.term(index) == Some(term) {
            let drop = self.position(index).expect("above the commit") + 1;
            self.entries.drain(..drop);
            self.stable = self.stable.max(index);
            self.unsent = self.unsent.max(index.next());
        } else {
            self.entries.clear();
            self.stable = index;
            self.unsent = index.next();
        }
        self.offset = index;
        self.offset_term = term;
        self.commit = index;
        self.applied = index;
    }

    /// Entries not yet handed to the caller for persistence.
    pub fn unsent_entries(&self) -> &[Entry] {
        let start = usize::try_from(self.unsent.0 - self.offset.0 - 1)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        &self.entries[start..]
    }

    /// Marks every entry as handed out for persistence.
    pub fn mark_sent(&mut self) {
        self.unsent = self.last_index().next();
    }

    /// The caller persisted entries up to `index` (and their terms match: it was not truncated).
    pub fn stable_to(&mut self, index: Index) {
        if index > self.stable && index <= self.last_index() {
            self.stable = index;
        }
    }

    /// Advances `commitIndex`; it never goes back (Raft Figure 2).
    pub fn commit_to(&mut self, index: Index) {
        if index > self.commit {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index"
            );
            self.commit = index;
        }
    }

    /// Committed entries not yet applied, at most `max`.
    pub fn next_committed(&self, max: usize) -> &[Entry] {
        self.slice(self.applied.next(), self.commit, max)
    }

    /// The state machine applied up to `index`.
    pub fn applied_to(&mut self, index: Index) {
        assert!(
            index <= self.commit,
            "applied {index} beyond commit {}",
            self.commit
        );
        assert!(index >= self.applied, "applied never goes back");
        self.applied = index;
    }

    /// The first index holding `term`, scanning back from `from` (fast back-off, thesis §5.3);
    /// it stops at the first index the log holds.
    pub fn first_index_of_term(&self, term: Term, from: Index) -> Index {
        let mut i = from;
        while i > self.first_index() && self.term(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// The last index holding `term` or a lower term, at or before `from` (not below the
    /// offset).
    pub fn last_index_at_most_term(&self, term: Term, from: Index) -> Index {
        let mut i = from.min(self.last_index());
        while i > self.offset && self.term(i).is_some_and(|t| t > term) {
            i = i.prev();
        }
        i
    }

    /// Checks the invariants written on the fields.
    pub fn check_invariants(&self) {
        assert!(self.offset <= self.applied, "offset <= applied");
        assert!(self.applied <= self.commit, "applied <= commit");
        assert!(self.commit <= self.last_index(), "commit <= last_index");
        assert!(
            self.offset <= self.stable && self.stable <= self.last_index(),
            "offset <= stable <= last_index"
        );
        assert!(
            self.offset < self.unsent && self.unsent <= self.last_index().next(),
            "offset < unsent <= last_index + 1"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryKind;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: Index(index),
            kind: EntryKind::Noop,
        }
    }

    #[test]
    fn merge_skips_matching_and_truncates_conflicts() {
        let mut log = RaftLog::recovered(vec![ent(1, 1), ent(2, 1), ent(3, 2)], Index(1));
        assert_eq!(log.merge(&[ent(2, 1), ent(3, 3), ent(4, 3)]), Index(4));
        assert_eq!(log.last_index(), Index(4));
        assert_eq!(log.term(Index(3)), Some(Term(3)));
        assert_eq!(log.stable(), Index(2));
        assert_eq!(log.unsent_entries().len(), 2);
    }

    #[test]
    fn merge_of_a_stale_prefix_never_truncates() {
        let mut log = RaftLog::recovered(vec![ent(1, 1), ent(2, 1), ent(3, 1)], Index(0));
        log.merge(&[ent(1, 1)]);
        assert_eq!(log.last_index(), Index(3));
    }

    #[test]
    fn back_off_helpers() {
        let log = RaftLog::recovered(vec![ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 4)], Index(0));
        assert_eq!(log.first_index_of_term(Term(2), Index(3)), Index(2));
        assert_eq!(log.last_index_at_most_term(Term(3), Index(9)), Index(3));
        assert_eq!(log.last_index_at_most_term(Term(0), Index(4)), Index(0));
    }

    #[test]
    fn compaction_keeps_terms_and_slices_above_the_offset() {
        let mut log = RaftLog::recovered(
            vec![ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 3)],
            Index(4),
        );
        log.applied_to(Index(4));
        log.compact(Index(3));
        assert_eq!((log.offset(), log.first_index()), (Index(3), Index(4)));
        assert_eq!(log.term(Index(3)), Some(Term(2)));
        assert_eq!(log.term(Index(2)), None, "compacted");
        assert_eq!(log.entry(Index(3)), None);
        assert_eq!(log.slice(Index(4), Index(9), 10).len(), 2);
        assert_eq!(log.last_index(), Index(5));
        // Entries at or below the offset are skipped by a merge; a conflict above truncates.
        log.merge(&[ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 4)]);
        assert_eq!(log.term(Index(5)), Some(Term(4)));
        assert_eq!(log.first_index_of_term(Term(2), Index(4)), Index(4));
        assert_eq!(log.last_index_at_most_term(Term(1), Index(5)), Index(3));
        log.compact(Index(4));
        log.compact(Index(2));
        assert_eq!(log.offset(), Index(4));
        log.check_invariants();
    }

    #[test]
    fn restore_keeps_a_matching_suffix_or_drops_the_log() {
        let mut log = RaftLog::recovered(vec![ent(1, 1), ent(2, 1), ent(3, 1)], Index(1));
        log.restore(Index(2), Term(1));
        assert_eq!((log.offset(), log.last_index()), (Index(2), Index(3)));
        assert_eq!((log.commit(), log.applied()), (Index(2), Index(2)));
        log.restore(Index(7), Term(5));
        assert_eq!((log.offset(), log.last_index()), (Index(7), Index(7)));
        assert_eq!(log.last_term(), Term(5));
        assert!(log.unsent_entries().is_empty());
        log.merge(&[ent(8, 5)]);
        assert_eq!(log.unsent_entries().len(), 1);
        log.check_invariants();
    }

    #[test]
    fn recovered_after_a_snapshot() {
        let log =
            RaftLog::recovered_after(Index(10), Term(3), vec![ent(11, 3)], Index(10), Index(10));
        assert_eq!(
            (log.first_index(), log.last_index()),
            (Index(11), Index(11))
        );
        assert_eq!(log.next_committed(9).len(), 0);
        log.check_invariants();
    }
}
