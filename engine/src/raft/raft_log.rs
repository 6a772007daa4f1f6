//! The in-memory Raft log of one node: entries, what is persisted, what is committed and applied.
//!
//! Depends only on `types`.

use super::types::{Entry, Index, Term};

/// The log of one node.
///
/// Invariant: `applied <= commit <= last_index()`, and `stable <= last_index()`.
#[derive(Clone, Debug)]
pub struct RaftLog {
    /// Entries `1..=last_index()`; `entries[i]` has index `i + 1`.
    entries: Vec<Entry>,
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
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, Index(i as u64 + 1), "recovered log has no gaps");
        }
        let last = Index(entries.len() as u64);
        assert!(
            commit <= last,
            "recovered commit {commit} beyond last index {last}"
        );
        RaftLog {
            entries,
            stable: last,
            unsent: last.next(),
            commit,
            applied: Index(0),
        }
    }

    /// The index of the last entry (0 if empty).
    pub fn last_index(&self) -> Index {
        Index(self.entries.len() as u64)
    }

    /// The term of the last entry (0 if empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(Term(0), |e| e.term)
    }

    /// The term of the entry at `index`, `Some(Term(0))` for index 0, `None` past the end.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == Index(0) {
            return Some(Term(0));
        }
        self.entries.get(index.0 as usize - 1).map(|e| e.term)
    }

    /// The entry at `index`.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index == Index(0) {
            return None;
        }
        self.entries.get(index.0 as usize - 1)
    }

    /// Entries `from..=to`, at most `max` of them.
    pub fn slice(&self, from: Index, to: Index, max: usize) -> &[Entry] {
        assert!(from.0 >= 1, "slices start at index 1");
        if from > to {
            return &[];
        }
        let start = from.0 as usize - 1;
        let end = (to.0 as usize)
            .min(start.saturating_add(max))
            .min(self.entries.len());
        &self.entries[start..end]
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
    /// are deleted; new entries are appended. Returns the index of the last entry of `new`.
    /// `truncate` false is the planted bug `no_truncate`: present entries are kept whatever
    /// their term.
    pub fn merge(&mut self, new: &[Entry], truncate: bool) -> Index {
        let mut skip = 0;
        for e in new {
            match self.term(e.index) {
                Some(t) if t == e.term || !truncate => skip += 1,
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
        assert!(index.0 >= 1, "index 0 is not an entry");
        self.entries.truncate(index.0 as usize - 1);
        self.stable = self.stable.min(index.prev());
        self.unsent = self.unsent.min(index);
    }

    /// Entries not yet handed to the caller for persistence.
    pub fn unsent_entries(&self) -> &[Entry] {
        let start = (self.unsent.0 as usize - 1).min(self.entries.len());
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

    /// The first index holding `term`, scanning back from `from` (fast back-off, thesis §5.3).
    pub fn first_index_of_term(&self, term: Term, from: Index) -> Index {
        let mut i = from;
        while i.0 > 1 && self.term(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// The last index holding `term` or a lower term, at or before `from`.
    pub fn last_index_at_most_term(&self, term: Term, from: Index) -> Index {
        let mut i = from.min(self.last_index());
        while i.0 > 0 && self.term(i).is_some_and(|t| t > term) {
            i = i.prev();
        }
        i
    }

    /// Checks the invariants written on the fields.
    pub fn check_invariants(&self) {
        assert!(self.applied <= self.commit, "applied <= commit");
        assert!(self.commit <= self.last_index(), "commit <= last_index");
        assert!(self.stable <= self.last_index(), "stable <= last_index");
        assert!(
            self.unsent <= self.last_index().next(),
            "unsent <= last_index + 1"
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
        assert_eq!(
            log.merge(&[ent(2, 1), ent(3, 3), ent(4, 3)], true),
            Index(4)
        );
        assert_eq!(log.last_index(), Index(4));
        assert_eq!(log.term(Index(3)), Some(Term(3)));
        assert_eq!(log.stable(), Index(2));
        assert_eq!(log.unsent_entries().len(), 2);
    }

    #[test]
    fn merge_of_a_stale_prefix_never_truncates() {
        let mut log = RaftLog::recovered(vec![ent(1, 1), ent(2, 1), ent(3, 1)], Index(0));
        log.merge(&[ent(1, 1)], true);
        assert_eq!(log.last_index(), Index(3));
    }

    #[test]
    fn back_off_helpers() {
        let log = RaftLog::recovered(vec![ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 4)], Index(0));
        assert_eq!(log.first_index_of_term(Term(2), Index(3)), Index(2));
        assert_eq!(log.last_index_at_most_term(Term(3), Index(9)), Index(3));
        assert_eq!(log.last_index_at_most_term(Term(0), Index(4)), Index(0));
    }
}
