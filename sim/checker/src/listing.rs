//! Directory listings, judged on their own shape (store/README.md §5): a listing never shows a
//! hidden key (a path segment starting with `_`) below the directory it lists, and a
//! `sorted=true` listing gives each directory's children in key order. What the listed values
//! must be is the linearizability checker's part (quorum listings read every key at once).

use crate::HistoryViolation;
use crate::history::{Call, Op, Ret};

/// The part of `k` below `dir` (starting with `/`), if `k` lies below it.
fn below<'a>(k: &'a str, dir: &str) -> Option<&'a str> {
    k.strip_prefix(dir).filter(|r| r.starts_with('/'))
}

/// Checks every answered listing of `ops`.
pub fn check_listings(ops: &[Op]) -> Result<(), HistoryViolation> {
    for op in ops {
        let (Call::List { key, sorted, .. }, Ret::Listing { nodes, .. }) = (&op.call, &op.ret)
        else {
            continue;
        };
        if let Some(hidden) = nodes
            .iter()
            .find(|n| below(&n.key, key).is_some_and(|r| r.split('/').any(|s| s.starts_with('_'))))
        {
            return Err(HistoryViolation {
                rule: "listings never show hidden keys",
                op: Some(op.id),
                detail: format!("listing of {key} showed {}", hidden.key),
            });
        }
        if let Some(stray) = nodes.iter().find(|n| below(&n.key, key).is_none()) {
            return Err(HistoryViolation {
                rule: "a listing shows only what lies under its directory",
                op: Some(op.id),
                detail: format!("listing of {key} showed {}", stray.key),
            });
        }
        if !sorted {
            continue;
        }
        let parent = |k: &str| k.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        for (i, later) in nodes.iter().enumerate() {
            let earlier = nodes[..i]
                .iter()
                .rev()
                .find(|n| parent(&n.key) == parent(&later.key));
            if let Some(earlier) = earlier.filter(|e| e.key >= later.key) {
                return Err(HistoryViolation {
                    rule: "a sorted listing gives each directory's children in key order",
                    op: Some(op.id),
                    detail: format!(
                        "listing of {key} (sorted) gave {} before {}",
                        earlier.key, later.key
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Listed;

    fn listing(sorted: bool, keys: &[&str]) -> Op {
        Op {
            id: 7,
            client: 0,
            node: 1,
            invoke_us: 0,
            complete_us: 10,
            call: Call::List {
                key: "/d".into(),
                sorted,
                quorum: true,
            },
            ret: Ret::Listing {
                index: 3,
                nodes: keys
                    .iter()
                    .map(|k| Listed {
                        key: (*k).into(),
                        value: Some("v".into()),
                        dir: false,
                        modified_index: 1,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn sorted_listings_keep_key_order_and_hide_hidden_keys() {
        assert!(check_listings(&[listing(true, &["/d/a", "/d/b"])]).is_ok());
        assert!(check_listings(&[listing(false, &["/d/b", "/d/a"])]).is_ok());
        let unsorted = check_listings(&[listing(true, &["/d/b", "/d/a"])]).unwrap_err();
        assert_eq!(
            unsorted.rule,
            "a sorted listing gives each directory's children in key order"
        );
        let hidden = check_listings(&[listing(false, &["/d/_h"])]).unwrap_err();
        assert_eq!(hidden.rule, "listings never show hidden keys");
        let stray = check_listings(&[listing(false, &["/dx"])]).unwrap_err();
        assert_eq!(
            stray.rule,
            "a listing shows only what lies under its directory"
        );
        // Children of different directories are compared only among themselves.
        assert!(check_listings(&[listing(true, &["/d/b", "/d/b/a", "/d/c"])]).is_ok());
    }
}
