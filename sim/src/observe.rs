//! The engine's observations, converted into the checker crate's plain types. The checkers never
//! see the engine's code; this module is the one place that knows both.

use checker::raft as plain;
use checker::replica::{self, Input};
use checker::watch::CommittedEvent;
use engine::raft::{
    Entry, EntryKind, HardState, Index, Message, MessageKind, NodeId, RawNode, RoleKind, Term,
};

use crate::trace::hash_bytes;

/// A node id.
pub fn node(id: NodeId) -> plain::NodeId {
    plain::NodeId(id.0)
}

/// A term.
pub fn term(term: Term) -> plain::Term {
    plain::Term(term.0)
}

/// An index.
pub fn index(index: Index) -> plain::Index {
    plain::Index(index.0)
}

/// An entry: its place and a fingerprint of its command bytes (a no-op has none).
pub fn entry(entry: &Entry) -> plain::Entry {
    plain::Entry {
        index: index(entry.index),
        term: term(entry.term),
        fingerprint: fingerprint(entry),
    }
}

/// The hash of what an entry carries: its command, or its configuration's encoding (a
/// configuration has no command bytes, and two different ones must not look alike).
fn fingerprint(entry: &Entry) -> u64 {
    match &entry.kind {
        EntryKind::Config(m) => {
            let mut bytes = b"config".to_vec();
            m.encode(&mut bytes);
            hash_bytes(&bytes)
        }
        _ => hash_bytes(entry.data()),
    }
}

/// Entries.
pub fn entries(entries: &[Entry]) -> Vec<plain::Entry> {
    entries.iter().map(entry).collect()
}

/// A hard state.
pub fn hard_state(hs: &HardState) -> plain::HardState {
    plain::HardState {
        term: term(hs.term),
        voted_for: hs.voted_for.map(node),
        commit: index(hs.commit),
    }
}

/// A message, reduced to what it promises about its sender's disk.
pub fn message(msg: &Message) -> plain::Message {
    let promise = match msg.kind {
        MessageKind::VoteResponse { granted: true } => plain::Promise::VoteGranted,
        MessageKind::AppendResponse {
            success: true,
            match_index,
            ..
        } => plain::Promise::Appended {
            match_index: index(match_index),
        },
        _ => plain::Promise::Nothing,
    };
    plain::Message {
        from: node(msg.from),
        to: node(msg.to),
        term: term(msg.term),
        promise,
    }
}

/// What a restart recovered.
pub fn recovered(recovered: &engine::log::Recovered) -> plain::Recovered {
    plain::Recovered {
        hard_state: hard_state(&recovered.hard_state),
        log_start: index(recovered.log_start.0),
        snapshot: recovered.snapshot.as_ref().map(|s| index(s.index)),
        entries: entries(&recovered.entries),
        damaged: recovered.damage.is_some(),
    }
}

/// A role.
pub fn role(role: RoleKind) -> plain::Role {
    match role {
        RoleKind::Follower => plain::Role::Follower,
        RoleKind::PreCandidate => plain::Role::PreCandidate,
        RoleKind::Candidate => plain::Role::Candidate,
        RoleKind::Leader => plain::Role::Leader,
    }
}

/// A node's visible state after a step, from its status `s` (read once per step).
pub fn status_of(raw: &RawNode, s: &engine::raft::Status) -> plain::Status {
    plain::Status {
        id: node(s.id),
        term: term(s.term),
        voted_for: s.voted_for.map(node),
        commit: index(s.commit),
        applied: index(s.applied),
        role: role(s.role),
        commit_term: raw.raft_log().term(s.commit).map(term),
    }
}

/// A committed entry as the checker's replica reads it: a no-op, a store command, or a payload
/// that does not decode (which a correct node answers with error 300).
pub fn input(entry: &Entry) -> Input {
    match &entry.kind {
        // A configuration changes nothing in the store.
        EntryKind::Noop | EntryKind::Config(_) => Input::Noop,
        EntryKind::Command(data) | EntryKind::Forwarded { data, .. } => {
            match engine::store::Command::decode(data) {
                Ok(command) => Input::Command(self::command(command)),
                Err(_) => Input::Garbage,
            }
        }
    }
}

/// A store command, field for field.
pub fn command(command: engine::store::Command) -> replica::Command {
    use engine::store::Command as C;
    use replica::Command as P;
    match command {
        C::Set {
            key,
            dir,
            value,
            expire_at_ms,
            refresh,
        } => P::Set {
            key,
            dir,
            value,
            expire_at_ms,
            refresh,
        },
        C::Create {
            key,
            dir,
            value,
            expire_at_ms,
        } => P::Create {
            key,
            dir,
            value,
            expire_at_ms,
        },
        C::CreateInOrder {
            dir_key,
            dir,
            value,
            expire_at_ms,
        } => P::CreateInOrder {
            dir_key,
            dir,
            value,
            expire_at_ms,
        },
        C::Update {
            key,
            value,
            expire_at_ms,
            refresh,
        } => P::Update {
            key,
            value,
            expire_at_ms,
            refresh,
        },
        C::CompareAndSwap {
            key,
            value,
            prev_value,
            prev_index,
            expire_at_ms,
            refresh,
        } => P::Cas {
            key,
            value,
            prev_value,
            prev_index,
            expire_at_ms,
            refresh,
        },
        C::Delete {
            key,
            dir,
            recursive,
        } => P::Delete {
            key,
            dir,
            recursive,
        },
        C::CompareAndDelete {
            key,
            prev_value,
            prev_index,
        } => P::Cad {
            key,
            prev_value,
            prev_index,
        },
        C::Expire { now_ms } => P::Expire { now_ms },
    }
}

/// An event a node answered, as the watch checker reads it (first applied at `at_us`).
pub fn event(at_us: u64, event: &engine::store::Event) -> CommittedEvent {
    CommittedEvent {
        at_us,
        index: event.index,
        action: event.action.as_str().into(),
        key: event.node.key.clone(),
        dir: event.node.dir,
        refresh: event.refresh,
    }
}
