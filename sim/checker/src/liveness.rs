//! The liveness checker's view of the network: when must a leader exist?
//!
//! Plain Raft promises a leader only when some majority can talk both ways and nobody outside
//! it disturbs it (a node that can send into the majority but not hear from it keeps starting
//! elections with higher terms; PreVote and CheckQuorum exist for that case). So the condition
//! is a *quiet majority*: a set of running nodes, at least a majority, every pair linked in
//! both directions, and no running node outside the set able to send into it. The graph is
//! the live network (one-way cuts included); the set is found inside one strongly connected
//! component of it.

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

/// The network as the checker sees it at one instant.
pub struct Links<'a> {
    /// Cluster size; nodes are `1..=n`.
    pub n: usize,
    /// Which nodes run (not crashed, not paused), by slot.
    pub running: &'a [bool],
    /// True if the one-way link `from -> to` (node ids) is cut.
    pub cut: &'a dyn Fn(u64, u64) -> bool,
}

/// The largest quiet majority (node ids, ascending), if there is one.
pub fn quiet_majority(links: &Links<'_>) -> Option<Vec<u64>> {
    let mut graph: DiGraphMap<u64, ()> = DiGraphMap::new();
    let running = |id: u64| links.running[id as usize - 1];
    for a in (1..=links.n as u64).filter(|&a| running(a)) {
        graph.add_node(a);
        for b in (1..=links.n as u64).filter(|&b| b != a && running(b)) {
            if !(links.cut)(a, b) {
                graph.add_edge(a, b, ());
            }
        }
    }
    let majority = links.n / 2 + 1;
    let mut best: Option<Vec<u64>> = None;
    for mut component in tarjan_scc(&graph) {
        if component.len() < majority {
            continue;
        }
        component.sort_unstable();
        if let Some(set) = largest_quiet_clique(&graph, &component, majority)
            && best.as_ref().is_none_or(|b| set.len() > b.len())
        {
            best = Some(set);
        }
    }
    best
}

/// Brute force over the component's subsets (clusters have at most a handful of nodes).
fn largest_quiet_clique(
    graph: &DiGraphMap<u64, ()>,
    component: &[u64],
    majority: usize,
) -> Option<Vec<u64>> {
    let k = component.len().min(16);
    let mut best: Option<Vec<u64>> = None;
    for mask in 1u32..(1 << k) {
        if (mask.count_ones() as usize) < majority.max(best.as_ref().map_or(0, |b| b.len() + 1)) {
            continue;
        }
        let set: Vec<u64> = (0..k)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| component[i])
            .collect();
        let clique = set
            .iter()
            .all(|&a| set.iter().all(|&b| a == b || graph.contains_edge(a, b)));
        let quiet = graph
            .nodes()
            .filter(|n| !set.contains(n))
            .all(|out| set.iter().all(|&m| !graph.contains_edge(out, m)));
        if clique && quiet {
            best = Some(set);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(n: usize, running: &[bool], cuts: &[(u64, u64)]) -> Option<Vec<u64>> {
        let cut = |a: u64, b: u64| cuts.contains(&(a, b));
        quiet_majority(&Links {
            n,
            running,
            cut: &cut,
        })
    }

    #[test]
    fn a_healthy_cluster_is_one_quiet_majority() {
        assert_eq!(quiet(3, &[true; 3], &[]), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_symmetric_minority_cut_leaves_the_majority_quiet() {
        let cuts = [
            (1, 2),
            (2, 1),
            (1, 3),
            (3, 1),
            (1, 4),
            (4, 1),
            (1, 5),
            (5, 1),
        ];
        assert_eq!(quiet(5, &[true; 5], &cuts), Some(vec![2, 3, 4, 5]));
    }

    #[test]
    fn a_node_that_can_only_send_disturbs_the_majority() {
        // Node 1 hears nobody but everybody hears it: it keeps raising terms.
        let cuts = [(2, 1), (3, 1)];
        assert_eq!(quiet(3, &[true; 3], &cuts), None);
    }

    #[test]
    fn crashed_nodes_do_not_count_and_do_not_disturb() {
        assert_eq!(quiet(3, &[true, false, true], &[]), Some(vec![1, 3]));
        assert_eq!(quiet(3, &[true, false, false], &[]), None);
    }

    #[test]
    fn a_majority_ring_has_no_quiet_majority() {
        // 5 nodes, each linked only to its ring neighbours.
        let mut cuts = Vec::new();
        for a in 1..=5u64 {
            for b in 1..=5u64 {
                let d = (a + 5 - b) % 5;
                if a != b && d != 1 && d != 4 {
                    cuts.push((a, b));
                }
            }
        }
        assert_eq!(quiet(5, &[true; 5], &cuts), None);
    }
}
