//! Watches on a simulated cluster: served from any node's applied state, woken on apply, and
//! bounded: past `watchers_max` a watch gets a clear error instead of memory.

use engine::server::{ClientError, KvError, KvWatch};
use engine::store::{Action, Command};
use sim::options::SimConfig;
use sim::run::with_cluster;

#[test]
fn watches_fire_on_apply_and_are_bounded() {
    let mut config = SimConfig::bench(7, 60_000);
    config.nodes = 3;
    config.settings.watchers_max = 3;
    with_cluster(config, |cluster| async move {
        while cluster.leader().is_none() {
            cluster.clock.sleep_ms(10).await;
        }
        let leader = cluster.leader().expect("a leader").0 as usize - 1;
        let follower = (leader + 1) % 3;
        let (writer, watcher) = {
            let shared = cluster.shared();
            (
                shared.clients[leader].clone().expect("up"),
                shared.clients[follower].clone().expect("up"),
            )
        };
        // Three watches wait on a follower; a fourth is refused.
        let mut waiting = Vec::new();
        for key in ["/a", "/b", "/dir"] {
            let watch = KvWatch {
                key: key.into(),
                recursive: key == "/dir",
                wait_index: 0,
            };
            let w = watcher.clone();
            waiting.push(madsim::task::spawn(
                async move { w.watch_event(watch).await },
            ));
        }
        cluster.clock.sleep_ms(50).await;
        let refused = watcher
            .watch_event(KvWatch {
                key: "/c".into(),
                recursive: false,
                wait_index: 0,
            })
            .await;
        assert_eq!(refused, Err(KvError::Cluster(ClientError::TooManyWatchers)));
        // Writes on the leader wake the follower's watches once the follower applies them.
        for key in ["/a", "/b", "/dir/x"] {
            let set = Command::Set {
                key: key.into(),
                dir: false,
                value: "v".into(),
                expire_at_ms: None,
                refresh: false,
            };
            writer.write(&set).await.expect("written");
        }
        let mut fired = Vec::new();
        for task in waiting {
            let event = task.await.expect("task").expect("watch fired");
            assert_eq!(event.action, Action::Set);
            fired.push(event.node.key);
        }
        assert_eq!(fired, ["/a", "/b", "/dir/x"]);
        // Room again: a watch from a past index is answered from the history at once.
        let past = watcher
            .watch_event(KvWatch {
                key: "/a".into(),
                recursive: false,
                wait_index: 1,
            })
            .await;
        assert_eq!(past.expect("history").node.key, "/a");
    });
}
