//! The etcd v2 store under the simulated cluster: the workload reaches every kind of operation,
//! TTL keys expire through the leader's expire command, and watches fire.

use std::collections::BTreeSet;

use sim::check::history::Ret;
use sim::options::{Overrides, SimConfig};
use sim::run::run_isolated;
use sim::workload::OpKind;

#[test]
fn store_workload_reaches_every_operation_and_ttl_expiry() {
    let mut kinds_ok = BTreeSet::new();
    let mut expired_seen = 0;
    let mut watch_fired = 0;
    // At least 20 seeds, then on until a watch saw a TTL expiry (a rare event: a TTL key is
    // usually overwritten before its TTL runs out; about one seed in ten shows one), at most 100.
    for seed in 1..=100 {
        if seed > 20 && expired_seen > 0 {
            break;
        }
        let overrides = Overrides {
            nodes: None,
            duration_ms: Some(8_000),
            bug: None,
            settings: None,
            reconfigure: false,
        };
        let report = run_isolated(SimConfig::swarm(seed, overrides)).expect("no panic");
        assert!(report.ok, "seed {seed}: {:?}", report.violation);
        for record in &report.history.ops {
            if let Ret::Listing { .. } = &record.op.ret {
                kinds_ok.insert(record.kind);
            }
            if let Ret::Ok { action, .. } = &record.op.ret {
                kinds_ok.insert(record.kind);
                if action == "expire" {
                    expired_seen += 1;
                }
                if record.kind == OpKind::Watch {
                    watch_fired += 1;
                }
            }
        }
    }
    for kind in OpKind::ALL {
        assert!(kinds_ok.contains(&kind), "{kind:?} never succeeded");
    }
    assert!(
        expired_seen > 0,
        "no watch saw a TTL key expire in 100 seeds"
    );
    assert!(watch_fired > 10, "watches fired {watch_fired} times");
}
