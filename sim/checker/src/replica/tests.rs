//! The replica against the spec's recorded exchanges (engine/src/store/README.md §Transcripts),
//! by store index, action and error code.

use super::*;

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.into(),
        dir: false,
        value: value.into(),
        expire_at_ms: None,
        refresh: false,
    }
}

fn one(replica: &mut Replica, command: Command) -> Event {
    let mut events = replica.apply_command(&command).expect("applies");
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn code(replica: &mut Replica, command: Command) -> u16 {
    let before = replica.index();
    let refused = replica.apply_command(&command).expect_err("refused");
    assert_eq!(refused.index, before);
    assert_eq!(replica.index(), before, "a refusal takes no index");
    refused.code
}

#[test]
fn keys_are_cleaned_like_go_path_clean() {
    assert_eq!(clean(""), "/");
    assert_eq!(clean("a//b/"), "/a/b");
    assert_eq!(clean("/a/./b/../c"), "/a/c");
    assert_eq!(clean("/../a"), "/a");
}

#[test]
fn writes_take_indexes_and_failures_take_none() {
    let mut r = Replica::new();
    let e = one(&mut r, set("/k", "v1"));
    assert_eq!((e.index, e.action, e.modified_index), (1, Action::Set, 1));
    let create = Command::Create {
        key: "/k".into(),
        dir: false,
        value: "x".into(),
        expire_at_ms: None,
    };
    assert_eq!(code(&mut r, create), 105); // G10
    let update = Command::Update {
        key: "/missing".into(),
        value: "x".into(),
        expire_at_ms: None,
        refresh: false,
    };
    assert_eq!(code(&mut r, update), 100); // G11
    let cas = |prev_value: &str| Command::Cas {
        key: "/k".into(),
        value: "v2".into(),
        prev_value: Some(prev_value.into()),
        prev_index: None,
        expire_at_ms: None,
        refresh: false,
    };
    assert_eq!(code(&mut r, cas("wrong")), 101); // G12
    let e = one(&mut r, cas("v1")); // G15
    assert_eq!(
        (e.index, e.action, e.value.as_deref()),
        (2, Action::CompareAndSwap, Some("v2"))
    );
    assert_eq!(e.created_index, 1);
}

#[test]
fn directories_files_and_the_root() {
    let mut r = Replica::new();
    let e = one(&mut r, set("/dir/sub/leaf", "v")); // G31
    assert_eq!(e.index, 1);
    assert_eq!(code(&mut r, set("/dir", "v")), 102); // G27
    assert_eq!(code(&mut r, set("/dir/sub/leaf/x", "v")), 104); // G29
    assert_eq!(code(&mut r, set("/", "v")), 107); // G30
    let delete = |key: &str, dir, recursive| Command::Delete {
        key: key.into(),
        dir,
        recursive,
    };
    assert_eq!(code(&mut r, delete("/dir", false, false)), 102); // G34
    assert_eq!(code(&mut r, delete("/dir", true, false)), 108); // G35
    assert_eq!(code(&mut r, delete("/", true, true)), 107); // G155
    let e = one(&mut r, delete("/dir", false, true)); // G36
    assert_eq!(
        (e.index, e.action, e.dir, e.created_index),
        (2, Action::Delete, true, 1)
    );
    assert_eq!(code(&mut r, delete("/dir/sub/leaf", false, false)), 100);
    // G53: dir=true over a file makes it an empty directory.
    one(&mut r, set("/f", "v"));
    let e = one(
        &mut r,
        Command::Set {
            key: "/f".into(),
            dir: true,
            value: "ignored".into(),
            expire_at_ms: None,
            refresh: false,
        },
    );
    assert!(e.dir && e.value.is_none());
    // G150: dir=true deletes a file.
    one(&mut r, set("/g", "v"));
    assert!(!one(&mut r, delete("/g", true, false)).dir);
}

#[test]
fn in_order_keys_are_named_by_their_index() {
    let mut r = Replica::new();
    one(&mut r, set("/x", "v"));
    let post = |dir_key: &str| Command::CreateInOrder {
        dir_key: dir_key.into(),
        dir: false,
        value: "job".into(),
        expire_at_ms: None,
    };
    let e = one(&mut r, post("/queue")); // G21
    assert_eq!(e.key, "/queue/00000000000000000002");
    let e = one(&mut r, post("/")); // G156
    assert_eq!(e.key, "/00000000000000000003");
    assert_eq!(code(&mut r, post("/x")), 104);
}

#[test]
fn compare_and_delete_and_refresh() {
    let mut r = Replica::new();
    one(&mut r, set("/k", "v"));
    let cad = |prev_value: &str, prev_index| Command::Cad {
        key: "/k".into(),
        prev_value: Some(prev_value.into()),
        prev_index,
    };
    assert_eq!(code(&mut r, cad("wrong", None)), 101); // G37
    assert_eq!(code(&mut r, cad("v", Some(7))), 101); // G109
    let refresh = Command::Update {
        key: "/k".into(),
        value: String::new(),
        expire_at_ms: Some(5_000),
        refresh: true,
    };
    let e = one(&mut r, refresh);
    assert!(e.refresh);
    assert_eq!((e.index, e.value.as_deref()), (2, Some("v")));
    let e = one(&mut r, cad("v", Some(2))); // G38
    assert_eq!(
        (e.index, e.action, e.value),
        (3, Action::CompareAndDelete, None)
    );
    // The deleted key's expiry is forgotten.
    assert_eq!(
        r.apply_command(&Command::Expire { now_ms: 10_000 }),
        Ok(vec![])
    );
}

#[test]
fn expiry_removes_due_nodes_earliest_first_with_their_subtrees() {
    let mut r = Replica::new();
    let ttl = |key: &str, dir, at| Command::Create {
        key: key.into(),
        dir,
        value: String::new(),
        expire_at_ms: Some(at),
    };
    one(&mut r, ttl("/b", false, 100)); // 1
    one(&mut r, ttl("/a", false, 100)); // 2
    one(&mut r, ttl("/edir", true, 50)); // 3
    one(&mut r, ttl("/edir/child", false, 60)); // 4
    one(&mut r, ttl("/late", false, 1_000)); // 5
    let events = r.apply_command(&Command::Expire { now_ms: 100 }).unwrap();
    let seen: Vec<(u64, &str, bool)> = events
        .iter()
        .map(|e| (e.index, e.key.as_str(), e.dir))
        .collect();
    // G192: the directory's expiry takes its child with it; ties go by key.
    assert_eq!(
        seen,
        [(6, "/edir", true), (7, "/a", false), (8, "/b", false)]
    );
    assert!(events.iter().all(|e| e.action == Action::Expire));
    let read_child = Command::Update {
        key: "/edir/child".into(),
        value: String::new(),
        expire_at_ms: None,
        refresh: false,
    };
    assert_eq!(code(&mut r, read_child), 100); // G193
    // An update without a TTL makes the node permanent (G142).
    let update = Command::Update {
        key: "/late".into(),
        value: "v".into(),
        expire_at_ms: None,
        refresh: false,
    };
    one(&mut r, update);
    assert_eq!(
        r.apply_command(&Command::Expire { now_ms: 5_000 }),
        Ok(vec![])
    );
}

#[test]
fn noops_change_nothing_and_garbage_is_300() {
    let mut r = Replica::new();
    assert_eq!(r.apply(&Input::Noop), Ok(vec![]));
    assert_eq!(
        r.apply(&Input::Garbage),
        Err(Refused {
            code: 300,
            index: 0
        })
    );
    assert_eq!(r.index(), 0);
}

/// The segment-list reading of Go's `path.Clean(path.Join("/", key))` that `clean` replaced.
fn clean_by_segments(key: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in key.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[test]
fn clean_agrees_with_the_segment_list_on_every_short_key() {
    // Every key of up to 7 characters over `/ . a b`: dots, double dots, empty segments,
    // `..` above the root.
    let alphabet = ['/', '.', 'a', 'b'];
    let mut keys = vec![String::new()];
    for _ in 0..7 {
        let longer: Vec<String> = keys
            .iter()
            .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
            .collect();
        for key in &longer {
            assert_eq!(clean(key), clean_by_segments(key), "{key:?}");
        }
        keys = longer;
    }
}
