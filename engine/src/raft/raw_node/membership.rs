//! Membership changes (Raft thesis chapter 4): configurations as log entries, the latest one in
//! force (§4.1), joint consensus (§4.3) with learners, the removed leader's step-down (§4.2.2).

use super::{RawNode, Role};
use crate::raft::membership::{ConfChange, ConfChangeError, Membership};
use crate::raft::progress::Progress;
use crate::raft::raft_log::RaftLog;
use crate::raft::types::{Entry, EntryKind, Index, NodeId, Term};

/// The configurations a node knows: the one in force at the start of its log, and every
/// configuration entry in the log after it.
///
/// Invariant: `entries` are in increasing index order, each above `base_index`, each a
/// `EntryKind::Config` entry of the log with that index and term.
#[derive(Clone, Debug)]
pub(super) struct Configs {
    /// The configuration in force at `base_index` (a snapshot's, or the starting one).
    base: Membership,
    /// The index `base` is known at: the log's offset when it was set.
    base_index: Index,
    /// Configuration entries of the log, with their index and term.
    entries: Vec<(Index, Term, Membership)>,
    /// Moves at every change of `base` or `entries` (every `&mut self` method that changes
    /// either bumps it), so an unchanged count means unchanged `latest()` and `at(i)` for
    /// every `i`.
    changes: u64,
}

/// What [`RawNode::membership_stamp`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipStamp {
    /// The known configurations' change count.
    changes: u64,
    /// The index the configuration is read at when that is not the latest one (the planted
    /// bug `config_from_committed`); 0 otherwise.
    read_at: Index,
}

impl Configs {
    /// The configurations of a log that follows a base configuration at `base_index`.
    pub(super) fn recovered(base: Membership, base_index: Index, log: &[Entry]) -> Configs {
        let mut configs = Configs {
            base,
            base_index,
            entries: Vec::new(),
            changes: 0,
        };
        configs.add_entries(log);
        configs
    }

    /// Records the configuration entries of `new`, appended after every known one.
    pub(super) fn add_entries(&mut self, new: &[Entry]) {
        for e in new {
            if let EntryKind::Config(m) = &e.kind {
                assert!(
                    self.latest_index() < e.index,
                    "configuration entries are added in log order"
                );
                self.entries.push((e.index, e.term, (**m).clone()));
                self.changes += 1;
            }
        }
    }

    /// The latest configuration (thesis §4.1: "a server always uses the latest configuration in
    /// its log, regardless of whether the entry is committed").
    pub(super) fn latest(&self) -> &Membership {
        self.entries.last().map_or(&self.base, |(_, _, m)| m)
    }

    /// The index of the latest configuration entry (the base's index if the log holds none).
    pub(super) fn latest_index(&self) -> Index {
        self.entries.last().map_or(self.base_index, |(i, _, _)| *i)
    }

    /// The configuration in force at `index` (the latest entry at or below it).
    pub(super) fn at(&self, index: Index) -> &Membership {
        self.entries
            .iter()
            .rev()
            .find(|(i, _, _)| *i <= index)
            .map_or(&self.base, |(_, _, m)| m)
    }

    /// Forgets the configuration entries the log no longer holds (thesis §4.1: when an entry
    /// is truncated, the server falls back to the configuration before it).
    pub(super) fn drop_truncated(&mut self, log: &RaftLog) {
        let before = self.entries.len();
        self.entries
            .retain(|(i, t, _)| *i <= log.offset() || log.term(*i) == Some(*t));
        if self.entries.len() != before {
            self.changes += 1;
        }
    }

    /// The log was compacted up to `offset`: entries at or below it fold into the base.
    pub(super) fn compact(&mut self, offset: Index) {
        if offset <= self.base_index {
            return;
        }
        let keep = self.entries.partition_point(|(i, _, _)| *i <= offset);
        if keep > 0 {
            self.base = self.entries[keep - 1].2.clone();
            self.entries.drain(..keep);
            self.changes += 1;
        }
        self.base_index = offset;
    }

    /// A snapshot replaced the log up to its index: its configuration is the base; entries
    /// kept after it (a matching suffix) stay.
    pub(super) fn restore(&mut self, base: Membership, index: Index) {
        self.entries.retain(|(i, _, _)| *i > index);
        self.base = base;
        self.base_index = index;
        self.changes += 1;
    }

    /// The change count: equal counts mean the same configurations (see `changes`).
    pub(super) fn changes(&self) -> u64 {
        self.changes
    }

    /// Checks the invariant against the log.
    pub(super) fn check(&self, log: &RaftLog) {
        let mut last = self.base_index;
        for (i, t, m) in &self.entries {
            assert!(*i > last, "configuration entries in order");
            last = *i;
            if *i > log.offset() {
                let e = log.entry(*i).expect("a configuration entry is in the log");
                assert_eq!(e.term, *t, "configuration entry {i} has its term");
                assert!(
                    matches!(&e.kind, EntryKind::Config(c) if **c == *m),
                    "entry {i} is this config"
                );
            }
            assert!(m.validate().is_ok(), "configuration {m} is well formed");
        }
    }
}

impl RawNode {
    /// The configuration this node acts on: the latest in its log (thesis §4.1).
    pub fn membership(&self) -> &Membership {
        if planted!(self.config.bugs.config_from_committed) {
            return self.configs.at(self.log.commit());
        }
        self.configs.latest()
    }

    /// A stamp of the configuration [`RawNode::membership`] returns: two equal stamps of one
    /// node mean that it returned the same configuration at both times, so an observer can
    /// compare stamps and look at the configuration only when its stamp moved. The stamp moves
    /// whenever the configuration may have changed: a configuration entry appended, one
    /// truncated, a snapshot's installed or restored, the log compacted (and, with the planted
    /// bug that acts on the committed configuration, the commit index moved). A stamp is only
    /// comparable with stamps of the same `RawNode`.
    pub fn membership_stamp(&self) -> MembershipStamp {
        let read_at = if planted!(self.config.bugs.config_from_committed) {
            self.log.commit()
        } else {
            Index(0)
        };
        MembershipStamp {
            changes: self.configs.changes(),
            read_at,
        }
    }

    /// The configuration in force at `index` (for a snapshot taken at that index, which must
    /// carry it: Raft §7). `index` must not be below the log's offset.
    pub fn membership_at(&self, index: Index) -> Membership {
        self.membership_ref_at(index).clone()
    }

    /// [`RawNode::membership_at`], borrowed (for a check that only compares it).
    pub fn membership_ref_at(&self, index: Index) -> &Membership {
        assert!(
            index >= self.log.offset(),
            "configuration asked below the log's offset"
        );
        self.configs.at(index)
    }

    /// The planted bug `removed_leader_stays`, once this leader is outside its configuration:
    /// it counts itself in the quorum of the voters that removed it.
    pub(super) fn removed_stays(&self) -> bool {
        planted!(self.config.bugs.removed_leader_stays) && !self.is_voter()
    }

    /// True if this node votes in its configuration (either half while joint). Only a voter
    /// campaigns: a learner, or a server removed or not yet added, waits for a leader.
    pub fn is_voter(&self) -> bool {
        self.membership().is_voter(self.config.id)
    }

    /// True if this node may start an election: it is a voter of its latest configuration, or
    /// that configuration removes it and is not committed yet while this node is a voter of the
    /// committed one. Thesis §4.2.2: a server outside its own latest configuration may still
    /// be needed until C_new commits, so it still starts elections, without counting its own
    /// vote (the tally is of the latest configuration's voters). Without this, a leader that appended the C_new removing itself
    /// and crashed before sending it holds the longest log, refuses every other candidate, and
    /// is needed by the joint configuration they are still in: no leader ever again. Once it
    /// knows its removal committed (the leader's last AppendEntries carries the commit index),
    /// it only waits, and a removed server's RequestVote is ignored by servers that have heard
    /// from a leader (`step_term`).
    pub fn may_campaign(&self) -> bool {
        if self.is_voter() {
            return true;
        }
        let commit = self.log.commit();
        self.configs.latest_index() > commit && self.configs.at(commit).is_voter(self.config.id)
    }

    /// Asks the leader to change the configuration (thesis chapter 4): a learner joins or
    /// leaves at once; a change of voters appends the joint configuration C_old,new (§4.3),
    /// and the leader appends C_new itself once that commits. Returns the entry's index.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ConfChangeError> {
        self.propose_member_change(Some(change), Vec::new())
    }

    /// As [`RawNode::propose_conf_change`], and `addresses` (members' names and peer URLs)
    /// recorded in the new configuration; with no `change`, a configuration that only sets
    /// addresses of members (etcd's member update), under the same one-at-a-time rule.
    pub fn propose_member_change(
        &mut self,
        change: Option<ConfChange>,
        addresses: Vec<crate::raft::MemberAddr>,
    ) -> Result<Index, ConfChangeError> {
        assert!(!self.ready_pending, "conf change between ready and advance");
        if !matches!(self.role, Role::Leader { .. }) {
            return Err(ConfChangeError::NotLeader {
                leader: self.leader(),
            });
        }
        if self.transfer.is_some() {
            return Err(ConfChangeError::Transferring);
        }
        let commit = self.log.commit();
        // One change at a time (thesis §4.1: a leader starts a change only once the previous
        // one committed; §4.3: a joint configuration is left before the next change), and none
        // before this leader has committed an entry of its own term: the fix of the 2015
        // single-server bug (Ongaro, raft-dev, "bug in single-server membership changes"),
        // without which a change of the previous term, never committed, and this one can give
        // two quorums that do not overlap.
        let own_term_committed = self.log.term(commit) == Some(self.term);
        let pending = self.configs.latest_index() > commit || self.configs.latest().is_joint();
        if pending || !(own_term_committed || planted!(self.config.bugs.single_server_no_wait)) {
            return Err(ConfChangeError::InProgress);
        }
        if let Some(ConfChange::Promote(id)) = change
            && self.configs.latest().is_learner(id)
            && self.progress_mut(id).match_index < commit
        {
            // etcd promotes only a learner that caught up, so the new voter does not stall
            // commitment while it copies the log.
            return Err(ConfChangeError::NotCaughtUp(id));
        }
        #[allow(unused_mut)]
        let mut next = match change {
            Some(change) => self.configs.latest().apply_change(change)?,
            None => self.configs.latest().clone(),
        };
        if change.is_none() && addresses.is_empty() {
            return Ok(self.configs.latest_index());
        }
        // Addresses of servers that are not members (any more) are left out.
        for address in addresses {
            if next.contains(address.id) {
                next = next.with_address(address)?;
            }
        }
        #[cfg(feature = "planted-bugs")]
        if self.config.bugs.single_server_no_wait {
            // The planted bug makes each voter change a single-server one, in one step.
            next = Membership {
                outgoing: Vec::new(),
                ..next
            };
            // The removed voter's address goes with it, as leaving a joint configuration
            // drops it (a configuration names only its members' addresses).
            next.prune_addresses();
        }
        let index = self.append_config(next);
        self.broadcast_append();
        self.after_input();
        Ok(index)
    }

    /// Appends a configuration entry of this leader's term; it is in force at once (§4.1).
    fn append_config(&mut self, next: Membership) -> Index {
        let index = self.append_own(EntryKind::Config(Box::new(next)));
        let entry = self.log.entry(index).expect("just appended").clone();
        self.configs.add_entries(std::slice::from_ref(&entry));
        self.sync_progress();
        index
    }

    /// The servers the leader replicates to (itself included): the members of its latest
    /// configuration and, while that configuration is not committed, those of the one in force
    /// at the commit index, so that a server being removed receives the entry that removes it
    /// (thesis §4.2.2 lets removed servers simply be shut down; Floe's members stop by
    /// themselves once they applied their removal, as etcd's do).
    pub fn replicated_to(&self) -> Vec<NodeId> {
        let mut members = self.membership().members();
        let commit = self.log.commit();
        if self.configs.latest_index() > commit && commit >= self.log.offset() {
            members.extend(self.configs.at(commit).members());
            members.sort();
            members.dedup();
        }
        members
    }

    /// The leader replicates to [`RawNode::replicated_to`] and to nobody else: new members get
    /// a progress (probing from the leader's last entry, which they are sent at once), removed
    /// ones lose it.
    pub(super) fn sync_progress(&mut self) {
        let members = self.replicated_to();
        let me = self.config.id;
        let last = self.log.last_index().prev();
        let Role::Leader { progress } = &mut self.role else {
            return;
        };
        progress.retain(|id, _| members.binary_search(id).is_ok());
        for &id in &members {
            if id != me {
                progress.entry(id).or_insert_with(|| Progress::new(last));
            }
        }
        if self
            .transfer
            .is_some_and(|t| !progress.contains_key(&t.target))
        {
            self.transfer = None;
        }
    }

    /// The leader, after its commit index moved: a committed joint configuration is left for
    /// C_new (thesis §4.3: "once C_old,new has been committed, [...] the leader [creates] a log
    /// entry describing C_new"); a committed configuration without this leader makes it step
    /// down (§4.2.2: "the leader steps down [...] once the C_new entry is committed").
    pub(super) fn after_commit_membership(&mut self) {
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        self.farewell_removed();
        let commit = self.log.commit();
        if self.configs.latest_index() > commit {
            return;
        }
        let latest = self.configs.latest();
        if latest.is_joint() {
            let next = latest.leave_joint();
            self.append_config(next);
            self.broadcast_append();
        } else if !latest.is_voter(self.config.id)
            && !planted!(self.config.bugs.removed_leader_stays)
        {
            self.become_follower(self.term, None);
        }
    }

    /// The leader, after its commit index moved: servers it no longer replicates to (their
    /// removal committed) get a last AppendEntries, which carries the entry that removes them
    /// and the commit index, so they learn they were removed; then their progress goes.
    fn farewell_removed(&mut self) {
        // On every commit: find out without allocating whether anyone is to be dropped.
        let Role::Leader { progress } = &self.role else {
            return;
        };
        let commit = self.log.commit();
        let latest = self.configs.latest();
        let previous = (self.configs.latest_index() > commit && commit >= self.log.offset())
            .then(|| self.configs.at(commit));
        let any_gone = progress
            .keys()
            .any(|&id| !latest.contains(id) && !previous.is_some_and(|p| p.contains(id)));
        if !any_gone {
            return;
        }
        let keep = self.replicated_to();
        let gone: Vec<NodeId> = self
            .followers()
            .into_iter()
            .filter(|id| keep.binary_search(id).is_err())
            .collect();
        if gone.is_empty() {
            return;
        }
        let last = self.log.last_index();
        for peer in gone {
            let at = self.probe_point(peer);
            if !self.progress_mut(peer).snapshot_pending() && at <= last {
                self.send_append_from(peer, at, last);
            }
        }
        self.sync_progress();
    }

    /// A follower's log changed at `first_new` and after (an append merged, or a snapshot):
    /// forget truncated configurations and take the new ones (thesis §4.1).
    pub(super) fn sync_configs_after_merge(&mut self, new: &[Entry]) {
        self.configs.drop_truncated(&self.log);
        let known = self.configs.latest_index();
        let start = new.partition_point(|e| e.index <= known);
        // One by one, in log order: no vector for the (usually no) configurations among them.
        for e in &new[start..] {
            if matches!(e.kind, EntryKind::Config(_)) && self.log.term(e.index) == Some(e.term) {
                self.configs.add_entries(std::slice::from_ref(e));
            }
        }
    }

    /// A snapshot replaced the log up to its index (Raft §7): its configuration is in force
    /// there, and any configuration entry the log kept after it still follows it.
    pub(super) fn restore_configs(&mut self, membership: &Membership, index: Index) {
        let base = if membership.voters.is_empty() {
            self.configs.at(index).clone()
        } else {
            membership.clone()
        };
        self.configs.restore(base, index);
        self.configs.drop_truncated(&self.log);
    }

    /// The log was compacted to its offset.
    pub(super) fn compact_configs(&mut self) {
        self.configs.compact(self.log.offset());
    }

    /// The starting configuration, for a node without a snapshot.
    pub(super) fn starting_membership(config: &crate::raft::types::Config) -> Membership {
        if config.joining {
            Membership::default()
        } else {
            Membership::with_voters(config.peers.clone())
        }
    }

    /// True for a message only a leader's progress of `m.from` can take, from a server this
    /// leader does not replicate to (removed, or never added): it is dropped.
    pub(super) fn sender_untracked(&self, m: &crate::raft::types::Message) -> bool {
        use crate::raft::types::MessageKind;
        let Role::Leader { progress } = &self.role else {
            return false;
        };
        let needs_progress = matches!(
            m.kind,
            MessageKind::AppendResponse { .. }
                | MessageKind::SnapshotResponse { .. }
                | MessageKind::Propose { .. }
                | MessageKind::ReadIndex { .. }
        );
        needs_progress && !progress.contains_key(&m.from)
    }

    /// The membership checks of `check_invariants`. Returns true if it also checked the
    /// leader's progress bounds (`check_progress`), walking its progress once for both.
    pub(super) fn check_membership(&self) -> bool {
        self.configs.check(&self.log);
        let Role::Leader { progress } = &self.role else {
            return false;
        };
        // The leader tracks exactly the other members (and, until the latest configuration
        // commits, those of the committed one): checked as set equality both ways, without
        // building either set (this runs after every input of every leader).
        let commit = self.log.commit();
        let latest = self.configs.latest();
        let committed = (self.configs.latest_index() > commit && commit >= self.log.offset())
            .then(|| self.configs.at(commit));
        if committed.is_none() && !latest.is_joint() && latest.learners.is_empty() {
            // The usual case, one plain configuration: both lists are sorted, so they are
            // compared in one walk, which checks each follower's bounds on the way.
            let mut others = latest.voters.iter().filter(|&&id| id != self.config.id);
            let last = self.log.last_index();
            for (peer, p) in progress {
                assert!(
                    others.next() == Some(peer),
                    "the leader tracks exactly the other members: it tracks {:?}, the members are {:?}",
                    progress.keys().collect::<Vec<_>>(),
                    latest.voters
                );
                RawNode::check_progress(*peer, p, last);
            }
            assert!(
                others.next().is_none(),
                "the leader tracks exactly the other members: it tracks {:?}, the members are {:?}",
                progress.keys().collect::<Vec<_>>(),
                latest.voters
            );
            self.check_removed_leader(commit);
            return true;
        }
        let member = |id: NodeId| latest.contains(id) || committed.is_some_and(|c| c.contains(id));
        for &peer in progress.keys() {
            assert!(
                peer != self.config.id && member(peer),
                "the leader tracks exactly the other members (and, until the latest \
                 configuration commits, those of the committed one): it tracks {peer}"
            );
        }
        for config in std::iter::once(latest).chain(committed) {
            for &id in config
                .voters
                .iter()
                .chain(&config.outgoing)
                .chain(&config.learners)
            {
                assert!(
                    id == self.config.id || progress.contains_key(&id),
                    "the leader tracks exactly the other members (and, until the latest \
                     configuration commits, those of the committed one): not {id}"
                );
            }
        }
        self.check_removed_leader(commit);
        false
    }

    /// A leader under a committed configuration is not joint and votes in it.
    fn check_removed_leader(&self, commit: Index) {
        let latest = self.configs.latest();
        if self.configs.latest_index() <= commit && !planted!(self.config.bugs.removed_leader_stays)
        {
            assert!(
                !latest.is_joint(),
                "a committed joint configuration is left"
            );
            assert!(
                latest.is_voter(self.config.id),
                "a leader removed by a committed configuration stepped down"
            );
        }
    }
}
