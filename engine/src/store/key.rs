//! Key normalisation and the path helpers the tree and the watch history share.
//!
//! Depends on nothing else in the crate.

use std::borrow::Cow;

/// The root key, a read-only directory (store/README.md §3.2).
pub const ROOT: &str = "/";

/// Cleans a key the way etcd does, `path.Clean(path.Join("/", key))` (store/README.md §3.1).
///
/// Every string is a valid key: a missing leading slash is added, repeated slashes collapse,
/// `.` segments vanish, `..` removes the segment before it (never climbing above the root) and a
/// trailing slash is dropped. The Go mux answers `//`, `/./` and `/../` in a URL with a 301 before
/// the store sees them (store/README.md §2.2); that redirect belongs to the HTTP layer, the store
/// just cleans.
pub fn normalize(key: &str) -> String {
    normalized(key).into_owned()
}

/// [`normalize`], borrowing `key` when it is clean already (most keys arrive clean: the HTTP
/// layer cleaned them, or a command built from them), so that applying a command does not copy
/// its key.
pub fn normalized(key: &str) -> Cow<'_, str> {
    if is_clean(key) {
        return Cow::Borrowed(key);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in key.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = String::with_capacity(key.len() + 1);
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// True if `normalize` leaves `key` as it is: the root, or a slash followed by segments that
/// are neither empty, `.` nor `..`, joined by single slashes.
fn is_clean(key: &str) -> bool {
    if key == ROOT {
        return true;
    }
    key.strip_prefix('/').is_some_and(|rest| {
        rest.as_bytes()
            .split(|&b| b == b'/')
            .all(|p| !matches!(p, b"" | b"." | b".."))
    })
}

/// True for the root key.
pub fn is_root(key: &str) -> bool {
    key == ROOT
}

/// The prefix every descendant of `key` starts with: `key/`, or `/` for the root.
pub fn child_prefix(key: &str) -> String {
    child_prefix_with_room(key, 0)
}

/// [`child_prefix`] with room for `extra` more bytes, for a caller that appends a child's name
/// (no second allocation when it does).
pub fn child_prefix_with_room(key: &str, extra: usize) -> String {
    let mut prefix = String::with_capacity(key.len() + 1 + extra);
    if is_root(key) {
        prefix.push_str(ROOT);
    } else {
        prefix.push_str(key);
        prefix.push('/');
    }
    prefix
}

/// The smallest string greater than every string starting with `prefix`, for range scans.
///
/// `prefix` always ends with `/` here, and `0` is the byte after `/`, so `a/` becomes `a0`.
pub fn prefix_end(prefix: &str) -> String {
    debug_assert!(
        prefix.ends_with('/'),
        "prefix_end expects a directory prefix"
    );
    // As long as `prefix`: the `0` takes the `/`'s place (no growing of the string for it).
    let mut end = String::with_capacity(prefix.len());
    end.push_str(&prefix[..prefix.len() - 1]);
    end.push('0');
    end
}

/// The last path component of a cleaned key ("" for the root).
pub fn last_component(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or("")
}

/// True when the node's own name starts with `_` (store/README.md §3.4: hidden in listings only).
pub fn is_hidden(key: &str) -> bool {
    last_component(key).starts_with('_')
}

/// True when `key` (a descendant of `base`) has a `_` component below `base`.
///
/// store/README.md §3.4: recursive listings and recursive watches skip such keys; `base` itself may
/// be hidden (reading or watching a hidden key directly is allowed).
pub fn hidden_below(base: &str, key: &str) -> bool {
    let rest = key.strip_prefix(&child_prefix(base)).unwrap_or(key);
    rest.split('/').any(|part| part.starts_with('_'))
}

/// Every proper ancestor of a cleaned key, outermost first, excluding the root:
/// `/a/b/c` gives `/a`, `/a/b`. An iterator, not a list: every lookup of a key walks them.
pub fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    (key.bytes().enumerate().skip(1))
        .filter(|&(_, byte)| byte == b'/')
        .map(|(at, _)| &key[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_follows_go_path_clean() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("k1"), "/k1");
        assert_eq!(normalize("/k1/"), "/k1");
        assert_eq!(normalize("//a///b//"), "/a/b");
        assert_eq!(normalize("/a/./b"), "/a/b");
        assert_eq!(normalize("/a/../a/b"), "/a/b");
        assert_eq!(normalize("/../../x"), "/x");
        assert_eq!(normalize("/a/b/.."), "/a");
        assert_eq!(normalize("/sp ace/été"), "/sp ace/été");
        assert_eq!(normalize("/..."), "/...");
    }

    #[test]
    fn a_clean_key_is_exactly_what_normalizing_gives() {
        // Every string of up to 5 characters over an alphabet that makes every case.
        let alphabet = ['/', '.', 'a', '_'];
        let mut keys = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = keys
                .iter()
                .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
                .collect();
            keys.extend(longer);
        }
        keys.sort();
        keys.dedup();
        for key in &keys {
            let normal = normalize(key);
            assert_eq!(is_clean(key), *key == normal, "{key:?} -> {normal:?}");
            assert!(is_clean(&normal), "{normal:?} is clean");
            let borrowed = normalized(key);
            assert_eq!(borrowed, normal, "{key:?}");
            assert_eq!(
                matches!(borrowed, Cow::Borrowed(_)),
                is_clean(key),
                "{key:?}"
            );
        }
    }

    #[test]
    fn hidden_rules() {
        assert!(is_hidden("/_h"));
        assert!(!is_hidden("/a/b_"));
        assert!(hidden_below("/", "/_hid/x"));
        assert!(!hidden_below("/_hid", "/_hid/x"));
        assert!(hidden_below("/a", "/a/_b/c"));
        assert!(!hidden_below("/a", "/a/b/c"));
    }

    #[test]
    fn prefixes_and_ancestors() {
        assert_eq!(child_prefix("/"), "/");
        assert_eq!(child_prefix("/a"), "/a/");
        assert_eq!(prefix_end("/a/"), "/a0");
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a", "/a/b"]);
        assert_eq!(ancestors("/a").next(), None);
    }
}
