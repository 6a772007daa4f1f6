//! An in-process network for node loops under tokio (`snapshot_stall.rs`, `sync_stall.rs`):
//! one unbounded queue per node, and an optional switch that cuts one node off.

// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::net::SystemClock;
use engine::raft::Message;
use engine::server::{Clock, Network};
use futures::StreamExt;
use futures::channel::mpsc;

pub struct MemNet {
    peers: Arc<Vec<mpsc::UnboundedSender<Message>>>,
    inbound: mpsc::UnboundedReceiver<Message>,
    /// While the switch is on, nothing goes to or from this node id.
    cut: Option<(Arc<AtomicBool>, u64)>,
    clock: SystemClock,
}

/// The networks of nodes 1..=n, in id order.
pub fn mem_nets(n: usize, clock: SystemClock) -> Vec<MemNet> {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded()).unzip();
    let senders = Arc::new(senders);
    receivers
        .into_iter()
        .map(|inbound| MemNet {
            peers: senders.clone(),
            inbound,
            cut: None,
            clock,
        })
        .collect()
}

impl MemNet {
    /// Cuts node `id` off (both ways) while `switch` is on.
    pub fn with_cut(mut self, switch: Arc<AtomicBool>, id: u64) -> MemNet {
        self.cut = Some((switch, id));
        self
    }
}

impl Network for MemNet {
    fn send(&mut self, msg: Message) {
        if let Some((switch, id)) = &self.cut
            && switch.load(Ordering::Relaxed)
            && (msg.to.0 == *id || msg.from.0 == *id)
        {
            return;
        }
        let _ = self.peers[msg.to.0 as usize - 1].unbounded_send(msg);
    }

    async fn recv_until(&mut self, deadline_ms: u64) -> Option<Message> {
        let sleep = self.clock.sleep_until(deadline_ms);
        tokio::select! {
            biased;
            msg = self.inbound.next() => msg,
            () = sleep => None,
        }
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.inbound.try_recv().ok()
    }
}
