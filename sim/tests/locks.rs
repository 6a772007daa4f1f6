//! Locks on a simulated 3-node cluster: the 0.x lock and leader modules (etcd 0.4's `mod/lock` API, as engine/src/store/README.md describes it), and
//! the seed's own lock recipe as a plain sequence of store operations.

use std::sync::{Arc, Mutex};

use engine::server::lock::{self, Contender, LockError};
use engine::server::{KvClient, KvError, KvRouter, KvWatch};
use engine::store::{Command, ErrorCode};
use sim::cluster::Cluster;
use sim::options::SimConfig;
use sim::run::with_cluster;
use sim::world::SimClock;

fn config(seed: u64) -> SimConfig {
    let mut config = SimConfig::bench(seed, 60_000);
    config.nodes = 3;
    config
}

async fn client(cluster: &Cluster, node: usize) -> KvClient {
    loop {
        if let Some(c) = cluster.shared().clients[node].clone() {
            return c;
        }
        cluster.clock.sleep_ms(10).await;
    }
}

/// A cluster client that starts at `node` and follows leader hints.
async fn router(cluster: &Cluster, node: usize) -> KvRouter<SimClock> {
    let mut clients = Vec::new();
    for i in 0..cluster.size() {
        clients.push(client(cluster, i).await);
    }
    KvRouter::new(clients, node, cluster.clock.clone())
}

/// Waits for a leader, so the first operations do not race the first election.
async fn settle(cluster: &Cluster) {
    while cluster.leader().is_none() {
        cluster.clock.sleep_ms(10).await;
    }
}

/// Holding intervals (start, end, fencing index) of every holder.
type Intervals = Arc<Mutex<Vec<(u64, u64, u64)>>>;

fn assert_exclusive(intervals: &[(u64, u64, u64)]) {
    let mut sorted = intervals.to_vec();
    sorted.sort();
    for pair in sorted.windows(2) {
        let ((_, end_a, index_a), (start_b, _, index_b)) = (pair[0], pair[1]);
        assert!(end_a <= start_b, "holders overlap: {pair:?}");
        assert!(
            index_a < index_b,
            "fencing tokens increase with holding order: {pair:?}"
        );
    }
}

#[test]
fn lock_module_serialises_contenders_on_different_nodes() {
    let intervals: Intervals = Arc::default();
    let seen = intervals.clone();
    with_cluster(config(1), move |cluster| async move {
        settle(&cluster).await;
        let mut tasks = Vec::new();
        for node in 0..3 {
            let (cluster, intervals) = (cluster.clone(), seen.clone());
            tasks.push(madsim::task::spawn(async move {
                let kv = router(&cluster, node).await;
                for round in 0..4 {
                    let index = lock::acquire(&kv, "l", (5, None), None, &mut |_| {})
                        .await
                        .expect("acquired");
                    let start = cluster.clock.now_ms();
                    cluster
                        .clock
                        .sleep_ms(20 + 10 * (node as u64 + round))
                        .await;
                    let end = cluster.clock.now_ms();
                    intervals.lock().expect("lock").push((start, end, index));
                    lock::release(&kv, "l", &Contender::Index(index))
                        .await
                        .expect("released");
                }
            }));
        }
        for task in tasks {
            task.await.expect("contender finished");
        }
    });
    let intervals = intervals.lock().expect("lock").clone();
    assert_eq!(
        intervals.len(),
        12,
        "every contender held the lock four times"
    );
    assert_exclusive(&intervals);
}

#[test]
fn acquire_times_out_and_leaves_the_queue() {
    with_cluster(config(2), |cluster| async move {
        settle(&cluster).await;
        let a = router(&cluster, 0).await;
        let b = router(&cluster, 1).await;
        let held = lock::acquire(&a, "t", (10, None), Some("a"), &mut |_| {})
            .await
            .expect("a holds");
        assert_eq!(
            lock::acquire(&b, "t", (10, Some(0)), Some("b"), &mut |_| {}).await,
            Err(LockError::Timeout)
        );
        let before = cluster.clock.now_ms();
        assert_eq!(
            lock::acquire(&b, "t", (10, Some(1)), Some("b"), &mut |_| {}).await,
            Err(LockError::Timeout)
        );
        assert!(
            cluster.clock.now_ms() - before >= 1000,
            "waited out the timeout"
        );
        assert_eq!(
            lock::holder(&b, "t", false).await.expect("read"),
            Some("a".into())
        );
        assert_eq!(
            lock::holder(&b, "t", true).await.expect("read"),
            Some(held.to_string())
        );
        // b left the queue: releasing it by value finds nothing (errorCode 100, cause Release).
        let gone = lock::release(&b, "t", &Contender::Value("b".into())).await;
        assert!(
            matches!(gone, Err(LockError::Kv(KvError::Store(e))) if e.code == ErrorCode::KeyNotFound && e.cause == "Release")
        );
    });
}

#[test]
fn an_expired_holder_hands_the_lock_on_and_renewal_keeps_it() {
    with_cluster(config(3), |cluster| async move {
        settle(&cluster).await;
        let a = router(&cluster, 0).await;
        let b = router(&cluster, 2).await;
        // a renews once, so it still holds after its first TTL would have run out.
        let first = lock::acquire(&a, "e", (1, None), Some("a"), &mut |_| {})
            .await
            .expect("a holds");
        cluster.clock.sleep_ms(700).await;
        lock::renew(&a, "e", 2, &Contender::Value("a".into()))
            .await
            .expect("renewed");
        cluster.clock.sleep_ms(700).await;
        assert_eq!(
            lock::holder(&b, "e", false).await.expect("read"),
            Some("a".into())
        );
        // Then a stops renewing: b, waiting with no timeout, gets the lock once a's entry expires.
        let second = lock::acquire(&b, "e", (5, None), Some("b"), &mut |_| {})
            .await
            .expect("b holds");
        assert!(
            second > first,
            "the fencing token grows: {first} then {second}"
        );
        assert_eq!(
            lock::holder(&a, "e", false).await.expect("read"),
            Some("b".into())
        );
    });
}

#[test]
fn leader_module_campaigns_reports_and_resigns() {
    with_cluster(config(4), |cluster| async move {
        settle(&cluster).await;
        let kv = router(&cluster, 1).await;
        lock::leader_campaign(&kv, "svc", "n1", 10, Some(0))
            .await
            .expect("leads");
        assert_eq!(
            lock::leader_get(&kv, "svc").await.expect("read"),
            Some("n1".into())
        );
        // Campaigning again under the same name reuses the entry instead of queueing behind it.
        lock::leader_campaign(&kv, "svc", "n1", 10, Some(0))
            .await
            .expect("still leads");
        lock::leader_resign(&kv, "svc", "n1")
            .await
            .expect("resigned");
        assert_eq!(lock::leader_get(&kv, "svc").await.expect("read"), None);
    });
}

/// The seed's recipe, with nothing but keys-API calls: create the lock node with
/// `prevExist=false`, take an instance id from the index, CAS `prevValue` with a TTL to take
/// it, watch on failure, release by CAS.
async fn recipe_acquire(cluster: &Cluster, kv: &KvRouter<SimClock>, me: &str) {
    let create = Command::Create {
        key: "/recipe".into(),
        dir: false,
        value: "free".into(),
        expire_at_ms: None,
    };
    match kv.write(&create).await {
        Ok(_) => {}
        Err(KvError::Store(e)) if e.code == ErrorCode::NodeExist => {}
        Err(e) => panic!("create: {e:?}"),
    }
    loop {
        let expire_at_ms = Some(engine::server::Clock::unix_ms(&cluster.clock) + 10_000);
        let take = Command::CompareAndSwap {
            key: "/recipe".into(),
            value: me.into(),
            prev_value: Some("free".into()),
            prev_index: None,
            expire_at_ms,
            refresh: false,
        };
        match kv.write(&take).await {
            Ok(_) => return,
            Err(KvError::Store(e)) if e.code == ErrorCode::TestFailed => {
                let watch = KvWatch {
                    key: "/recipe".into(),
                    recursive: false,
                    wait_index: e.index + 1,
                };
                kv.watch_event(watch).await.expect("watch fires on release");
            }
            Err(e) => panic!("take: {e:?}"),
        }
    }
}

#[test]
fn the_seed_recipe_works_as_a_plain_client_sequence() {
    let intervals: Intervals = Arc::default();
    let seen = intervals.clone();
    with_cluster(config(5), move |cluster| async move {
        settle(&cluster).await;
        let mut tasks = Vec::new();
        for node in 0..3 {
            let (cluster, intervals) = (cluster.clone(), seen.clone());
            tasks.push(madsim::task::spawn(async move {
                let kv = router(&cluster, node).await;
                for round in 0..3 {
                    // The instance id comes from the store index of a write of our own.
                    let probe = Command::Set {
                        key: format!("/ids/{node}"),
                        dir: false,
                        value: "x".into(),
                        expire_at_ms: None,
                        refresh: false,
                    };
                    let id = kv.write(&probe).await.expect("id").event.index.to_string();
                    recipe_acquire(&cluster, &kv, &id).await;
                    let start = cluster.clock.now_ms();
                    cluster.clock.sleep_ms(15 + 5 * round).await;
                    let end = cluster.clock.now_ms();
                    intervals.lock().expect("lock").push((
                        start,
                        end,
                        id.parse().expect("numeric id"),
                    ));
                    let release = Command::CompareAndSwap {
                        key: "/recipe".into(),
                        value: "free".into(),
                        prev_value: Some(id.clone()),
                        prev_index: None,
                        expire_at_ms: None,
                        refresh: false,
                    };
                    kv.write(&release).await.expect("released by CAS");
                }
            }));
        }
        for task in tasks {
            task.await.expect("contender finished");
        }
    });
    let mut intervals = intervals.lock().expect("lock").clone();
    assert_eq!(intervals.len(), 9);
    // Ids are not fencing tokens in this recipe (taken before queueing), so check overlap only.
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "holders overlap: {pair:?}");
    }
}
