//! One canonical text rendering of messages, entries and readies, shared by logs, golden files
//! and failure reports.

use std::fmt;

use super::raw_node::{Ready, RoleKind, Status};
use super::types::{Entry, EntryKind, HardState, Message, MessageKind, Term};

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EntryKind::Noop => write!(f, "{}/{} noop", self.term, self.index),
            EntryKind::Config(m) => write!(f, "{}/{} config {m}", self.term, self.index),
            EntryKind::Command(data) => {
                write!(
                    f,
                    "{}/{} {}",
                    self.term,
                    self.index,
                    String::from_utf8_lossy(data)
                )
            }
            EntryKind::Forwarded { origin, tag, data } => {
                write!(
                    f,
                    "{}/{} from {origin}#{tag} {}",
                    self.term,
                    self.index,
                    String::from_utf8_lossy(data)
                )
            }
        }
    }
}

/// Writes `[a, b, c]`.
fn write_list<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
) -> fmt::Result {
    write!(f, "[")?;
    for (i, item) in items.enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}{item}")?;
    }
    write!(f, "]")
}

impl fmt::Display for HardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vote = self.voted_for.map_or(0, |v| v.0);
        write!(f, "Term:{} Vote:{} Commit:{}", self.term, vote, self.commit)
    }
}

/// InstallSnapshot chunks and their answers.
fn write_snapshot_message(
    f: &mut fmt::Formatter<'_>,
    msg_term: Term,
    kind: &MessageKind,
) -> fmt::Result {
    match kind {
        MessageKind::Snapshot {
            index,
            term,
            offset,
            total,
            data,
            done,
            membership,
        } => write!(
            f,
            "MsgSnap Term:{msg_term} Index:{index} LogTerm:{term} Offset:{offset} Bytes:{} \
             Total:{total} Done:{done} {membership}",
            data.len()
        ),
        MessageKind::SnapshotResponse { index, offset } => {
            write!(
                f,
                "MsgSnapResp Term:{msg_term} Index:{index} Offset:{offset}"
            )
        }
        _ => Ok(()),
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} ", self.from, self.to)?;
        match &self.kind {
            MessageKind::Vote {
                last_log_index,
                last_log_term,
                transfer,
            } => {
                let transfer = if *transfer { " Transfer" } else { "" };
                write!(
                    f,
                    "MsgVote Term:{} Log:{last_log_term}/{last_log_index}{transfer}",
                    self.term
                )
            }
            MessageKind::PreVote {
                last_log_index,
                last_log_term,
            } => {
                write!(
                    f,
                    "MsgPreVote Term:{} Log:{last_log_term}/{last_log_index}",
                    self.term
                )
            }
            MessageKind::VoteResponse { granted } => {
                let rej = if *granted { "" } else { " Rejected" };
                write!(f, "MsgVoteResp Term:{}{rej}", self.term)
            }
            MessageKind::PreVoteResponse { granted } => {
                let rej = if *granted { "" } else { " Rejected" };
                write!(f, "MsgPreVoteResp Term:{}{rej}", self.term)
            }
            MessageKind::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_seq,
            } => {
                write!(
                    f,
                    "MsgApp Term:{} Log:{prev_log_term}/{prev_log_index} Commit:{leader_commit}",
                    self.term
                )?;
                if *read_seq > 0 {
                    write!(f, " Read:{read_seq}")?;
                }
                if !entries.is_empty() {
                    write!(f, " Entries:")?;
                    write_list(f, entries.iter())?;
                }
                Ok(())
            }
            MessageKind::AppendResponse {
                success,
                match_index,
                hint,
                read_seq,
            } => {
                write!(f, "MsgAppResp Term:{}", self.term)?;
                if *read_seq > 0 {
                    write!(f, " Read:{read_seq}")?;
                }
                if *success {
                    return write!(f, " Match:{match_index}");
                }
                match hint {
                    None => write!(f, " Rejected"),
                    Some(h) => {
                        let ct = h.conflict_term.map_or(0, |t| t.0);
                        write!(f, " Rejected:{} Hint:{ct}/{}", h.rejected, h.conflict_index)
                    }
                }
            }
            MessageKind::Snapshot { .. } | MessageKind::SnapshotResponse { .. } => {
                write_snapshot_message(f, self.term, &self.kind)
            }
            MessageKind::Propose { proposals } => {
                write!(f, "MsgProp Term:{} Tags:", self.term)?;
                write_list(f, proposals.iter().map(|p| p.tag))
            }
            MessageKind::ReadIndex { ctx } => {
                write!(f, "MsgReadIndex Term:{} Ctx:{ctx}", self.term)
            }
            MessageKind::ReadIndexResponse { ctx, index } => {
                write!(
                    f,
                    "MsgReadIndexResp Term:{} Ctx:{ctx} Index:{index}",
                    self.term
                )
            }
            MessageKind::TimeoutNow => write!(f, "MsgTimeoutNow Term:{}", self.term),
        }
    }
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RoleKind::Follower => "follower",
            RoleKind::PreCandidate => "pre-candidate",
            RoleKind::Candidate => "candidate",
            RoleKind::Leader => "leader",
        };
        f.write_str(name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lead = self.leader.map_or(0, |l| l.0);
        let vote = self.voted_for.map_or(0, |v| v.0);
        write!(
            f,
            "{} {} Term:{} Vote:{vote} Lead:{lead} Log:{}/{} Commit:{} Applied:{}",
            self.id,
            self.role,
            self.term,
            self.last_term,
            self.last_index,
            self.commit,
            self.applied
        )
    }
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(hs) = &self.hard_state {
            writeln!(f, "HardState {hs}")?;
        }
        if !self.entries.is_empty() {
            writeln!(f, "Entries:")?;
            for e in &self.entries {
                writeln!(f, "  {e}")?;
            }
        }
        if !self.committed_entries.is_empty() {
            writeln!(f, "CommittedEntries:")?;
            for e in &self.committed_entries {
                writeln!(f, "  {e}")?;
            }
        }
        for rs in &self.read_states {
            writeln!(f, "ReadState Ctx:{} Index:{}", rs.ctx, rs.index)?;
        }
        if !self.messages.is_empty() {
            writeln!(f, "Messages:")?;
            for m in &self.messages {
                writeln!(f, "  {m}")?;
            }
        }
        Ok(())
    }
}
