//! Raft's safety properties (Raft §5.2, §5.3, §5.4, Figure 3), checked incrementally after every
//! step of every node, across crashes and restarts.
//!
//! Logs are compared through hash chains: `chain[i]` hashes the entry at index `i + 1` together
//! with `chain[i - 1]`, so two logs agree on a prefix exactly when their chains agree at its end.
//! That makes log matching, leader completeness and committed-prefix agreement O(1) per entry.

use std::collections::BTreeMap;

use crate::Violation;
use crate::fnv::Fnv;
use crate::raft::{
    Entry, HardState, Index, Message, NodeId, Promise, Recovered, Role, Status, Term,
};

/// What the checker tracks of one node.
#[derive(Clone, Debug, Default)]
struct NodeTrack {
    /// Hash chain of the node's durable log.
    chain: Vec<u64>,
    /// The last hard state made durable: a restart may never recover less.
    durable: HardState,
    /// In this life: the last term, vote, commit and applied index seen.
    term: Term,
    voted_for: Option<NodeId>,
    commit: Index,
    applied: Index,
    role: Option<Role>,
}

/// The chain hash of the first log seen holding each `(index, term)`. Almost every index only
/// ever holds one term, so the first term seen at an index is kept in a vector by index (no
/// map search for every entry persisted); the rare other terms in a map.
#[derive(Debug, Default)]
struct FirstSeen {
    /// By index - 1: the first term seen there and its chain hash.
    first: Vec<Option<(Term, u64)>>,
    /// Every later term seen at an index, and its chain hash.
    others: BTreeMap<(Index, Term), u64>,
}

impl FirstSeen {
    fn get(&self, index: Index, term: Term) -> Option<u64> {
        let slot = (index.0 as usize).checked_sub(1)?;
        match self.first.get(slot) {
            Some(Some((t, h))) if *t == term => Some(*h),
            Some(Some(_)) => self.others.get(&(index, term)).copied(),
            _ => None,
        }
    }

    /// The hash recorded for `(index, term)`, recording `h` first if there is none. `index`
    /// is an entry's, so at least 1.
    fn get_or_insert(&mut self, index: Index, term: Term, h: u64) -> u64 {
        let slot = index.0 as usize - 1;
        if self.first.len() <= slot {
            self.first.resize(slot + 1, None);
        }
        match &mut self.first[slot] {
            entry @ None => {
                *entry = Some((term, h));
                h
            }
            Some((t, first)) if *t == term => *first,
            Some(_) => *self.others.entry((index, term)).or_insert(h),
        }
    }
}

/// What is tracked of each node, by id: small ids (every simulated cluster's) index a vector,
/// looked up on every step, message and persisted batch; any other id goes to a map.
#[derive(Debug, Default)]
struct Nodes {
    /// `dense[id]` for ids below `DENSE_IDS`.
    dense: Vec<NodeTrack>,
    sparse: BTreeMap<NodeId, NodeTrack>,
}

impl Nodes {
    const DENSE_IDS: u64 = 64;

    /// Node `id`'s track, empty if it was never seen.
    fn entry(&mut self, id: NodeId) -> &mut NodeTrack {
        if id.0 >= Self::DENSE_IDS {
            return self.sparse.entry(id).or_default();
        }
        let i = id.0 as usize;
        if self.dense.len() <= i {
            self.dense.resize_with(i + 1, NodeTrack::default);
        }
        &mut self.dense[i]
    }

    /// Node `id`'s track; it was seen.
    fn get(&self, id: NodeId) -> &NodeTrack {
        let track = if id.0 >= Self::DENSE_IDS {
            self.sparse.get(&id)
        } else {
            self.dense.get(id.0 as usize)
        };
        track.expect("a node is tracked once seen")
    }
}

/// The Raft safety checker.
#[derive(Debug, Default)]
pub struct RaftSafety {
    nodes: Nodes,
    /// Election safety: the leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Log matching: the chain hash of the first log seen holding `(index, term)`.
    seen: FirstSeen,
    /// The committed prefix, as a chain.
    committed: Vec<u64>,
    /// For each committed index, the lowest term in which a node was seen to know it committed
    /// (an upper bound on the term it was really committed in).
    committed_in: Vec<Term>,
    /// State machine safety: what was first applied at each index (term, data hash).
    applied: Vec<(Term, u64)>,
    max_term: Term,
    trace: Fnv,
}

fn link(prev: u64, entry: &Entry) -> u64 {
    let mut h = Fnv::new();
    h.write_all(&[prev, entry.term.0, entry.index.0, entry.fingerprint]);
    h.finish()
}

fn at(chain: &[u64], index: Index) -> Option<u64> {
    if index == Index(0) {
        return Some(0);
    }
    chain.get(index.0 as usize - 1).copied()
}

impl RaftSafety {
    /// Terms in which a leader was elected.
    pub fn elections(&self) -> u64 {
        self.leaders.len() as u64
    }

    /// The highest term any node reached.
    pub fn max_term(&self) -> Term {
        self.max_term
    }

    /// Highest index known committed.
    pub fn committed_index(&self) -> Index {
        Index(self.committed.len() as u64)
    }

    /// Hash of every state change seen.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// What was applied at `index`, if anything: (term, hash of the data).
    pub fn applied_at(&self, index: Index) -> Option<(Term, u64)> {
        if index == Index(0) {
            return None;
        }
        self.applied.get(index.0 as usize - 1).copied()
    }

    /// A node started and recovered this durable state: a snapshot (Raft §7), if it compacted
    /// its log, the hard state and the entries after the log's start.
    pub fn recovered(&mut self, id: NodeId, recovered: &Recovered) -> Result<(), Violation> {
        let (hs, entries) = (&recovered.hard_state, &recovered.entries);
        let start = recovered.log_start;
        let snapshot_index = recovered.snapshot.unwrap_or(Index(0));
        let track = self.nodes.entry(id);
        let floor = track.durable;
        let last = Index(start.0 + entries.len() as u64);
        let v =
            |rule: &'static str, detail: String| Violation::new(rule, id, hs.term, last, detail);
        // The log's compacted part is the committed prefix (a snapshot holds only applied, so
        // committed, entries): the chain starts from it.
        let known = self.committed.len();
        if snapshot_index.0 as usize > known {
            let detail = format!(
                "recovered a snapshot at {snapshot_index}, beyond the {known} entries known committed"
            );
            return Err(v("snapshots hold only committed entries (Raft §7)", detail));
        }
        let mut chain = self.committed[..start.0 as usize].to_vec();
        chain.reserve(entries.len());
        for e in entries {
            chain.push(link(chain.last().copied().unwrap_or(0), e));
        }
        if recovered.damaged {
            // A damaged disk may have lost synced records, so the term, vote, commit index
            // and committed prefix the node made durable may be gone: the node knows it and
            // does not vote until repaired from a leader. What it kept must still be true: the
            // entries it holds up to its own (recovered) commit index are the committed ones.
            // Past that index it may keep an entry of an old term that a later leader replaced
            // (Raft §5.3) in records the damage took: it wrote that entry, and the leader that
            // repairs it overwrites it before the node votes again.
            let kept = Index(
                (chain.len() as u64)
                    .min(self.committed.len() as u64)
                    .min(hs.commit.0),
            );
            if at(&chain, kept) != at(&self.committed, kept) {
                let first = (1..=kept.0)
                    .find(|&i| at(&chain, Index(i)) != at(&self.committed, Index(i)))
                    .unwrap_or(kept.0);
                let term = entries
                    .get((first - start.0 - 1) as usize)
                    .map_or(Term(0), |e| e.term);
                let detail = format!(
                    "the damaged log kept entries up to {kept} that differ from the committed ones (first at {first}, of term {term}; its commit index {}, log start {})",
                    hs.commit, start.0
                );
                return Err(v("a damaged log keeps only true entries", detail));
            }
        } else {
            if hs.term < floor.term {
                return Err(v(
                    "term never goes back (restart)",
                    format!("recovered term {} < durable {}", hs.term, floor.term),
                ));
            }
            if hs.term == floor.term && floor.voted_for.is_some() && hs.voted_for != floor.voted_for
            {
                let detail = format!(
                    "recovered vote {:?} != durable {:?}",
                    hs.voted_for, floor.voted_for
                );
                return Err(v("vote never changes within a term (restart)", detail));
            }
            if hs.commit < floor.commit {
                let detail = format!("recovered commit {} < durable {}", hs.commit, floor.commit);
                return Err(v("commit index never goes back (restart)", detail));
            }
            // Unsynced records may survive a crash too (a torn write, even one that truncated
            // synced entries), so the durable log is not a prefix of what comes back; but the
            // committed prefix the node had made durable always is.
            let floor_commit = floor.commit;
            if at(&chain, floor_commit) != at(&self.committed, floor_commit) {
                let detail = format!(
                    "recovered log lost or changed the durable committed prefix up to {floor_commit} \
                     (log after {start}: {} entries; snapshot at {snapshot_index}; {} known committed)",
                    entries.len(),
                    self.committed.len()
                );
                return Err(v("committed entries survive a crash", detail));
            }
        }
        if at(&chain, snapshot_index) != at(&self.committed, snapshot_index) {
            let detail = format!(
                "the log kept below the snapshot at {snapshot_index} is not the committed one"
            );
            return Err(v("snapshots hold only committed entries (Raft §7)", detail));
        }
        *track = NodeTrack {
            chain,
            durable: *hs,
            term: hs.term,
            voted_for: hs.voted_for,
            commit: hs.commit,
            applied: snapshot_index,
            role: None,
        };
        Ok(())
    }

    /// A node made a snapshot from the leader durable and restored its state machine from it:
    /// its log up to `index` is now the committed prefix (a matching suffix after it is kept).
    pub fn snapshot_installed(
        &mut self,
        id: NodeId,
        index: Index,
        term: Term,
    ) -> Result<(), Violation> {
        let known = self.committed.len();
        let rule = "snapshots hold only committed entries (Raft §7)";
        if index.0 as usize > known {
            let detail = format!(
                "installed a snapshot at {index}, beyond the {known} entries known committed"
            );
            return Err(Violation::new(rule, id, term, index, detail));
        }
        let committed = at(&self.committed, index);
        if index > Index(0) && self.seen.get(index, term) != committed {
            let detail =
                format!("the snapshot's last entry (term {term}) is not the committed one");
            return Err(Violation::new(rule, id, term, index, detail));
        }
        let track = self.nodes.entry(id);
        if at(&track.chain, index) != committed {
            track.chain = self.committed[..index.0 as usize].to_vec();
        }
        track.applied = index;
        self.trace.write_all(&[id.0, index.0, term.0, 0x5a5]);
        Ok(())
    }

    /// A node made this hard state and these entries durable.
    pub fn persisted(
        &mut self,
        id: NodeId,
        hs: Option<&HardState>,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let track = self.nodes.entry(id);
        if let Some(first) = entries.first() {
            track.chain.truncate(first.index.0 as usize - 1);
        }
        for e in entries {
            assert_eq!(
                e.index.0 as usize,
                track.chain.len() + 1,
                "entries persist without gaps"
            );
            let h = link(track.chain.last().copied().unwrap_or(0), e);
            track.chain.push(h);
            let first = self.seen.get_or_insert(e.index, e.term, h);
            if first != h {
                let detail =
                    "two logs hold an entry with this index and term but differ before it".into();
                return Err(Violation::new("log matching", id, e.term, e.index, detail));
            }
        }
        if let Some(hs) = hs {
            let floor = track.durable;
            if hs.term < floor.term
                || (hs.term == floor.term
                    && floor.voted_for.is_some()
                    && hs.voted_for != floor.voted_for)
            {
                let detail = format!("persisted {hs} after {floor}");
                return Err(Violation::new(
                    "term and vote never go back",
                    id,
                    hs.term,
                    hs.commit,
                    detail,
                ));
            }
            track.durable = *hs;
            // A durable commit index can outlive the step that moved it (a crash during a
            // later sync of the same batch): the committed prefix is known from here on.
            if hs.commit.0 as usize > self.committed.len() {
                self.check_commit(id, hs.term, hs.commit)?;
            }
        }
        Ok(())
    }

    /// A node is sending `msg`. Raft Figure 2: persistent state is "updated on stable storage
    /// before responding to RPCs": a granted vote must already be durable (or a higher term),
    /// and so must every entry an AppendEntries success acknowledges (checked while the durable
    /// term is the message's: a later leader's entries may legitimately cut the log since).
    pub fn sending(&mut self, msg: &Message) -> Result<(), Violation> {
        let track = self.nodes.entry(msg.from);
        match msg.promise {
            Promise::VoteGranted => {
                let durable = track.durable;
                // A durable higher term also keeps the node from voting again in this one.
                let kept = durable.term > msg.term
                    || (durable.term == msg.term && durable.voted_for == Some(msg.to));
                if !kept {
                    let detail = format!(
                        "granted its vote in term {} to {} while its durable state is {durable}",
                        msg.term, msg.to
                    );
                    return Err(Violation::new(
                        "votes are durable before they are sent (Raft Figure 2)",
                        msg.from,
                        msg.term,
                        Index(0),
                        detail,
                    ));
                }
            }
            Promise::Appended { match_index }
                if msg.term == track.durable.term && match_index.0 as usize > track.chain.len() =>
            {
                let detail = format!(
                    "acknowledged entries up to {match_index} with {} durable",
                    track.chain.len()
                );
                return Err(Violation::new(
                    "entries are durable before they are acknowledged (Raft Figure 2)",
                    msg.from,
                    msg.term,
                    match_index,
                    detail,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A node applied this entry to its state machine.
    pub fn applied(&mut self, id: NodeId, entry: &Entry) -> Result<(), Violation> {
        let track = self.nodes.entry(id);
        if entry.index != track.applied.next() {
            let detail = format!("applied {} after {}", entry.index, track.applied);
            return Err(Violation::new(
                "entries apply in log order",
                id,
                entry.term,
                entry.index,
                detail,
            ));
        }
        track.applied = entry.index;
        let mine = (entry.term, entry.fingerprint);
        let slot = entry.index.0 as usize - 1;
        match self.applied.get(slot) {
            Some(&first) if first != mine => {
                let detail = format!(
                    "applied term {} here, another node applied term {}",
                    entry.term, first.0
                );
                Err(Violation::new(
                    "state machine safety",
                    id,
                    entry.term,
                    entry.index,
                    detail,
                ))
            }
            Some(_) => Ok(()),
            None => {
                assert_eq!(
                    slot,
                    self.applied.len(),
                    "some node applied every earlier index"
                );
                self.applied.push(mine);
                Ok(())
            }
        }
    }

    /// A node finished a step: check what its visible state says.
    pub fn stepped(&mut self, s: &Status) -> Result<(), Violation> {
        let id = s.id;
        self.max_term = self.max_term.max(s.term);
        let track = self.nodes.entry(id);
        let v =
            |rule: &'static str, detail: String| Violation::new(rule, id, s.term, s.commit, detail);
        if s.term < track.term {
            return Err(v(
                "term never goes back",
                format!("term {} after {}", s.term, track.term),
            ));
        }
        if s.term == track.term && track.voted_for.is_some() && s.voted_for != track.voted_for {
            let detail = format!("vote {:?} after {:?}", s.voted_for, track.voted_for);
            return Err(v("one vote per term", detail));
        }
        if s.commit < track.commit {
            return Err(v(
                "commit index never goes back",
                format!("commit {} after {}", s.commit, track.commit),
            ));
        }
        if s.applied < track.applied {
            return Err(v(
                "applied index never goes back",
                format!("applied {} after {}", s.applied, track.applied),
            ));
        }
        let changed = (s.term, Some(s.role), s.commit) != (track.term, track.role, track.commit);
        let commit_moved = s.commit != track.commit;
        track.term = s.term;
        track.voted_for = s.voted_for;
        track.commit = s.commit;
        track.role = Some(s.role);
        if changed {
            self.trace
                .write_all(&[id.0, s.term.0, s.role as u64, s.commit.0]);
        }
        if s.role == Role::Leader {
            self.check_leader(id, s.term)?;
            // Raft §5.4.2: a leader commits by counting replicas only entries of its own term;
            // earlier ones are committed indirectly, so its commit index always lands on one.
            let landed = s.commit_term;
            if commit_moved && landed != Some(s.term) {
                let detail = format!(
                    "leader of term {} committed an entry of term {:?} by counting replicas",
                    s.term, landed
                );
                return Err(Violation::new(
                    "leader commits only current-term entries (§5.4.2)",
                    id,
                    s.term,
                    s.commit,
                    detail,
                ));
            }
        }
        if commit_moved {
            self.check_commit(id, s.term, s.commit)?;
        }
        Ok(())
    }

    /// Election safety (at most one leader per term) and leader completeness (Raft §5.4).
    fn check_leader(&mut self, id: NodeId, term: Term) -> Result<(), Violation> {
        if let Some(&leader) = self.leaders.get(&term) {
            if leader != id {
                let detail = format!("nodes {leader} and {id} both lead term {term}");
                return Err(Violation::new(
                    "election safety",
                    id,
                    term,
                    Index(0),
                    detail,
                ));
            }
            // Completeness was checked when it took office; since then its log only grows
            // from its own entries.
            return Ok(());
        }
        self.leaders.insert(term, id);
        // Every entry known committed in an earlier term must be in this leader's log.
        let Some(last) = self.committed_in.iter().rposition(|&t| t < term) else {
            return Ok(());
        };
        let index = Index(last as u64 + 1);
        let chain = &self.nodes.get(id).chain;
        if at(chain, index) != at(&self.committed, index) {
            let detail =
                format!("leader of term {term} lacks the entry committed at index {index}");
            return Err(Violation::new(
                "leader completeness",
                id,
                term,
                index,
                detail,
            ));
        }
        Ok(())
    }

    /// Committed prefixes agree: a node's log at its commit index matches every other node's.
    fn check_commit(&mut self, id: NodeId, term: Term, commit: Index) -> Result<(), Violation> {
        let chain = &self.nodes.get(id).chain;
        let Some(mine) = at(chain, commit) else {
            let detail = format!(
                "commit {commit} beyond durable log of {} entries",
                chain.len()
            );
            return Err(Violation::new(
                "commit within the log",
                id,
                term,
                commit,
                detail,
            ));
        };
        let known = self.committed.len();
        if commit.0 as usize <= known {
            if at(&self.committed, commit) != Some(mine) {
                let detail = "this node committed a different entry here than another node".into();
                return Err(Violation::new(
                    "committed entries agree",
                    id,
                    term,
                    commit,
                    detail,
                ));
            }
            return Ok(());
        }
        if at(chain, Index(known as u64)) != at(&self.committed, Index(known as u64)) {
            let detail =
                "this node's committed prefix differs from the known committed prefix".into();
            return Err(Violation::new(
                "committed entries agree",
                id,
                term,
                Index(known as u64),
                detail,
            ));
        }
        self.committed
            .extend_from_slice(&chain[known..commit.0 as usize]);
        self.committed_in.resize(commit.0 as usize, term);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `FirstSeen` answers as the map it replaced, `(index, term) -> first hash`, on random
    /// sequences where several terms meet at the same indexes.
    #[test]
    fn first_seen_answers_as_a_map() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        for _ in 0..50 {
            let mut seen = FirstSeen::default();
            let mut model: BTreeMap<(Index, Term), u64> = BTreeMap::new();
            let mut top = 0u64;
            for _ in 0..400 {
                let index = Index(rng.gen_range(1..=top + 1));
                top = top.max(index.0);
                let term = Term(rng.gen_range(1..=4));
                let h: u64 = rng.r#gen();
                let want = *model.entry((index, term)).or_insert(h);
                assert_eq!(seen.get_or_insert(index, term, h), want);
                let (i, t) = (
                    Index(rng.gen_range(0..=top + 2)),
                    Term(rng.gen_range(0..=5)),
                );
                assert_eq!(
                    seen.get(i, t),
                    model.get(&(i, t)).copied(),
                    "at {i:?} {t:?}"
                );
            }
        }
    }

    /// Nodes are tracked alike whether their id indexes the vector or goes to the map: a term
    /// going back is caught for each, and two leaders of one term across both are caught.
    #[test]
    fn small_and_large_node_ids_are_tracked_alike() {
        let status = |id: u64, term: u64, role: Role| Status {
            id: NodeId(id),
            term: Term(term),
            voted_for: None,
            commit: Index(0),
            applied: Index(0),
            role,
            commit_term: None,
        };
        for id in [1, 63, 64, 1 << 40] {
            let mut safety = RaftSafety::default();
            assert!(safety.stepped(&status(id, 3, Role::Follower)).is_ok());
            assert!(safety.stepped(&status(id, 4, Role::Follower)).is_ok());
            let err = safety
                .stepped(&status(id, 2, Role::Follower))
                .expect_err("term went back");
            assert_eq!(err.rule, "term never goes back", "id {id}");
        }
        let mut safety = RaftSafety::default();
        assert!(safety.stepped(&status(2, 5, Role::Leader)).is_ok());
        let err = safety
            .stepped(&status(1 << 40, 5, Role::Leader))
            .expect_err("two leaders of term 5");
        assert_eq!(err.rule, "election safety");
    }
}
