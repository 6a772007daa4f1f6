//! Linearizable reads by ReadIndex (Raft thesis §6.4): the leader confirms it still leads with
//! one heartbeat round before it hands out its commit index.

use super::{RawNode, Role};
use crate::raft::read_only::ReadRequest;
use crate::raft::types::{MessageKind, NodeId, ProposeError, ReadState};

impl RawNode {
    pub(super) fn handle_read_index(&mut self, from: NodeId, ctx: u64) {
        if matches!(self.role, Role::Leader { .. }) {
            // The follower asks this node as its leader of this term: it is active.
            self.progress_mut(from).recent_active = true;
            // A full queue drops the request; the follower's client times out.
            let _ = self.register_read(ReadRequest { from, ctx });
        }
    }

    pub(super) fn register_read(&mut self, request: ReadRequest) -> Result<(), ProposeError> {
        let commit = self.log.commit();
        if planted!(self.config.bugs.stale_read) {
            let ReadRequest { from, ctx } = request;
            let index = commit;
            if from == self.config.id {
                self.read_states.push(ReadState { ctx, index });
            } else {
                self.send(from, MessageKind::ReadIndexResponse { ctx, index });
            }
            return Ok(());
        }
        let own_term_committed = self.log.term(commit) == Some(self.term);
        let ok = if own_term_committed || planted!(self.config.bugs.read_index_early) {
            self.reads.register(request, commit)
        } else {
            self.reads.wait(request)
        };
        if !ok {
            return Err(ProposeError::Dropped);
        }
        if self.reads.has_pending() {
            self.start_read_round();
        }
        Ok(())
    }

    /// One round of empty AppendEntries at each follower's match index (which always succeeds)
    /// carrying the newest read sequence; a single-node cluster confirms at once.
    pub(super) fn start_read_round(&mut self) {
        let peers = self.take_followers();
        for &peer in &peers {
            let at = self.probe_point(peer);
            self.send_append_from(peer, at, at);
        }
        self.give_back_followers(peers);
        self.confirm_reads();
    }

    /// Hands out every read that a majority has confirmed.
    pub(super) fn confirm_reads(&mut self) {
        let Role::Leader { progress } = &self.role else {
            return;
        };
        let me = self.config.id;
        let membership = self.configs.latest();
        let mut confirmed = Vec::new();
        // Thesis §6.4 with §4.3: a quorum of each half of the configuration confirmed it.
        while let Some(read) = self.reads.pop_confirmed(|seq| {
            membership
                .has_quorum(|id| id == me || progress.get(&id).is_some_and(|p| p.read_ack >= seq))
        }) {
            confirmed.push(read);
        }
        for read in confirmed {
            let ReadRequest { from, ctx } = read.request;
            if from == self.config.id {
                self.read_states.push(ReadState {
                    ctx,
                    index: read.index,
                });
            } else {
                self.send(
                    from,
                    MessageKind::ReadIndexResponse {
                        ctx,
                        index: read.index,
                    },
                );
            }
        }
    }
}
