//! The rules of the Raft paper (Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", 2014), one named test per rule, plus property tests of the safety guarantees of
//! Figure 3 under random message loss, reordering, duplication, partitions and restarts.
//! Names end with the paper section they pin down.

mod common;

use std::cell::Cell;
use std::collections::BTreeSet;

use common::{Network, Options, Storage};
use engine::raft::{
    Bugs, Entry, EntryKind, HardState, Index, Message, MessageKind, NodeId, ProposeError, Proposed,
    RawNode, RejectHint, RoleKind, StepError, Term,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

// --- Helpers ---------------------------------------------------------------------------------

fn peers(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn noop(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Noop,
    }
}

fn cmd(term: u64, index: u64, data: &str) -> Entry {
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Command(data.as_bytes().into()),
    }
}

/// Node `id` of an `n`-node cluster, started from the given disk.
fn node_from(id: u64, n: u64, hard_state: HardState, entries: Vec<Entry>) -> RawNode {
    let config = Options::default().config(NodeId(id), peers(n));
    RawNode::new(config, hard_state, entries).expect("valid config")
}

/// Node `id` of an `n`-node cluster with an empty disk.
fn fresh(id: u64, n: u64) -> RawNode {
    node_from(id, n, HardState::default(), Vec::new())
}

fn term_hs(term: u64) -> HardState {
    HardState {
        term: Term(term),
        ..HardState::default()
    }
}

/// Takes every Ready (as if persisted at once) and returns the messages sent.
fn drain(raw: &mut RawNode) -> Vec<Message> {
    let mut msgs = Vec::new();
    while let Some(ready) = raw.ready() {
        msgs.extend(ready.messages.iter().cloned());
        raw.advance(ready);
    }
    msgs
}

fn append(from: u64, to: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        kind: MessageKind::Append {
            prev_log_index: Index(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: Index(0),
            read_seq: 0,
        },
    }
}

fn vote(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        kind: MessageKind::Vote {
            last_log_index: Index(last_index),
            last_log_term: Term(last_term),
            transfer: false,
        },
    }
}

fn vote_response(from: u64, to: u64, term: u64, granted: bool) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        kind: MessageKind::VoteResponse { granted },
    }
}

/// The one message `raw` sends after stepping `m`.
fn reply(raw: &mut RawNode, m: Message) -> Message {
    raw.step(m).expect("step");
    let mut msgs = drain(raw);
    assert_eq!(msgs.len(), 1, "one reply: {msgs:?}");
    msgs.pop().expect("one reply")
}

fn granted(m: &Message) -> bool {
    match m.kind {
        MessageKind::VoteResponse { granted } => granted,
        _ => panic!("not a vote response: {m}"),
    }
}

fn log_of(raw: &RawNode) -> Vec<Entry> {
    let log = raw.raft_log();
    log.slice(Index(1), log.last_index(), usize::MAX).to_vec()
}

/// A network that has elected node 1 in term 1 and committed its no-op everywhere.
fn elected_network(n: u64) -> Network {
    let mut net = Network::new(n, &Options::default());
    let mut out = String::new();
    net.campaign(NodeId(1), &mut out);
    net.stabilize(&net.ids(), &mut out);
    net.tick(NodeId(1), &mut out);
    net.stabilize(&net.ids(), &mut out);
    assert_eq!(
        net.raw(NodeId(1)).expect("up").status().role,
        RoleKind::Leader
    );
    net
}

// --- §5.1: terms ------------------------------------------------------------------------------

#[test]
fn follower_rejects_stale_term_5_1() {
    let mut raw = node_from(2, 3, term_hs(2), vec![noop(1, 1), noop(2, 2)]);
    let r = reply(&mut raw, append(1, 2, 1, (1, 1), vec![noop(1, 2)]));
    assert_eq!(r.term, Term(2), "the reply carries the newer term");
    let MessageKind::AppendResponse { success, .. } = r.kind else {
        panic!("not an append response: {r}");
    };
    assert!(!success, "a stale AppendEntries is rejected");
    assert_eq!(raw.raft_log().last_index(), Index(2), "log untouched");

    let r = reply(&mut raw, vote(3, 2, 1, 9, 1));
    assert!(!granted(&r), "a stale RequestVote is rejected");
    assert_eq!(r.term, Term(2));
    assert_eq!(raw.status().voted_for, None);
    assert_eq!(raw.status().term, Term(2));
}

#[test]
fn newer_term_turns_leader_into_follower_5_1() {
    let mut raw = fresh(1, 3);
    raw.campaign();
    drain(&mut raw);
    raw.step(vote_response(2, 1, 1, true)).expect("step");
    drain(&mut raw);
    assert_eq!(raw.status().role, RoleKind::Leader);

    raw.step(append(3, 1, 5, (0, 0), Vec::new())).expect("step");
    let s = raw.status();
    assert_eq!(s.role, RoleKind::Follower);
    assert_eq!(s.term, Term(5), "adopts the newer term");
    assert_eq!(s.voted_for, None, "no vote yet in the new term");
    assert_eq!(s.leader, Some(NodeId(3)));
}

#[test]
fn only_the_leader_accepts_proposals_5_1() {
    let mut net = elected_network(3);
    let mut out = String::new();
    let r = net.propose(NodeId(2), b"x", &mut out).expect("up");
    assert_eq!(
        r,
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
    let r = net.propose(NodeId(1), b"x", &mut out).expect("up");
    assert_eq!(r, Ok((Index(2), Term(1))));
}

// --- §5.2: leader election --------------------------------------------------------------------

#[test]
fn candidate_votes_for_itself_and_requests_votes_5_2() {
    let mut raw = fresh(1, 3);
    raw.campaign();
    let ready = raw.ready().expect("a ready");
    let hs = ready
        .hard_state
        .expect("the new term and vote are persisted");
    assert_eq!((hs.term, hs.voted_for), (Term(1), Some(NodeId(1))));
    let to: Vec<NodeId> = ready.messages.iter().map(|m| m.to).collect();
    assert_eq!(to, vec![NodeId(2), NodeId(3)]);
    assert!(
        ready
            .messages
            .iter()
            .all(|m| matches!(m.kind, MessageKind::Vote { .. }) && m.term == Term(1))
    );
    raw.advance(ready);
    assert_eq!(raw.status().role, RoleKind::Candidate);
}

#[test]
fn candidate_wins_with_a_majority_5_2() {
    let mut raw = fresh(1, 5);
    raw.campaign();
    drain(&mut raw);
    raw.step(vote_response(2, 1, 1, true)).expect("step");
    raw.step(vote_response(3, 1, 1, false)).expect("step");
    assert_eq!(
        raw.status().role,
        RoleKind::Candidate,
        "2 of 5 is no majority"
    );
    raw.step(vote_response(4, 1, 1, true)).expect("step");
    assert_eq!(raw.status().role, RoleKind::Leader, "3 of 5 is a majority");
}

#[test]
fn candidate_steps_down_on_append_from_leader_5_2() {
    let mut raw = fresh(1, 3);
    raw.campaign();
    drain(&mut raw);
    assert_eq!(raw.status().role, RoleKind::Candidate);
    let r = reply(&mut raw, append(2, 1, 1, (0, 0), vec![noop(1, 1)]));
    let s = raw.status();
    assert_eq!(s.role, RoleKind::Follower);
    assert_eq!(s.leader, Some(NodeId(2)));
    assert_eq!(s.term, Term(1));
    assert!(matches!(
        r.kind,
        MessageKind::AppendResponse { success: true, .. }
    ));
}

#[test]
fn vote_granted_once_per_term_5_2() {
    let mut raw = fresh(1, 3);
    assert!(granted(&reply(&mut raw, vote(2, 1, 1, 0, 0))));
    assert!(
        !granted(&reply(&mut raw, vote(3, 1, 1, 0, 0))),
        "second candidate, same term"
    );
    assert!(
        granted(&reply(&mut raw, vote(2, 1, 1, 0, 0))),
        "a retried request from the same candidate is answered the same way"
    );
    assert!(
        granted(&reply(&mut raw, vote(3, 1, 2, 0, 0))),
        "a new term brings a new vote"
    );
    assert_eq!(raw.status().voted_for, Some(NodeId(3)));
}

#[test]
fn vote_survives_restart_fig2() {
    let mut net = Network::new(3, &Options::default());
    let mut out = String::new();
    net.campaign(NodeId(3), &mut out);
    net.process_ready(NodeId(3), &mut out);
    net.deliver(NodeId(2), &BTreeSet::new(), &mut out);
    net.process_ready(NodeId(2), &mut out);
    net.restart(NodeId(2));
    let s = net.raw(NodeId(2)).expect("up").status();
    assert_eq!((s.term, s.voted_for), (Term(1), Some(NodeId(3))));
    let raw = net.nodes.get_mut(&NodeId(2)).and_then(|n| n.raw.as_mut());
    let raw = raw.expect("up");
    assert!(
        !granted(&reply(raw, vote(1, 2, 1, 5, 1))),
        "a restarted voter does not vote twice in a term"
    );
}

#[test]
fn vote_is_persisted_in_the_ready_that_sends_it_fig2() {
    let mut raw = fresh(2, 3);
    raw.step(vote(1, 2, 1, 0, 0)).expect("step");
    let ready = raw.ready().expect("a ready");
    let hs = ready.hard_state.expect("the vote is persisted");
    assert_eq!(hs.voted_for, Some(NodeId(1)));
    assert!(granted(&ready.messages[0]));
    raw.advance(ready);
}

/// Ticks until the node starts its next election; returns how many ticks that took.
fn ticks_to_campaign(raw: &mut RawNode) -> u64 {
    let before = raw.campaigns();
    for t in 1..=100 {
        raw.tick();
        drain(raw);
        if raw.campaigns() > before {
            return t;
        }
    }
    panic!("no election within 100 ticks");
}

/// The first `k` election timeouts of node 1 (of 3, so it never wins alone) seeded with `seed`.
fn timeouts(seed: u64, k: usize) -> Vec<u64> {
    let options = Options {
        seed,
        ..Options::default()
    };
    let config = options.config(NodeId(1), peers(3));
    let mut raw = RawNode::new(config, HardState::default(), Vec::new()).expect("valid");
    (0..k).map(|_| ticks_to_campaign(&mut raw)).collect()
}

#[test]
fn election_timeout_is_randomized_and_redrawn_5_2() {
    let first = timeouts(7, 8);
    assert_eq!(first, timeouts(7, 8), "same seed, same timeouts");
    for t in &first {
        assert!((10..20).contains(t), "timeout {t} outside [10, 20)");
    }
    let distinct: BTreeSet<u64> = first.iter().copied().collect();
    assert!(distinct.len() > 1, "redrawn at every campaign: {first:?}");
    let across_seeds: BTreeSet<Vec<u64>> = (0..8).map(|s| timeouts(s, 3)).collect();
    assert!(
        across_seeds.len() > 1,
        "different seeds, different timeouts"
    );
}

/// `Config::election_timeout_step_ticks`: timeouts in whole steps past the minimum, drawn as
/// LogCabin drew whole milliseconds (the range's two ends half as likely as the values between).
#[test]
fn election_timeout_in_steps_is_rounded_like_logcabin() {
    let draws = |step: u64, min: u64, max_excl: u64, seed: u64| -> Vec<u64> {
        let mut config = engine::raft::Config::new(NodeId(1), peers(3), seed);
        config.election_timeout_ticks = min;
        config.election_timeout_max_ticks = max_excl;
        config.heartbeat_interval_ticks = 1;
        config.election_timeout_step_ticks = step;
        let mut raw = RawNode::new(config, HardState::default(), Vec::new()).expect("valid");
        (0..2000).map(|_| ticks_to_campaign(&mut raw)).collect()
    };
    // 10..=20 in steps of 5: 10, 15 and 20 only, with weights 1/4, 1/2, 1/4.
    let d = draws(5, 10, 21, 3);
    let count = |v: u64| d.iter().filter(|&&t| t == v).count();
    assert_eq!(
        count(10) + count(15) + count(20),
        d.len(),
        "only whole steps"
    );
    for (v, share) in [(10, 0.25), (15, 0.5), (20, 0.25)] {
        let got = count(v) as f64 / d.len() as f64;
        assert!((got - share).abs() < 0.04, "{v}: {got} against {share}");
    }
    // A range narrower than one step is always its minimum.
    assert!(draws(10, 10, 15, 4).iter().all(|&t| t == 10));
    // Step 0 is refused.
    let mut config = engine::raft::Config::new(NodeId(1), peers(3), 1);
    config.election_timeout_step_ticks = 0;
    assert!(RawNode::new(config, HardState::default(), Vec::new()).is_err());
}

#[test]
fn heartbeats_prevent_elections_5_2() {
    let mut net = elected_network(3);
    let mut out = String::new();
    for _ in 0..200 {
        for id in net.ids() {
            net.tick(id, &mut out);
        }
        net.stabilize(&net.ids(), &mut out);
        out.clear();
    }
    for id in net.ids() {
        let raw = net.raw(id).expect("up");
        assert_eq!(raw.status().term, Term(1), "node {id} stays in term 1");
    }
    assert_eq!(net.raw(NodeId(2)).expect("up").campaigns(), 0);
    assert_eq!(net.raw(NodeId(3)).expect("up").campaigns(), 0);
}

// --- §5.3: log replication --------------------------------------------------------------------

#[test]
fn follower_rejects_append_without_matching_prev_5_3() {
    let mut raw = node_from(2, 3, term_hs(2), vec![noop(1, 1), noop(1, 2)]);
    let r = reply(&mut raw, append(1, 2, 2, (3, 2), vec![noop(2, 4)]));
    let hint = RejectHint {
        rejected: Index(3),
        conflict_term: None,
        conflict_index: Index(3),
        lost: false,
    };
    assert!(
        matches!(r.kind, MessageKind::AppendResponse { success: false, hint: Some(h), .. } if h == hint),
        "missing entry: hint at the log's end: {r}"
    );
    let r = reply(&mut raw, append(1, 2, 2, (2, 2), vec![noop(2, 3)]));
    let hint = RejectHint {
        rejected: Index(2),
        conflict_term: Some(Term(1)),
        conflict_index: Index(1),
        lost: false,
    };
    assert!(
        matches!(r.kind, MessageKind::AppendResponse { success: false, hint: Some(h), .. } if h == hint),
        "term mismatch: hint at the first entry of the conflicting term: {r}"
    );
    assert_eq!(raw.raft_log().last_index(), Index(2), "log untouched");
}

fn ack(from: u64, to: u64, term: u64, match_index: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        kind: MessageKind::AppendResponse {
            success: true,
            match_index: Index(match_index),
            hint: None,
            read_seq: 0,
        },
    }
}

/// While its sync is pending, a follower learns its leader's commit index from an
/// AppendEntries whose previous entry matches its log (receiver rule 5, with the entries it
/// holds), never past its own durable log, and keeps the message to step after the sync.
#[test]
fn follower_learns_commit_while_syncing_within_its_durable_log_5_3() {
    let mut raw = node_from(2, 3, term_hs(1), vec![noop(1, 1), cmd(1, 2, "a")]);
    raw.step(append(1, 2, 1, (2, 1), vec![cmd(1, 3, "b")]))
        .expect("step");
    let ready = raw.ready().expect("a ready");
    assert_eq!(ready.entries, vec![cmd(1, 3, "b")]);
    // The leader's next AppendEntries, committing up to 3, arrives during the sync.
    let mut next = append(1, 2, 1, (3, 1), vec![cmd(1, 4, "c")]);
    if let MessageKind::Append { leader_commit, .. } = &mut next.kind {
        *leader_commit = Index(3);
    }
    let held = raw.step_during_sync(next.clone()).expect("valid");
    assert_eq!(held, Some(next.clone()), "kept to append after the sync");
    assert_eq!(
        raw.raft_log().commit(),
        Index(2),
        "commit stops at the durable log (entry 3 is still being synced)"
    );
    let committed: Vec<Index> = raw
        .committed_during_sync()
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(committed, vec![Index(1), Index(2)]);
    raw.applied_early(Index(2));
    // One whose previous entry this log does not hold teaches nothing.
    let mut stray = append(1, 2, 1, (5, 1), Vec::new());
    if let MessageKind::Append { leader_commit, .. } = &mut stray.kind {
        *leader_commit = Index(3);
    }
    assert!(raw.step_during_sync(stray).expect("valid").is_some());
    assert_eq!(raw.raft_log().commit(), Index(2));
    raw.advance(ready);
    assert_eq!(
        raw.raft_log().applied(),
        Index(2),
        "applied early stays applied"
    );
    raw.step(next).expect("step the held message");
    assert_eq!(raw.raft_log().commit(), Index(3));
}

/// While its sync is pending, a leader counts its followers' acknowledgements at once, but
/// its own replica only up to its durable log: what it is still writing commits only once
/// the sync is done (§5.3: stored on a majority).
#[test]
fn leader_counts_acks_while_syncing_but_not_its_unsynced_entries_5_3() {
    let mut net = elected_network(3);
    let mut out = String::new();
    let leader = NodeId(1);
    let (first, term) = net
        .propose(leader, b"x", &mut out)
        .expect("up")
        .expect("leads");
    net.with_raw(leader, &mut out, |raw| {
        // The first batch is synced; the second is being written.
        let ready = raw.ready().expect("first batch");
        raw.advance(ready);
        let (second, _) = raw.propose(b"y".to_vec()).expect("leads");
        let ready = raw.ready().expect("second batch");
        assert_eq!(ready.entries.last().map(|e| e.index), Some(second));
        // Both followers hold both batches already: the first commits, the second waits.
        for follower in [2, 3] {
            let consumed = raw
                .step_during_sync(ack(follower, 1, term.0, second.0))
                .expect("valid");
            assert!(consumed.is_none(), "an acknowledgement is taken in at once");
        }
        assert_eq!(raw.raft_log().commit(), first, "the synced batch commits");
        let committed: Vec<Index> = raw
            .committed_during_sync()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(committed.last(), Some(&first));
        raw.applied_early(first);
        raw.advance(ready);
        assert_eq!(raw.raft_log().commit(), second, "the second once synced");
    });
}

#[test]
fn follower_truncates_conflicting_suffix_5_3() {
    let entries = vec![noop(1, 1), cmd(1, 2, "a"), cmd(1, 3, "b")];
    let hs = HardState {
        term: Term(1),
        voted_for: None,
        commit: Index(1),
    };
    let mut raw = node_from(2, 3, hs, entries);
    raw.step(append(1, 2, 2, (1, 1), vec![noop(2, 2)]))
        .expect("step");
    let ready = raw.ready().expect("a ready");
    assert_eq!(
        ready.entries,
        vec![noop(2, 2)],
        "the replacement is persisted"
    );
    let r = &ready.messages[0];
    assert!(matches!(
        r.kind,
        MessageKind::AppendResponse {
            success: true,
            match_index: Index(2),
            ..
        }
    ));
    raw.advance(ready);
    assert_eq!(log_of(&raw), vec![noop(1, 1), noop(2, 2)]);
}

/// A committed entry is never overwritten (Raft §5.4): an AppendEntries that would rewrite one
/// can only be corrupt or forged, and the node refuses it with an error instead of obeying (or
/// asserting and stopping).
#[test]
fn an_append_that_rewrites_a_committed_entry_is_refused_5_4() {
    let hard_state = HardState {
        term: Term(2),
        voted_for: None,
        commit: Index(2),
    };
    let mut raw = node_from(2, 3, hard_state, vec![noop(1, 1), cmd(1, 2, "a")]);
    let forged = append(1, 2, 2, (1, 1), vec![cmd(2, 2, "b")]);
    assert!(matches!(raw.step(forged), Err(StepError::Malformed(_))));
    assert_eq!(
        log_of(&raw),
        vec![noop(1, 1), cmd(1, 2, "a")],
        "log untouched"
    );
    let fine = append(1, 2, 2, (2, 1), vec![cmd(2, 3, "c")]);
    assert!(
        raw.step(fine).is_ok(),
        "an append after the commit is taken"
    );
}

#[test]
fn follower_keeps_its_log_on_a_stale_prefix_5_3() {
    let entries = vec![noop(1, 1), cmd(1, 2, "a"), cmd(1, 3, "b")];
    let mut raw = node_from(2, 3, term_hs(1), entries.clone());
    let r = reply(&mut raw, append(1, 2, 1, (0, 0), vec![noop(1, 1)]));
    assert!(matches!(
        r.kind,
        MessageKind::AppendResponse {
            success: true,
            match_index: Index(1),
            ..
        }
    ));
    assert_eq!(log_of(&raw), entries, "a delayed append does not truncate");
}

#[test]
fn follower_learns_commit_from_leader_5_3() {
    let mut net = elected_network(3);
    let mut out = String::new();
    net.propose(NodeId(1), b"x", &mut out)
        .expect("up")
        .expect("leader");
    net.stabilize(&net.ids(), &mut out);
    assert_eq!(net.node(NodeId(1)).commit(), Index(2));
    // Told at once, not with the next heartbeat: the leader sends the new commit index as
    // soon as it moves (as etcd-io/raft's `bcastAppend` after `maybeCommit`), so a write a
    // follower relays is not held up a heartbeat interval.
    assert_eq!(
        net.node(NodeId(2)).commit(),
        Index(2),
        "told without a tick"
    );
    for id in net.ids() {
        let applied: Vec<&[u8]> = net.node(id).applied.iter().map(Entry::data).collect();
        assert_eq!(
            applied,
            vec![&b""[..], b"x"],
            "node {id} applied the no-op and x"
        );
    }
}

/// Every member takes writes: a follower forwards a command to its leader, which appends it
/// tagged with the follower's id and tag, so the follower recognises its own command when it
/// applies it (etcd's followers forward proposals the same way); a duplicated message appends
/// it once.
#[test]
fn a_follower_forwards_a_command_to_the_leader_tagged_5_3() {
    let mut net = elected_network(3);
    let mut out = String::new();
    let forwarded = net.with_raw(NodeId(2), &mut out, |raw| {
        raw.propose_or_forward(41, b"from 2".to_vec())
    });
    assert_eq!(forwarded, Some(Ok(Proposed::Forwarded(Term(1)))));
    // The network delivers the Propose twice: the command is appended once.
    assert!(net.process_ready(NodeId(2), &mut out));
    net.duplicate_nth(NodeId(1), 0);
    net.stabilize(&net.ids(), &mut out);
    let expected = EntryKind::Forwarded {
        origin: NodeId(2),
        tag: 41,
        data: b"from 2"[..].into(),
    };
    for id in net.ids() {
        let raw = net.raw(id).expect("up");
        let log = log_of(raw);
        let copies = log.iter().filter(|e| e.kind == expected).count();
        assert_eq!(copies, 1, "{id} appended it once: {out}");
        let last = log.last().expect("an entry").clone();
        assert_eq!(last.kind, expected, "{id}: {out}");
        assert_eq!(raw.status().commit, last.index, "{id} committed it");
    }
    // The leader appends its own commands directly; a node that knows no leader refuses.
    let mut fresh = fresh(3, 3);
    assert_eq!(
        fresh.propose_or_forward(1, b"y".to_vec()),
        Err(ProposeError::NotLeader { leader: None })
    );
}

// --- §5.4: safety -----------------------------------------------------------------------------

#[test]
fn log_up_to_date_rule_5_4_1() {
    // The voter's log ends at term 2, index 2.
    let cases = [
        ((1, 5), false, "older last term, longer log"),
        ((2, 1), false, "same last term, shorter log"),
        ((2, 2), true, "same last term, same length"),
        ((2, 3), true, "same last term, longer log"),
        ((3, 1), true, "newer last term, shorter log"),
    ];
    for ((last_term, last_index), want, why) in cases {
        let mut raw = node_from(2, 3, term_hs(2), vec![noop(1, 1), noop(2, 2)]);
        let r = reply(&mut raw, vote(1, 2, 3, last_index, last_term));
        assert_eq!(granted(&r), want, "{why}");
        assert_eq!(raw.status().term, Term(3), "the term moves either way");
    }
}

/// Nodes 1..=3 where only node 1 holds `x` (term 1) at index 1; one entry per AppendEntries.
/// Node 1 campaigns and the network runs one step at a time until the leader first commits.
/// Returns the entry it first committed.
fn first_commit_of_new_leader(bugs: Bugs) -> Entry {
    let mut storages = vec![Storage::default(); 3];
    storages[0].entries = vec![cmd(1, 1, "x")];
    for s in &mut storages {
        s.hard_state.term = Term(1);
    }
    let options = Options {
        msg_entries_max: 1,
        bugs,
        ..Options::default()
    };
    let mut net = Network::with_storage(storages, &options);
    let mut out = String::new();
    net.campaign(NodeId(1), &mut out);
    for _ in 0..100 {
        for id in net.ids() {
            net.process_ready(id, &mut out);
            net.deliver_nth(id, 0, &mut out);
            let leader = net.raw(NodeId(1)).expect("up");
            let commit = leader.raft_log().commit();
            if commit > Index(0) {
                return leader.raft_log().entry(commit).expect("committed").clone();
            }
        }
    }
    panic!("the leader never committed:\n{out}");
}

#[test]
fn commit_only_current_term_5_4_2() {
    // Node 1 wins term 2 and appends its no-op at index 2; x (term 1, index 1) reaches a
    // majority first, but only the no-op of the current term commits it (Figure 8).
    assert_eq!(first_commit_of_new_leader(Bugs::default()), noop(2, 2));
}

#[test]
fn planted_bug_commits_old_term_by_counting_replicas_5_4_2() {
    let bugs = Bugs {
        commit_old_term: true,
        ..Bugs::default()
    };
    assert_eq!(first_commit_of_new_leader(bugs), cmd(1, 1, "x"));
}

#[test]
fn leader_appends_noop_on_election_8() {
    let mut net = elected_network(3);
    let log = log_of(net.raw(NodeId(1)).expect("up"));
    assert_eq!(log, vec![noop(1, 1)], "the term-1 leader's first entry");
    // A later leader commits the earlier term's entries through its own no-op.
    let mut out = String::new();
    net.propose(NodeId(1), b"x", &mut out)
        .expect("up")
        .expect("leader");
    net.process_ready(NodeId(1), &mut out);
    net.deliver(NodeId(2), &BTreeSet::new(), &mut out);
    net.process_ready(NodeId(2), &mut out);
    net.crash(NodeId(1));
    net.campaign(NodeId(2), &mut out);
    net.stabilize(&[NodeId(2), NodeId(3)], &mut out);
    let leader = net.raw(NodeId(2)).expect("up");
    assert_eq!(leader.status().role, RoleKind::Leader);
    assert_eq!(log_of(leader)[2], noop(2, 3), "the no-op of term 2");
    assert_eq!(leader.raft_log().commit(), Index(3), "x commits with it");
}

// --- Properties -------------------------------------------------------------------------------

/// One step of a random schedule. Node ids are `1..=n`; `usize`s pick a queued message.
#[derive(Clone, Debug)]
enum Action {
    Tick(u64),
    Ready(u64),
    Deliver(u64, usize),
    Drop(u64, usize),
    Duplicate(u64, usize),
    /// Proposes at node `i`, or (if true) at the leader of the highest term, if there is one.
    Propose(u64, bool),
    Restart(u64),
    /// Nodes whose bit is set form one side.
    Partition(u8),
    Heal,
}

fn action(n: u64) -> impl Strategy<Value = Action> {
    let id = 1..=n;
    // Mostly in order: a quarter of deliveries pick any queued message (reordering).
    let pick = prop_oneof![3 => Just(0usize), 1 => any::<usize>()];
    prop_oneof![
        10 => id.clone().prop_map(Action::Tick),
        30 => id.clone().prop_map(Action::Ready),
        40 => (id.clone(), pick).prop_map(|(i, k)| Action::Deliver(i, k)),
        3 => (id.clone(), any::<usize>()).prop_map(|(i, k)| Action::Drop(i, k)),
        2 => (id.clone(), any::<usize>()).prop_map(|(i, k)| Action::Duplicate(i, k)),
        8 => (id.clone(), any::<bool>()).prop_map(|(i, l)| Action::Propose(i, l)),
        1 => id.prop_map(Action::Restart),
        1 => any::<u8>().prop_map(Action::Partition),
        3 => Just(Action::Heal),
    ]
}

/// A random schedule: the `msg_entries_max` of every node (small, so that appends are often
/// partial) and the actions.
fn schedule(n: u64) -> impl Strategy<Value = (usize, Vec<Action>)> {
    let len_max = 300 * n as usize;
    (1usize..=4, prop::collection::vec(action(n), 1..len_max))
}

fn perform(net: &mut Network, step: usize, a: &Action, out: &mut String) {
    match *a {
        Action::Tick(i) => net.tick(NodeId(i), out),
        Action::Ready(i) => {
            net.process_ready(NodeId(i), out);
        }
        Action::Deliver(i, k) => {
            net.deliver_nth(NodeId(i), k, out);
        }
        Action::Drop(i, k) => net.drop_nth(NodeId(i), k),
        Action::Duplicate(i, k) => net.duplicate_nth(NodeId(i), k),
        Action::Propose(i, to_leader) => {
            let data = format!("p{step}");
            let leader = to_leader.then(|| newest_leader(net)).flatten();
            net.propose(leader.unwrap_or(NodeId(i)), data.as_bytes(), out);
        }
        Action::Restart(i) => net.restart(NodeId(i)),
        Action::Partition(mask) => {
            let side: BTreeSet<NodeId> = net
                .ids()
                .into_iter()
                .filter(|id| mask & (1 << (id.0 - 1)) != 0)
                .collect();
            let rest = net.ids().into_iter().filter(|id| !side.contains(id));
            net.partition(vec![side.clone(), rest.collect()]);
        }
        Action::Heal => net.heal(),
    }
}

/// The leader of the highest term among the running nodes.
fn newest_leader(net: &Network) -> Option<NodeId> {
    let leaders = net.ids().into_iter().filter_map(|id| {
        let s = net.raw(id)?.status();
        (s.role == RoleKind::Leader).then_some((s.term, id))
    });
    leaders.max().map(|(_, id)| id)
}

/// Runs `actions` on `n` fresh nodes, checking Figure 3's properties after every action.
/// Returns the highest commit index any node reached.
fn run_schedule(n: u64, msg_entries_max: usize, actions: &[Action]) -> Result<Index, String> {
    let options = Options {
        election_ticks: ELECTION_TICKS,
        msg_entries_max,
        ..Options::default()
    };
    let mut net = Network::new(n, &options);
    let mut out = String::new();
    for (step, a) in actions.iter().enumerate() {
        out.clear();
        perform(&mut net, step, a, &mut out);
        net.check_all();
        if let Some(v) = net.checker.violations.first() {
            return Err(format!("after step {step} ({a:?}): {v}\n{out}"));
        }
    }
    let commit = net.ids().into_iter().map(|id| net.node(id).commit()).max();
    Ok(commit.unwrap_or_default())
}

const ELECTION_TICKS: u64 = 5;

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Election Safety, Log Matching, Leader Completeness (committed entries never change) and
/// State Machine Safety hold under random schedules; and the schedules are not vacuous: some
/// commit entries beyond the first leader's no-op.
fn safety_under_random_schedules(n: u64, cases: u32) {
    let mut runner = TestRunner::new(proptest_config(cases));
    let progressed = Cell::new(0u32);
    let result = runner.run(&schedule(n), |(msg_entries_max, actions)| {
        let commit = run_schedule(n, msg_entries_max, &actions).map_err(TestCaseError::fail)?;
        if commit >= Index(3) {
            progressed.set(progressed.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{n} nodes: {e}");
    }
    assert!(
        progressed.get() >= cases / 8,
        "only {} of {cases} schedules committed 3 entries: the test is close to vacuous",
        progressed.get()
    );
}

#[test]
fn safety_under_random_schedules_3_nodes() {
    safety_under_random_schedules(3, 512);
}

#[test]
fn safety_under_random_schedules_5_nodes() {
    safety_under_random_schedules(5, 256);
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Raft Figure 2: `currentTerm` and `votedFor` are persistent, so across any crash and
    /// restart a node's persisted term never decreases, its vote in a term never changes, and
    /// it never runs at a term below what it persisted.
    #[test]
    fn terms_and_votes_never_go_back_across_restarts((msg_entries_max, actions) in schedule(3)) {
        let options = Options {
            election_ticks: ELECTION_TICKS,
            msg_entries_max,
            ..Options::default()
        };
        let mut net = Network::new(3, &options);
        let mut out = String::new();
        let mut last: Vec<HardState> = vec![HardState::default(); 3];
        for (step, a) in actions.iter().enumerate() {
            out.clear();
            perform(&mut net, step, a, &mut out);
            for (i, id) in net.ids().into_iter().enumerate() {
                let hs = net.node(id).storage.hard_state;
                prop_assert!(hs.term >= last[i].term, "node {} term went back: {:?}", id, a);
                if hs.term == last[i].term && last[i].voted_for.is_some() {
                    prop_assert_eq!(hs.voted_for, last[i].voted_for, "node {} revoted", id);
                }
                if let Some(raw) = net.raw(id) {
                    prop_assert!(raw.status().term >= hs.term, "node {} runs below its disk", id);
                }
                last[i] = hs;
            }
            prop_assert!(net.checker.violations.is_empty(), "{:?}", net.checker.violations);
        }
    }
}

/// `Config::step_down_resets_timer` and `Config::refused_vote_resets_timer`: a node refusing a
/// higher-term RequestVote (its log is longer) moves to that term. etcd-io/raft restarts the
/// election timer there (both `true`); this core's default and the Raft paper's rule (Figure 2:
/// only a leader's AppendEntries or a granted vote restarts it) keep it running, so a stale
/// candidate cannot hold back the nodes that could win.
#[test]
fn a_refused_vote_of_a_higher_term_keeps_the_timer_unless_etcds_rule_is_asked_for() {
    // (step_down_resets_timer, refused_vote_resets_timer, timer restarted)
    for (step_down_resets, refused_resets, restarted) in [
        (true, true, true),
        (true, false, false),
        (false, false, false),
        (false, true, false),
    ] {
        let mut config = engine::raft::Config::new(NodeId(1), peers(3), 7);
        config.step_down_resets_timer = step_down_resets;
        config.refused_vote_resets_timer = refused_resets;
        // A node with a log longer than the candidate's, so it refuses the vote.
        let entries = vec![noop(1, 1), noop(1, 2)];
        let hard = HardState {
            term: Term(1),
            voted_for: None,
            commit: Index(0),
        };
        let mut node = RawNode::new(config, hard, entries).expect("valid");
        for _ in 0..9 {
            node.tick();
        }
        let before = node.ticks_until_timeout();
        assert!(before < 10, "nine of at least ten ticks have passed");
        let vote = Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(5),
            kind: MessageKind::Vote {
                last_log_index: Index(1),
                last_log_term: Term(1),
                transfer: false,
            },
        };
        node.step(vote).expect("steps");
        assert_eq!(node.status().term, Term(5), "a higher term is adopted");
        assert_eq!(node.status().role, RoleKind::Follower);
        let after = node.ticks_until_timeout();
        if restarted {
            assert!(after >= 10, "etcd's rule restarts it: {after}");
        } else {
            assert_eq!(after, before, "the running timer is kept");
        }
    }
}

/// The case the default is for: a node whose log lost its unsynced tail campaigns again and
/// again without PreVote. The two up-to-date nodes refuse it each time, and one of them still
/// times out on its own timer and wins; with etcd-io/raft's rule each refused campaign restarts
/// their timers and the stale node can keep the cluster leaderless while it wins the race.
#[test]
fn a_stale_candidate_that_keeps_campaigning_does_not_stop_an_up_to_date_node_from_winning() {
    let build = |id: u64, log_len: u64| {
        let config = engine::raft::Config::new(NodeId(id), peers(3), 100 + id);
        let entries = (1..=log_len).map(|i| noop(1, i)).collect();
        let hard = HardState {
            term: Term(1),
            voted_for: None,
            commit: Index(0),
        };
        RawNode::new(config, hard, entries).expect("valid")
    };
    let mut up_to_date = build(2, 3);
    // The stale node campaigns every 10 ticks, before any timeout of the others could come
    // (they draw 10..20), in a new term each time.
    let mut term = 1;
    let mut ticks = 0;
    while up_to_date.status().role == RoleKind::Follower {
        ticks += 1;
        assert!(
            ticks <= 20,
            "an up-to-date node campaigns within its maximum timeout"
        );
        if ticks % 9 == 0 {
            term += 1;
            let vote = Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(term),
                kind: MessageKind::Vote {
                    last_log_index: Index(1),
                    last_log_term: Term(1),
                    transfer: false,
                },
            };
            up_to_date.step(vote).expect("steps");
            let msgs = drain(&mut up_to_date);
            assert!(
                msgs.iter()
                    .any(|m| m.kind == MessageKind::VoteResponse { granted: false }),
                "the stale candidate is refused"
            );
        }
        up_to_date.tick();
    }
    assert_eq!(up_to_date.status().role, RoleKind::Candidate);
    assert!(
        up_to_date.status().term > Term(term),
        "it campaigns past the stale terms"
    );
}

// --- Thesis §3.10: leadership transfer -----------------------------------------------------

/// `elected_network` with CheckQuorum and PreVote on, the setting in which a transfer's
/// election must get through the voters' lease.
fn elected_network_with_lease(n: u64) -> Network {
    let options = Options {
        check_quorum: true,
        pre_vote: true,
        ..Options::default()
    };
    let mut net = Network::new(n, &options);
    let mut out = String::new();
    net.campaign(NodeId(1), &mut out);
    net.stabilize(&net.ids(), &mut out);
    net.tick(NodeId(1), &mut out);
    net.stabilize(&net.ids(), &mut out);
    assert_eq!(
        net.raw(NodeId(1)).expect("up").status().role,
        RoleKind::Leader
    );
    net
}

#[test]
fn transfer_catches_the_target_up_then_it_wins_at_once_3_10() {
    let mut net = elected_network_with_lease(3);
    let mut out = String::new();
    let ids = net.ids();
    // Node 3 misses two commands.
    net.partition(vec![[NodeId(1), NodeId(2)].into(), [NodeId(3)].into()]);
    for data in [b"a", b"b"] {
        assert!(net.propose(NodeId(1), data, &mut out).expect("up").is_ok());
    }
    net.stabilize(&ids, &mut out);
    net.heal();
    let last = net.raw(NodeId(1)).expect("up").raft_log().last_index();
    assert!(net.raw(NodeId(3)).expect("up").raft_log().last_index() < last);
    let started = net.with_raw(NodeId(1), &mut out, |raw| raw.transfer_leader(NodeId(3)));
    assert_eq!(started, Some(Ok(())));
    // Thesis §3.10: no new command while the transfer runs.
    assert_eq!(
        net.propose(NodeId(1), b"c", &mut out),
        Some(Err(ProposeError::Transferring { target: NodeId(3) }))
    );
    // No tick passes: the target wins before anyone's timer could fire, through the lease.
    net.stabilize(&ids, &mut out);
    let new = net.raw(NodeId(3)).expect("up").status();
    assert_eq!(new.role, RoleKind::Leader, "{out}");
    assert_eq!(new.term, Term(2));
    assert!(
        new.last_index > last,
        "it holds every entry, then its no-op"
    );
    let old = net.raw(NodeId(1)).expect("up").status();
    assert_eq!(
        (old.role, old.leader),
        (RoleKind::Follower, Some(NodeId(3)))
    );
    assert_eq!(net.raw(NodeId(1)).expect("up").transfer_target(), None);
}

#[test]
fn transfer_is_refused_to_itself_to_strangers_and_by_followers_3_10() {
    use engine::raft::TransferError;
    let mut net = elected_network(3);
    let mut out = String::new();
    let on = |net: &mut Network, id: u64, target: u64, out: &mut String| {
        net.with_raw(NodeId(id), out, |raw| raw.transfer_leader(NodeId(target)))
            .expect("up")
    };
    assert_eq!(on(&mut net, 1, 1, &mut out), Err(TransferError::ToSelf));
    assert_eq!(
        on(&mut net, 1, 9, &mut out),
        Err(TransferError::NotMember(NodeId(9)))
    );
    assert_eq!(
        on(&mut net, 2, 3, &mut out),
        Err(TransferError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
    assert!(net.propose(NodeId(1), b"x", &mut out).expect("up").is_ok());
}

#[test]
fn transfer_gives_up_after_an_election_timeout_3_10() {
    let mut net = elected_network(3);
    let mut out = String::new();
    net.partition(vec![[NodeId(1), NodeId(2)].into(), [NodeId(3)].into()]);
    let started = net.with_raw(NodeId(1), &mut out, |raw| raw.transfer_leader(NodeId(3)));
    assert_eq!(started, Some(Ok(())));
    for _ in 0..9 {
        net.tick(NodeId(1), &mut out);
        net.stabilize(&[NodeId(1), NodeId(2)], &mut out);
    }
    assert!(net.propose(NodeId(1), b"x", &mut out).expect("up").is_err());
    net.tick(NodeId(1), &mut out);
    assert_eq!(net.raw(NodeId(1)).expect("up").transfer_target(), None);
    assert!(net.propose(NodeId(1), b"x", &mut out).expect("up").is_ok());
    assert_eq!(
        net.raw(NodeId(1)).expect("up").status().role,
        RoleKind::Leader
    );
}

#[test]
fn timeout_now_from_anyone_but_the_leader_is_refused_3_10() {
    let mut net = elected_network(3);
    let mut out = String::new();
    let forged = Message {
        from: NodeId(3),
        to: NodeId(2),
        term: Term(1),
        kind: MessageKind::TimeoutNow,
    };
    let stepped = net.with_raw(NodeId(2), &mut out, |raw| raw.step(forged));
    assert!(matches!(stepped, Some(Err(StepError::Malformed(_)))));
    let s = net.raw(NodeId(2)).expect("up").status();
    assert_eq!((s.role, s.term), (RoleKind::Follower, Term(1)));
}

#[test]
fn a_leader_that_steps_down_keeps_its_term_vote_and_log_and_another_is_elected() {
    let mut net = elected_network(3);
    let mut out = String::new();
    assert!(net.propose(NodeId(1), b"x", &mut out).expect("up").is_ok());
    net.stabilize(&net.ids(), &mut out);
    let before = net.raw(NodeId(1)).expect("up").status();
    let log = log_of(net.raw(NodeId(1)).expect("up"));
    let stepped = net.with_raw(NodeId(1), &mut out, |raw| raw.step_down());
    assert_eq!(stepped, Some(true));
    let after = net.raw(NodeId(1)).expect("up").status();
    assert_eq!(after.role, RoleKind::Follower);
    assert_eq!(after.leader, None, "it no longer names itself leader");
    assert_eq!(
        (after.term, after.voted_for),
        (before.term, before.voted_for)
    );
    assert_eq!(log_of(net.raw(NodeId(1)).expect("up")), log);
    assert_eq!(
        net.with_raw(NodeId(1), &mut out, |raw| raw.step_down()),
        Some(false),
        "a follower has nothing to step down from"
    );
    // It sends no more heartbeats, so another node times out and wins (Raft §5.2).
    net.campaign(NodeId(2), &mut out);
    net.stabilize(&net.ids(), &mut out);
    let s = net.raw(NodeId(2)).expect("up").status();
    assert_eq!(
        (s.role, s.term),
        (RoleKind::Leader, Term(before.term.0 + 1))
    );
    assert_eq!(
        log_of(net.raw(NodeId(2)).expect("up"))[..log.len()],
        log[..]
    );
}

#[test]
fn a_leader_ticks_and_steps_down_while_its_ready_is_being_persisted_and_counts_nothing_unsynced() {
    // The node loop keeps time while a log sync is pending: the core is ticked, and a leader
    // whose sync is too slow steps down, between `ready` and `advance`. What the pending Ready
    // holds is untouched, the leader's own entry counts towards a commit only after `advance`
    // (Raft §5.3: an entry is committed once stored on a majority), and what the ticks make
    // waits in the next Ready (Figure 2: respond only after updating stable storage).
    let mut net = elected_network(3);
    let mut out = String::new();
    net.stabilize(&net.ids(), &mut out);
    let before = net.raw(NodeId(1)).expect("up").status();
    let (ready, index) = net
        .with_raw(NodeId(1), &mut out, |raw| {
            let (index, _) = raw.propose(b"x".to_vec()).expect("leads");
            (raw.ready().expect("the new entry"), index)
        })
        .expect("up");
    assert_eq!(ready.entries.last().map(|e| e.index), Some(index));
    let heartbeat_ticks = net
        .raw(NodeId(1))
        .expect("up")
        .config()
        .heartbeat_interval_ticks;
    net.with_raw(NodeId(1), &mut out, |raw| {
        for _ in 0..heartbeat_ticks {
            raw.tick();
        }
        assert!(raw.has_ready(), "the heartbeats wait for the next Ready");
        assert!(raw.step_down(), "it was leading");
        raw.advance(ready);
    });
    let after = net.raw(NodeId(1)).expect("up").status();
    assert_eq!(after.role, RoleKind::Follower);
    assert_eq!(
        (after.term, after.voted_for),
        (before.term, before.voted_for)
    );
    assert!(
        after.commit < index,
        "a leader that gave way commits nothing on its own log"
    );
    assert_eq!(
        net.raw(NodeId(1)).expect("up").raft_log().stable(),
        index,
        "advance made the entry stable"
    );
}
