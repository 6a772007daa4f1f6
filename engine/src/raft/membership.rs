//! Cluster membership (Raft thesis chapter 4): who votes, who only receives the log, and the
//! joint configuration a change of voters passes through (thesis §4.3).
//!
//! Pure data and quorum arithmetic; depends on `types` and `quorum` only.
//!
//! The rules this module serves, in our words:
//! - A configuration is an entry in the log. A server uses the latest configuration in its log,
//!   whether or not that entry is committed (thesis §4.1), and falls back to the previous one if
//!   the entry is truncated away.
//! - Changing the voters goes through a joint configuration C_old,new (thesis §4.3): while it is
//!   the latest, an election or a commitment needs a majority of C_old AND a majority of C_new.
//!   Once C_old,new commits, the leader appends C_new; once C_new commits, servers outside it may
//!   be shut down, and a leader outside it steps down (thesis §4.2.2).
//! - Learners (non-voting members, as in etcd) receive the log but count in no quorum; they are
//!   promoted to voters, through a joint configuration, once caught up.
//! - A configuration may also carry members' addresses (name and peer URLs, as etcd keeps them
//!   with each member), so that every server learns where a member added at run time listens
//!   from the same entry that makes it a member. Addresses never count in a quorum; a member
//!   without one is one the servers know from their own start-up flags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quorum::{majority, majority_index};
use super::types::{Index, NodeId};

/// One configuration of the cluster. Every list is sorted and free of duplicates, and no id is
/// in both `learners` and a voter list (see [`Membership::validate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The voters of the configuration being moved to (C_new), or of the only one.
    pub voters: Vec<NodeId>,
    /// While joint (thesis §4.3): the voters of the configuration being left (C_old); empty
    /// otherwise.
    pub outgoing: Vec<NodeId>,
    /// Members that receive the log but do not vote (etcd's learners).
    pub learners: Vec<NodeId>,
    /// Addresses of members, sorted by id, each a member of this configuration; members
    /// without one are known from the servers' start-up flags (the founding members).
    pub addresses: Vec<MemberAddr>,
}

/// Where a member listens, as the configuration carries it (etcd's member name and peer URLs).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberAddr {
    /// The member.
    pub id: NodeId,
    /// Its name (`--name`; empty until the member started, as in etcd).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// Most bytes of one address string (a name or a URL) in an encoded configuration.
pub const ADDRESS_TEXT_MAX: usize = 4096;
/// Most peer URLs of one member.
pub const PEER_URLS_MAX: usize = 64;
/// The bit of the voters' count that says an address section follows the three lists.
const ADDRESSES_FLAG: u32 = 1 << 31;

/// The outcome of an election so far under a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Every quorum the configuration needs has granted.
    Won,
    /// Some quorum can no longer grant, whatever the remaining answers.
    Lost,
    /// Neither yet.
    Pending,
}

/// A change a client asks of the membership. Voter changes go through a joint configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Add a voter (a server that is not a member yet, or a learner).
    AddVoter(NodeId),
    /// Add a learner: a new member that receives the log without voting.
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Remove a member, voter or learner.
    Remove(NodeId),
}

impl ConfChange {
    /// The member the change is about.
    pub fn node(self) -> NodeId {
        match self {
            ConfChange::AddVoter(id)
            | ConfChange::AddLearner(id)
            | ConfChange::Promote(id)
            | ConfChange::Remove(id) => id,
        }
    }
}

/// Why a configuration change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    /// Only the leader changes the configuration.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader: Option<NodeId>,
    },
    /// A change is already under way (one at a time, thesis §4.1), or this leader has not
    /// committed an entry of its own term yet (the fix of the 2015 single-server bug).
    #[error("another configuration change is in progress")]
    InProgress,
    /// The node is already a member (or already a voter).
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The node is not a member (or not a learner, for a promotion).
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The learner's log is too far behind the leader's to promote it.
    #[error("learner {0} has not caught up with the leader")]
    NotCaughtUp(NodeId),
    /// The change would leave no voter.
    #[error("the last voter cannot be removed")]
    LastVoter,
    /// Id 0 means nobody.
    #[error("node id 0 is not valid")]
    InvalidId,
    /// The leader is handing over leadership and takes no change meanwhile.
    #[error("leadership transfer in progress")]
    Transferring,
    /// A member's address is too long to record (see [`ADDRESS_TEXT_MAX`],
    /// [`PEER_URLS_MAX`]).
    #[error("member {0}'s name or peer URLs are too long")]
    AddressTooLong(NodeId),
}

impl Membership {
    /// A plain configuration of `voters` (sorted and deduplicated here).
    pub fn with_voters(mut voters: Vec<NodeId>) -> Membership {
        voters.sort();
        voters.dedup();
        Membership {
            voters,
            outgoing: Vec::new(),
            learners: Vec::new(),
            addresses: Vec::new(),
        }
    }

    /// The address of member `id`, if the configuration carries one.
    pub fn address(&self, id: NodeId) -> Option<&MemberAddr> {
        self.addresses
            .binary_search_by_key(&id, |a| a.id)
            .ok()
            .map(|i| &self.addresses[i])
    }

    /// This configuration with `addr` as its member's address (replacing any other). The
    /// member must be one of this configuration's.
    pub fn with_address(mut self, addr: MemberAddr) -> Result<Membership, ConfChangeError> {
        if !self.contains(addr.id) {
            return Err(ConfChangeError::NotMember(addr.id));
        }
        if addr.name.len() > ADDRESS_TEXT_MAX
            || addr.peer_urls.len() > PEER_URLS_MAX
            || addr.peer_urls.iter().any(|u| u.len() > ADDRESS_TEXT_MAX)
        {
            // What the log could not read back is never proposed.
            return Err(ConfChangeError::AddressTooLong(addr.id));
        }
        match self.addresses.binary_search_by_key(&addr.id, |a| a.id) {
            Ok(i) => self.addresses[i] = addr,
            Err(i) => self.addresses.insert(i, addr),
        }
        Ok(self)
    }

    /// Drops the addresses of servers that are no longer members.
    pub(crate) fn prune_addresses(&mut self) {
        let members = self.members();
        self.addresses
            .retain(|a| members.binary_search(&a.id).is_ok());
    }

    /// True while in a joint configuration C_old,new.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// True if `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok() || self.outgoing.binary_search(&id).is_ok()
    }

    /// True if `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

    /// True if `id` is a member in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member (voters of both halves and learners), sorted, each once.
    pub fn members(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Every voter of either half, sorted, each once.
    pub fn all_voters(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.voters.iter().chain(&self.outgoing).copied().collect();
        all.sort();
        all.dedup();
        all
    }

    /// The election's state given the answers so far (thesis §4.3: while joint, a candidate
    /// needs a majority of C_old and a majority of C_new). Answers from non-voters count for
    /// nothing.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let halves = [&self.voters, &self.outgoing];
        let mut result = VoteResult::Won;
        for half in halves.into_iter().filter(|h| !h.is_empty()) {
            let yes = half.iter().filter(|v| votes.get(v) == Some(&true)).count();
            let no = half.iter().filter(|v| votes.get(v) == Some(&false)).count();
            let need = majority(half.len());
            if half.len() - no < need {
                return VoteResult::Lost;
            }
            if yes < need {
                result = VoteResult::Pending;
            }
        }
        if self.voters.is_empty() {
            // No configuration to win in (a node that joins knows none yet).
            return VoteResult::Lost;
        }
        result
    }

    /// The highest index stored on a quorum (Raft §5.3; thesis §4.3: while joint, on a
    /// majority of C_old and on a majority of C_new). `matched` gives each voter's match index.
    pub fn committed_index(&self, matched: impl Fn(NodeId) -> Index) -> Index {
        assert!(
            !self.voters.is_empty(),
            "a leader's configuration has voters"
        );
        let mut scratch = Vec::with_capacity(self.voters.len());
        let mut commit = Index(u64::MAX);
        for half in [&self.voters, &self.outgoing] {
            if half.is_empty() {
                continue;
            }
            scratch.clear();
            scratch.extend(half.iter().map(|&v| matched(v)));
            commit = commit.min(majority_index(&mut scratch));
        }
        commit
    }

    /// True if `active` holds a quorum of every half (CheckQuorum under joint consensus).
    pub fn has_quorum(&self, active: impl Fn(NodeId) -> bool) -> bool {
        [&self.voters, &self.outgoing]
            .into_iter()
            .filter(|h| !h.is_empty())
            .all(|half| half.iter().filter(|&&v| active(v)).count() >= majority(half.len()))
            && !self.voters.is_empty()
    }

    /// Checks the shape: sorted, distinct, non-zero ids, no learner that also votes.
    pub fn validate(&self) -> Result<(), &'static str> {
        for list in [&self.voters, &self.outgoing, &self.learners] {
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err("membership lists must be sorted and distinct");
            }
            if list.contains(&NodeId(0)) {
                return Err("membership ids must be non-zero");
            }
        }
        if self.learners.iter().any(|&l| self.is_voter(l)) {
            return Err("a learner is not also a voter");
        }
        if self.addresses.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err("addresses must be sorted by id and distinct");
        }
        if self.addresses.iter().any(|a| !self.contains(a.id)) {
            return Err("an address is a member's");
        }
        if self.addresses.iter().any(|a| {
            a.name.len() > ADDRESS_TEXT_MAX
                || a.peer_urls.len() > PEER_URLS_MAX
                || a.peer_urls.iter().any(|u| u.len() > ADDRESS_TEXT_MAX)
        }) {
            return Err("an address is too long");
        }
        Ok(())
    }

    /// The configuration `change` leads to from this plain one, as the next entry to append:
    /// a learner change is applied at once (learners are in no quorum); a voter change gives
    /// the joint configuration C_old,new (thesis §4.3).
    pub fn apply_change(&self, change: ConfChange) -> Result<Membership, ConfChangeError> {
        assert!(
            !self.is_joint(),
            "a change starts from a plain configuration"
        );
        let id = change.node();
        if id == NodeId(0) {
            return Err(ConfChangeError::InvalidId);
        }
        let mut voters = self.voters.clone();
        let mut learners = self.learners.clone();
        match change {
            ConfChange::AddLearner(_) if self.contains(id) => {
                return Err(ConfChangeError::AlreadyMember(id));
            }
            ConfChange::AddLearner(_) => learners.push(id),
            ConfChange::AddVoter(_) if self.is_voter(id) => {
                return Err(ConfChangeError::AlreadyMember(id));
            }
            ConfChange::AddVoter(_) => {
                learners.retain(|&l| l != id);
                voters.push(id);
            }
            ConfChange::Promote(_) if !self.is_learner(id) => {
                return Err(ConfChangeError::NotMember(id));
            }
            ConfChange::Promote(_) => {
                learners.retain(|&l| l != id);
                voters.push(id);
            }
            ConfChange::Remove(_) if !self.contains(id) => {
                return Err(ConfChangeError::NotMember(id));
            }
            ConfChange::Remove(_) => {
                if self.voters == [id] {
                    return Err(ConfChangeError::LastVoter);
                }
                voters.retain(|&v| v != id);
                learners.retain(|&l| l != id);
            }
        }
        voters.sort();
        learners.sort();
        let outgoing = if voters == self.voters {
            Vec::new()
        } else {
            self.voters.clone()
        };
        let mut next = Membership {
            voters,
            outgoing,
            learners,
            addresses: self.addresses.clone(),
        };
        next.prune_addresses();
        debug_assert!(next.validate().is_ok(), "a change keeps the shape");
        Ok(next)
    }

    /// The configuration a joint one leaves to: C_new, with the same learners.
    pub fn leave_joint(&self) -> Membership {
        assert!(self.is_joint(), "only a joint configuration is left");
        let mut next = Membership {
            voters: self.voters.clone(),
            outgoing: Vec::new(),
            learners: self.learners.clone(),
            addresses: self.addresses.clone(),
        };
        next.prune_addresses();
        next
    }

    /// The canonical byte encoding (the WAL and the snapshot records): three little-endian
    /// `u32`-counted lists of `u64` ids. With addresses, the voters' count has its top bit set
    /// and the lists are followed by `count: u32` addresses, each `id: u64`, the name and then
    /// `count: u32` peer URLs, every string `len: u32` and UTF-8 bytes. A configuration without
    /// addresses encodes as before they existed, so older logs read unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (i, list) in [&self.voters, &self.outgoing, &self.learners]
            .into_iter()
            .enumerate()
        {
            let mut n = u32::try_from(list.len()).expect("fewer than 2^31 members");
            assert!(n < ADDRESSES_FLAG, "fewer than 2^31 members");
            if i == 0 && !self.addresses.is_empty() {
                n |= ADDRESSES_FLAG;
            }
            out.extend_from_slice(&n.to_le_bytes());
            for id in list {
                out.extend_from_slice(&id.0.to_le_bytes());
            }
        }
        if self.addresses.is_empty() {
            return;
        }
        let push_str = |out: &mut Vec<u8>, s: &str| {
            let n = u32::try_from(s.len()).expect("address strings are short");
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        let n = u32::try_from(self.addresses.len()).expect("fewer than 2^32 members");
        out.extend_from_slice(&n.to_le_bytes());
        for a in &self.addresses {
            out.extend_from_slice(&a.id.0.to_le_bytes());
            push_str(out, &a.name);
            let n = u32::try_from(a.peer_urls.len()).expect("few peer URLs");
            out.extend_from_slice(&n.to_le_bytes());
            for url in &a.peer_urls {
                push_str(out, url);
            }
        }
    }

    /// Bytes of [`Membership::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let ids = 12 + 8 * (self.voters.len() + self.outgoing.len() + self.learners.len());
        if self.addresses.is_empty() {
            return ids;
        }
        ids + 4
            + self
                .addresses
                .iter()
                .map(|a| 16 + a.name.len() + a.peer_urls.iter().map(|u| 4 + u.len()).sum::<usize>())
                .sum::<usize>()
    }

    /// Decodes [`Membership::encode`]'s bytes from the front of `bytes`, returning the rest;
    /// `None` if they are not a valid membership.
    pub fn decode(mut bytes: &[u8]) -> Option<(Membership, &[u8])> {
        let mut lists: [Vec<NodeId>; 3] = Default::default();
        let mut with_addresses = false;
        for (i, list) in lists.iter_mut().enumerate() {
            let (n, rest) = bytes.split_first_chunk::<4>()?;
            let mut n = u32::from_le_bytes(*n);
            if i == 0 && n & ADDRESSES_FLAG != 0 {
                with_addresses = true;
                n &= !ADDRESSES_FLAG;
            }
            let n = usize::try_from(n).ok()?;
            if rest.len() / 8 < n {
                return None;
            }
            bytes = rest;
            for _ in 0..n {
                let (id, rest) = bytes.split_first_chunk::<8>()?;
                list.push(NodeId(u64::from_le_bytes(*id)));
                bytes = rest;
            }
        }
        let [voters, outgoing, learners] = lists;
        let mut addresses = Vec::new();
        if with_addresses {
            fn u32_at(bytes: &mut &[u8]) -> Option<usize> {
                let (n, rest) = bytes.split_first_chunk::<4>()?;
                *bytes = rest;
                usize::try_from(u32::from_le_bytes(*n)).ok()
            }
            fn str_at(bytes: &mut &[u8]) -> Option<String> {
                let n = u32_at(bytes)?;
                if n > ADDRESS_TEXT_MAX || bytes.len() < n {
                    return None;
                }
                let (s, rest) = bytes.split_at(n);
                *bytes = rest;
                String::from_utf8(s.to_vec()).ok()
            }
            let count = u32_at(&mut bytes)?;
            if count == 0 || count > bytes.len() / 16 {
                return None;
            }
            for _ in 0..count {
                let (id, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                let id = NodeId(u64::from_le_bytes(*id));
                let name = str_at(&mut bytes)?;
                let urls = u32_at(&mut bytes)?;
                if urls > PEER_URLS_MAX {
                    return None;
                }
                let mut peer_urls = Vec::with_capacity(urls);
                for _ in 0..urls {
                    peer_urls.push(str_at(&mut bytes)?);
                }
                addresses.push(MemberAddr {
                    id,
                    name,
                    peer_urls,
                });
            }
        }
        let m = Membership {
            voters,
            outgoing,
            learners,
            addresses,
        };
        m.validate().ok()?;
        Some((m, bytes))
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |l: &[NodeId]| {
            l.iter()
                .map(|i| i.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "voters=({})", ids(&self.voters))?;
        if self.is_joint() {
            write!(f, "&&({})", ids(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners=({})", ids(&self.learners))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(raw: &[u64]) -> Vec<NodeId> {
        raw.iter().map(|&i| NodeId(i)).collect()
    }

    fn joint(new: &[u64], old: &[u64]) -> Membership {
        Membership {
            voters: ids(new),
            outgoing: ids(old),
            learners: Vec::new(),
            addresses: Vec::new(),
        }
    }

    #[test]
    fn joint_commit_needs_a_majority_of_both_halves_4_3() {
        let m = joint(&[1, 2, 3], &[3, 4, 5]);
        // 1, 2 and 3 hold index 7: a majority of C_new, but only one voter of C_old.
        let at = |id: NodeId| if id.0 <= 3 { Index(7) } else { Index(2) };
        assert_eq!(m.committed_index(at), Index(2));
        let at = |id: NodeId| if id.0 <= 4 { Index(7) } else { Index(2) };
        assert_eq!(m.committed_index(at), Index(7));
    }

    #[test]
    fn joint_election_needs_a_majority_of_both_halves_4_3() {
        let m = joint(&[1, 2, 3], &[3, 4, 5]);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(2), true);
        assert_eq!(m.vote_result(&votes), VoteResult::Pending);
        votes.insert(NodeId(4), false);
        votes.insert(NodeId(5), false);
        assert_eq!(m.vote_result(&votes), VoteResult::Lost);
        votes.insert(NodeId(5), true);
        votes.insert(NodeId(3), true);
        assert_eq!(m.vote_result(&votes), VoteResult::Won);
    }

    #[test]
    fn learners_count_in_no_quorum() {
        let mut m = Membership::with_voters(ids(&[1]));
        m.learners = ids(&[2, 3]);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(2), true);
        votes.insert(NodeId(3), true);
        assert_eq!(m.vote_result(&votes), VoteResult::Pending);
        votes.insert(NodeId(1), true);
        assert_eq!(m.vote_result(&votes), VoteResult::Won);
        let at = |id: NodeId| if id.0 == 1 { Index(1) } else { Index(9) };
        assert_eq!(m.committed_index(at), Index(1));
    }

    #[test]
    fn changes_of_voters_go_through_a_joint_configuration() {
        let m = Membership::with_voters(ids(&[1, 2, 3]));
        let added = m.apply_change(ConfChange::AddLearner(NodeId(4))).unwrap();
        assert!(
            !added.is_joint(),
            "a learner joins without a joint configuration"
        );
        let promoted = added.apply_change(ConfChange::Promote(NodeId(4))).unwrap();
        assert_eq!(promoted, joint(&[1, 2, 3, 4], &[1, 2, 3]));
        let left = promoted.leave_joint();
        assert_eq!(left, Membership::with_voters(ids(&[1, 2, 3, 4])));
        assert_eq!(
            left.apply_change(ConfChange::AddVoter(NodeId(2))),
            Err(ConfChangeError::AlreadyMember(NodeId(2)))
        );
        assert_eq!(
            Membership::with_voters(ids(&[1])).apply_change(ConfChange::Remove(NodeId(1))),
            Err(ConfChangeError::LastVoter)
        );
        assert_eq!(
            left.apply_change(ConfChange::Promote(NodeId(9))),
            Err(ConfChangeError::NotMember(NodeId(9)))
        );
    }

    #[test]
    fn the_encoding_round_trips_and_rejects_garbage() {
        let mut m = joint(&[1, 4], &[1, 2, 3]);
        m.learners = ids(&[7]);
        let mut bytes = Vec::new();
        m.encode(&mut bytes);
        bytes.push(9);
        let (back, rest) = Membership::decode(&bytes).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(rest, &[9]);
        assert!(Membership::decode(&bytes[..bytes.len() - 3]).is_none());
        assert!(Membership::decode(&[0xff, 0xff, 0xff, 0xff]).is_none());
        let unsorted = joint(&[4, 1], &[]);
        let mut bytes = Vec::new();
        unsorted.encode(&mut bytes);
        assert!(
            Membership::decode(&bytes).is_none(),
            "unsorted lists refused"
        );
    }

    #[test]
    fn addresses_round_trip_follow_members_and_keep_old_encodings() {
        let addr = |id: u64, name: &str| MemberAddr {
            id: NodeId(id),
            name: name.into(),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + id)],
        };
        let plain = joint(&[1, 2, 3], &[]);
        let mut old = Vec::new();
        plain.encode(&mut old);
        assert_eq!(old.len(), plain.encoded_len());
        assert_eq!(
            old.len(),
            12 + 3 * 8,
            "no addresses: the encoding of before"
        );
        let with = plain
            .apply_change(ConfChange::AddLearner(NodeId(9)))
            .unwrap()
            .with_address(addr(9, ""))
            .unwrap();
        let mut bytes = Vec::new();
        with.encode(&mut bytes);
        assert_eq!(bytes.len(), with.encoded_len());
        bytes.extend_from_slice(b"data");
        let (back, rest) = Membership::decode(&bytes).expect("decodes");
        assert_eq!((back.clone(), rest), (with.clone(), &b"data"[..]));
        assert_eq!(back.address(NodeId(9)), Some(&addr(9, "")));
        for cut in 1..bytes.len() - 4 {
            assert!(
                Membership::decode(&bytes[..cut]).is_none_or(|(m, _)| m != with),
                "a cut encoding is not the configuration"
            );
        }
        // The address follows its member through a promotion and out on removal.
        let promoted = with.apply_change(ConfChange::Promote(NodeId(9))).unwrap();
        assert_eq!(promoted.address(NodeId(9)), Some(&addr(9, "")));
        let left = promoted.leave_joint();
        assert_eq!(left.address(NodeId(9)), Some(&addr(9, "")));
        let removing = left.apply_change(ConfChange::Remove(NodeId(9))).unwrap();
        assert!(removing.address(NodeId(9)).is_some(), "kept while joint");
        assert!(removing.leave_joint().addresses.is_empty());
        assert_eq!(
            plain.clone().with_address(addr(8, "x")),
            Err(ConfChangeError::NotMember(NodeId(8)))
        );
        let mut long = addr(1, "");
        long.peer_urls = vec!["x".repeat(ADDRESS_TEXT_MAX + 1)];
        assert_eq!(
            plain.with_address(long),
            Err(ConfChangeError::AddressTooLong(NodeId(1)))
        );
    }

    /// The dumb reference: the largest index some candidate value reaches on a majority of
    /// each half.
    fn dumb_committed(m: &Membership, at: &BTreeMap<NodeId, Index>) -> Index {
        let mut best = Index(0);
        for &candidate in at.values() {
            let ok = [&m.voters, &m.outgoing]
                .into_iter()
                .filter(|h| !h.is_empty())
                .all(|h| h.iter().filter(|v| at[v] >= candidate).count() >= majority(h.len()));
            if ok && candidate > best {
                best = candidate;
            }
        }
        best
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn committed_index_matches_dumb_reference(
            raw in prop::collection::vec(0u64..20, 7),
            new_mask in 1u8..128,
            old_mask in 0u8..128,
        ) {
            let pick = |mask: u8| (1..=7u64).filter(|i| mask & (1 << (i - 1)) != 0).collect::<Vec<_>>();
            let m = joint(&pick(new_mask), &pick(old_mask));
            let at: BTreeMap<NodeId, Index> =
                (1..=7u64).map(|i| (NodeId(i), Index(raw[i as usize - 1]))).collect();
            prop_assert_eq!(m.committed_index(|id| at[&id]), dumb_committed(&m, &at));
        }
    }
}
