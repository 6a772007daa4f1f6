//! Interaction tests: the text scripts in `engine/testdata/*.txt`, run through the `datadriven`
//! crate over the in-memory network of `tests/common`, after etcd's `raft/rafttest` interaction
//! tests (github.com/etcd-io/raft, `rafttest/interaction_env*.go`).
//!
//! `REWRITE=1 cargo test -p engine --test interaction` regenerates every expected output in
//! place. Read the diff before committing it: commit only rewrites whose cause you can explain.
//! `RUN=campaign.txt cargo test -p engine --test interaction` runs one script.
//!
//! Commands (node ids are bare numbers; every other argument is named):
//! - `add-nodes N [seed=S] [election=E] [heartbeat=H] [max-entries=M] [pre-vote=true]
//!   [check-quorum=true] [bug=commit-old-term]`: starts nodes `1..=N` with empty disks. Node
//!   `i` seeds its RNG with `S + i`; the election timeout is drawn from `[E, 2E)` ticks
//!   (default 10); `max-entries` caps the entries of one AppendEntries; `pre-vote` and
//!   `check-quorum` set `Config::pre_vote` and `Config::check_quorum`; `bug=commit-old-term`
//!   plants the Figure 8 bug (`Bugs::commit_old_term`).
//! - `campaign ID`: the node starts an election now.
//! - `tick ID... [n=N]`, `tick-all [n=N]`: `N` ticks (default 1) of logical time.
//! - `propose ID [data=X]`: proposes `X`, or each line of the input; prints `index/term` or the
//!   error.
//! - `read-index ID ctx=N`: asks for a linearizable read index (thesis §6.4); the answer shows
//!   up as a `ReadState` line in a later `Ready`.
//! - `process-ready ID...`: prints each node's `Ready`, then persists, sends, applies, advances.
//! - `deliver-msgs ID... [drop=(FROM,..)]`: steps every message queued for the nodes, in order;
//!   those from the `drop` senders are lost instead.
//! - `drop-msgs [ID...] [from=(FROM,..)]`: loses messages queued for the nodes (default: all).
//! - `stabilize [ID...]`: process-ready and deliver-msgs among the nodes (default: all) until
//!   nothing moves.
//! - `partition g1=(..) g2=(..) [g3=(..)]`, `heal`: messages between groups are dropped at
//!   delivery (the `datadriven` parser cannot read etcd's `(1)(2,3)` form).
//! - `crash ID`: the node loses its memory (core, unpersisted state, state machine); its disk
//!   stays. `restart ID`: crashes it if it runs, then starts it from its disk.
//! - `status [ID...]`, `raft-log ID`, `applied ID`: print state.
//!
//! Every line is `Display` text from `engine/src/raft/describe.rs`. A node whose role, term or
//! leader changes prints a `status:` line. After every command the safety checker of
//! `tests/common` runs; a violation prints `SAFETY VIOLATION: ..` (scripts with a planted bug
//! show it).

// NB: `datadriven::TestCase::args` is a `HashMap` (the crate's API). We only look keys up in
// it (and remove them), never iterate it, so nothing here depends on its order.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write;

use common::{Network, Options};
use datadriven::TestCase;
use engine::raft::{Bugs, NodeId};

/// The largest node id a script may name.
const NODE_ID_MAX: u64 = 32;

/// Fewest scripts `testdata/` must hold: a walk that finds none (a moved folder, a renamed
/// extension) would otherwise pass having checked nothing.
const SCRIPTS_MIN: usize = 13;

#[test]
fn interaction() {
    let mut scripts = 0;
    datadriven::walk("testdata", |file| {
        scripts += 1;
        let mut net: Option<Network> = None;
        let mut violations_seen = 0;
        file.run(|tc| -> Result<String, String> {
            let mut out = run_command(&mut net, tc)?;
            tc.expect_empty().map_err(|e| e.to_string())?;
            if let Some(net) = net.as_mut() {
                net.check_all();
                for v in &net.checker.violations[violations_seen..] {
                    let _ = writeln!(out, "SAFETY VIOLATION: {v}");
                }
                violations_seen = net.checker.violations.len();
            }
            if out.is_empty() {
                out.push_str("ok\n");
            }
            Ok(out)
        });
    });
    assert!(
        scripts >= SCRIPTS_MIN,
        "ran {scripts} scripts from testdata/, expected at least {SCRIPTS_MIN}"
    );
}

fn run_command(net: &mut Option<Network>, tc: &mut TestCase) -> Result<String, String> {
    if tc.directive == "add-nodes" {
        return add_nodes(net, tc);
    }
    let net = net.as_mut().ok_or("add-nodes must come first")?;
    let mut out = String::new();
    match tc.directive.as_str() {
        "campaign" => net.campaign(one_id(tc)?, &mut out),
        "tick" => {
            let (ids, n) = (ids(tc)?, ticks(tc)?);
            tick(net, &ids, n, &mut out);
        }
        "tick-all" => {
            let n = ticks(tc)?;
            tick(net, &net.ids(), n, &mut out);
        }
        "propose" => propose(net, tc, &mut out)?,
        "read-index" => {
            let id = one_id(tc)?;
            let ctx = arg_u64(tc, "ctx")?.ok_or("read-index needs ctx=N")?;
            match net.with_raw(id, &mut out, |raw| raw.read_index(ctx)) {
                None => writeln!(out, "{id} is down"),
                Some(Ok(())) => writeln!(out, "read {ctx} asked at {id}"),
                Some(Err(e)) => writeln!(out, "read {ctx}: {e}"),
            }
            .map_err(|e| e.to_string())?;
        }
        "process-ready" => {
            for id in ids(tc)? {
                net.process_ready(id, &mut out);
            }
        }
        "deliver-msgs" => {
            let drop = id_set(tc, "drop")?.unwrap_or_default();
            for id in ids(tc)? {
                net.deliver(id, &drop, &mut out);
            }
        }
        "drop-msgs" => {
            let from = id_set(tc, "from")?;
            for id in ids_or_all(net, tc)? {
                net.drop_msgs(id, from.as_ref(), &mut out);
            }
        }
        "stabilize" => {
            let ids = ids_or_all(net, tc)?;
            net.stabilize(&ids, &mut out);
        }
        "partition" => partition(net, tc)?,
        "heal" => net.heal(),
        "crash" => net.crash(one_id(tc)?),
        "restart" => restart(net, one_id(tc)?, &mut out),
        _ => inspect(net, tc, &mut out)?,
    }
    Ok(out)
}

/// The read-only commands.
fn inspect(net: &Network, tc: &mut TestCase, out: &mut String) -> Result<(), String> {
    match tc.directive.as_str() {
        "status" => {
            for id in ids_or_all(net, tc)? {
                match net.raw(id) {
                    Some(raw) => writeln!(out, "{}", raw.status()),
                    None => writeln!(out, "{id} is down"),
                }
                .map_err(|e| e.to_string())?;
            }
        }
        "raft-log" => {
            let node = net.node(one_id(tc)?);
            if node.raw.is_none() {
                let _ = writeln!(out, "(down; on disk)");
            }
            let log = node.log();
            if log.is_empty() {
                let _ = writeln!(out, "log is empty");
            }
            for e in log {
                let _ = writeln!(out, "{e}");
            }
        }
        "applied" => {
            let node = net.node(one_id(tc)?);
            if node.applied.is_empty() {
                let _ = writeln!(out, "nothing applied");
            }
            for e in &node.applied {
                let _ = writeln!(out, "{e}");
            }
        }
        other => return Err(format!("unknown command {other}")),
    }
    Ok(())
}

fn add_nodes(net: &mut Option<Network>, tc: &mut TestCase) -> Result<String, String> {
    if net.is_some() {
        return Err("add-nodes may run once per script".into());
    }
    let n = one_id(tc)?.0;
    let mut options = Options::default();
    if let Some(seed) = arg_u64(tc, "seed")? {
        options.seed = seed;
    }
    if let Some(election) = arg_u64(tc, "election")? {
        options.election_ticks = election;
    }
    if let Some(heartbeat) = arg_u64(tc, "heartbeat")? {
        options.heartbeat_ticks = heartbeat;
    }
    if let Some(max) = arg_u64(tc, "max-entries")? {
        options.msg_entries_max = usize::try_from(max).map_err(|e| e.to_string())?;
    }
    if let Some(on) = tc.try_take_arg("pre-vote").map_err(|e| e.to_string())? {
        options.pre_vote = on;
    }
    if let Some(on) = tc.try_take_arg("check-quorum").map_err(|e| e.to_string())? {
        options.check_quorum = on;
    }
    let bug: Option<String> = tc.try_take_arg("bug").map_err(|e| e.to_string())?;
    match bug.as_deref() {
        None => {}
        Some("commit-old-term") => {
            options.bugs = Bugs {
                commit_old_term: true,
                ..Bugs::default()
            }
        }
        Some("stale-read") => {
            options.bugs = Bugs {
                stale_read: true,
                ..Bugs::default()
            }
        }
        Some(other) => return Err(format!("unknown bug {other}")),
    }
    let network = net.insert(Network::new(n, &options));
    let mut out = String::new();
    for id in network.ids() {
        let status = network.raw(id).expect("fresh nodes run").status();
        let _ = writeln!(out, "{status}");
    }
    Ok(out)
}

fn tick(net: &mut Network, ids: &[NodeId], n: u64, out: &mut String) {
    for _ in 0..n {
        for &id in ids {
            net.tick(id, out);
        }
    }
}

fn propose(net: &mut Network, tc: &mut TestCase, out: &mut String) -> Result<(), String> {
    let id = one_id(tc)?;
    let data: Option<String> = tc.try_take_arg("data").map_err(|e| e.to_string())?;
    let lines: Vec<String> = match data {
        Some(d) => vec![d],
        None => tc.input.lines().map(str::to_owned).collect(),
    };
    if lines.is_empty() {
        return Err("propose needs data=X or input lines".into());
    }
    for line in lines {
        match net.propose(id, line.as_bytes(), out) {
            None => writeln!(out, "{id} is down"),
            Some(Ok((index, term))) => writeln!(out, "{line}: proposed at {term}/{index}"),
            Some(Err(e)) => writeln!(out, "{line}: {e}"),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn partition(net: &mut Network, tc: &mut TestCase) -> Result<(), String> {
    let mut groups = Vec::new();
    for g in 1..=NODE_ID_MAX {
        if let Some(group) = id_set(tc, &format!("g{g}"))? {
            groups.push(group);
        }
    }
    if groups.len() < 2 {
        return Err("partition needs at least g1=(..) and g2=(..)".into());
    }
    net.partition(groups);
    Ok(())
}

fn restart(net: &mut Network, id: NodeId, out: &mut String) {
    net.restart(id);
    let status = net.raw(id).expect("restarted").status();
    let _ = writeln!(out, "  status: {status}");
}

// --- Argument parsing: keys are looked up (and removed), never iterated. ---------------------

/// The bare numbers among the arguments, ascending.
fn ids(tc: &mut TestCase) -> Result<Vec<NodeId>, String> {
    let mut found = Vec::new();
    for id in 1..=NODE_ID_MAX {
        if let Some(values) = tc.args.remove(&id.to_string()) {
            if !values.is_empty() {
                return Err(format!("node id {id} takes no value"));
            }
            found.push(NodeId(id));
        }
    }
    if found.is_empty() {
        return Err(format!("{} needs a node id", tc.directive));
    }
    Ok(found)
}

fn ids_or_all(net: &Network, tc: &mut TestCase) -> Result<Vec<NodeId>, String> {
    let any = (1..=NODE_ID_MAX).any(|id| tc.args.contains_key(&id.to_string()));
    if any { ids(tc) } else { Ok(net.ids()) }
}

fn one_id(tc: &mut TestCase) -> Result<NodeId, String> {
    match ids(tc)?.as_slice() {
        [id] => Ok(*id),
        more => Err(format!("{} takes one node id, got {more:?}", tc.directive)),
    }
}

fn arg_u64(tc: &mut TestCase, name: &str) -> Result<Option<u64>, String> {
    tc.try_take_arg(name).map_err(|e| e.to_string())
}

fn ticks(tc: &mut TestCase) -> Result<u64, String> {
    Ok(arg_u64(tc, "n")?.unwrap_or(1))
}

fn id_set(tc: &mut TestCase, name: &str) -> Result<Option<BTreeSet<NodeId>>, String> {
    let ids: Option<Vec<u64>> = tc.try_take_args(name).map_err(|e| e.to_string())?;
    Ok(ids.map(|ids| ids.into_iter().map(NodeId).collect()))
}
