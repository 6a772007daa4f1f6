//! Go's URL and form rules, which etcd clients depend on (store/README.md §2.2-§2.4):
//! percent-decoding, `ParseQuery`, the mux's path cleaning. `G<n>`: store/README.md §Transcripts.
//!
//! Depends on nothing else in the crate.

/// Decodes `%XX` escapes; with `plus_is_space`, `+` is a space (query and form encoding).
/// A malformed escape is an error naming it as Go does: `invalid URL escape "%zz"`.
pub fn unescape(text: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = text.as_bytes();
    // Most names and values hold nothing to unescape: they are their own text.
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(text.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                let value = hex.and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                match value {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        let end = (i + 3).min(bytes.len());
                        let bad = String::from_utf8_lossy(&bytes[i..end]);
                        return Err(format!("invalid URL escape \"{bad}\""));
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Valid UTF-8 (the usual case) becomes the string as it is, without a second copy.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned()))
}

/// Go's `url.ParseQuery`: `name=value` pairs split on `&`, in order. Like Go it goes on after a
/// bad pair and reports the first error (a `;` separator or a bad escape).
pub fn parse_query(text: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let mut first_error = None;
    for pair in text.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            first_error.get_or_insert_with(|| "invalid semicolon separator in query".to_string());
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (unescape(name, true), unescape(value, true)) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            (Err(e), _) | (_, Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Go's `path.Clean`: the shortest equivalent absolute path (no `//`, `.` or `..`), which is
/// exactly the store's key normalisation.
pub fn clean(path: &str) -> String {
    crate::store::key::normalize(path)
}

/// Go's `ServeMux` cleaning: the cleaned path, keeping a trailing slash. A request whose path
/// differs from it is answered 301 to the cleaned path (G51).
pub fn mux_clean(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut cleaned = clean(path);
    if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

/// Go's `url.QueryEscape`, for the 0.x machine registry's values.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => push_percent(&mut out, b),
        }
    }
    out
}

/// `%XX`, upper-case hex, as Go writes an escaped byte.
fn push_percent(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Go's `url.PathEscape`-like escaping of a path for a `Location` header and HTML body.
pub fn path_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            _ => push_percent(&mut out, b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_go() {
        assert_eq!(unescape("a%2Fb", false).unwrap(), "a/b");
        assert_eq!(unescape("a+b", true).unwrap(), "a b");
        assert_eq!(unescape("a+b", false).unwrap(), "a+b");
        assert_eq!(
            unescape("%zz", true).unwrap_err(),
            "invalid URL escape \"%zz\""
        );
        assert_eq!(
            unescape("x%4", true).unwrap_err(),
            "invalid URL escape \"%4\""
        );
        assert_eq!(unescape("%C3%A9", true).unwrap(), "é");
    }

    #[test]
    fn unescaping_keeps_plain_text_and_replaces_invalid_utf8() {
        // Nothing to unescape: the text as it is (the fast path).
        for text in ["", "k1", "/dir/a b/été", "a+b", "x=y;z"] {
            assert_eq!(unescape(text, false).unwrap(), text);
        }
        assert_eq!(unescape("été", true).unwrap(), "été");
        // Escapes that decode to invalid UTF-8 give U+FFFD in their place (a Rust string is
        // UTF-8).
        assert_eq!(unescape("%FF", true).unwrap(), "\u{FFFD}");
        assert_eq!(unescape("a%C3", false).unwrap(), "a\u{FFFD}");
        assert_eq!(unescape("%C3%A9+%FF", true).unwrap(), "é \u{FFFD}");
    }

    #[test]
    fn parse_query_keeps_order_and_reports_first_error() {
        let mut out = Vec::new();
        parse_query("value=a%20b&ttl=&dir", &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                ("value".into(), "a b".into()),
                ("ttl".into(), String::new()),
                ("dir".into(), String::new())
            ]
        );
        let mut out = Vec::new();
        let e = parse_query("a=1;b=2&c=%g", &mut out).unwrap_err();
        assert_eq!(e, "invalid semicolon separator in query");
    }

    #[test]
    fn cleaning_matches_go() {
        assert_eq!(mux_clean("/v2/keys//k1"), "/v2/keys/k1");
        assert_eq!(mux_clean("/v2/keys/k1/"), "/v2/keys/k1/");
        assert_eq!(mux_clean("/v2/keys/./a/../b"), "/v2/keys/b");
        assert_eq!(mux_clean("/.."), "/");
        assert_eq!(clean(""), "/");
    }

    #[test]
    fn every_escaped_byte_is_upper_case_hex() {
        let mut out = String::new();
        for b in 0..=255u8 {
            out.clear();
            push_percent(&mut out, b);
            assert_eq!(out, format!("%{b:02X}"));
        }
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(
            query_escape("http://127.0.0.1:2379"),
            "http%3A%2F%2F127.0.0.1%3A2379"
        );
    }
}
