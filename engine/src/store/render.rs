//! The response bodies of etcd v2, byte for byte (store/README.md §2.6, §5, §6.1; `G<n>`
//! numbers are its transcripts, §Transcripts).
//!
//! Depends on `event`, `error` and `ttl`. Written by hand rather than through serde so that field
//! order, omitted fields and Go's HTML-safe escaping are explicit; nested listings are walked
//! with an explicit stack (no recursion).

use super::error::StoreError;
use super::event::{Action, Event, NodeView};
use super::ttl;

/// How `expiration` ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpirationStyle {
    /// `…+00:00`: the project's default, the form dsoprea's client can parse (store/README.md
    /// §5.2, §12.2); python-etcd and etcdctl accept it too.
    #[default]
    Offset,
    /// `…Z`: exactly what etcd 3.4 writes (Go RFC3339Nano in UTC, store/README.md §5.2).
    Zulu,
}

/// The body of a successful response or watch event, with `+00:00` expirations.
///
/// `now_ms` is the instant the `ttl` fields are computed for (store/README.md §5.2: recomputed at
/// every read). With `no_value_on_success`, set/create/update/compareAndSwap answer only
/// `{"action":…}` (G47).
pub fn render(event: &Event, now_ms: u64, no_value_on_success: bool) -> String {
    render_with(
        event,
        now_ms,
        no_value_on_success,
        ExpirationStyle::default(),
    )
}

/// [`render`] with a choice of expiration suffix.
pub fn render_with(
    event: &Event,
    now_ms: u64,
    no_value_on_success: bool,
    style: ExpirationStyle,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"action\":");
    push_json_string(&mut out, event.action.as_str());
    let terse = matches!(
        event.action,
        Action::Set | Action::Create | Action::Update | Action::CompareAndSwap
    );
    if !(no_value_on_success && terse) {
        out.push_str(",\"node\":");
        push_node(&mut out, &event.node, now_ms, style);
        if let Some(prev) = &event.prev_node {
            out.push_str(",\"prevNode\":");
            push_node(&mut out, prev, now_ms, style);
        }
    }
    // store/README.md §2.6: Go's json.Encoder ends every body with a newline.
    out.push_str("}\n");
    out
}

/// The HTTP status of a successful write or read: 201 for `create` and for a `set` that had no
/// previous node, 200 otherwise (store/README.md §5.3, G3, G4, G21).
pub fn success_status(event: &Event) -> u16 {
    match (event.action, &event.prev_node) {
        (Action::Create, _) | (Action::Set, None) => 201,
        _ => 200,
    }
}

/// The body of an error response: `{"errorCode":…,"message":…,"cause":…,"index":…}` plus a
/// newline, `cause` omitted when empty (store/README.md §6.1).
pub fn render_error(error: &StoreError) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("{\"errorCode\":");
    push_decimal(&mut out, u64::from(error.code.number()), 1);
    out.push_str(",\"message\":");
    push_json_string(&mut out, error.message);
    if !error.cause.is_empty() {
        out.push_str(",\"cause\":");
        push_json_string(&mut out, &error.cause);
    }
    out.push_str(",\"index\":");
    push_decimal(&mut out, error.index, 1);
    out.push_str("}\n");
    out
}

/// Writes one node and its nested children, depth first, with an explicit stack.
fn push_node(out: &mut String, root: &NodeView, now_ms: u64, style: ExpirationStyle) {
    open_node(out, root, now_ms, style);
    if root.nodes.is_empty() {
        // Most events carry one node without children: no stack to build.
        close_node(out, root);
        return;
    }
    let mut stack: Vec<(&NodeView, usize)> = vec![(root, 0)];
    while let Some(top) = stack.last_mut() {
        let (node, next) = (top.0, top.1);
        if let Some(child) = node.nodes.get(next) {
            top.1 += 1;
            if next > 0 {
                out.push(',');
            }
            open_node(out, child, now_ms, style);
            stack.push((child, 0));
        } else {
            close_node(out, node);
            stack.pop();
        }
    }
}

/// Opens a node's object and writes the fields before `nodes`, in Go struct order: key, value,
/// dir, expiration, ttl (README §5.1).
fn open_node(out: &mut String, node: &NodeView, now_ms: u64, style: ExpirationStyle) {
    out.push('{');
    let mut wrote_any = false;
    let mut field = |out: &mut String, name: &str| {
        if wrote_any {
            out.push(',');
        }
        wrote_any = true;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    // store/README.md §5.1: only the root has no key.
    if node.key != "/" {
        field(out, "key");
        push_json_string(out, &node.key);
    }
    if let Some(value) = &node.value {
        field(out, "value");
        push_json_string(out, value);
    }
    if node.dir {
        field(out, "dir");
        out.push_str("true");
    }
    if let Some(at) = node.expire_at_ms {
        // The timestamp's characters (digits, `-:T.+Z`) need no JSON escape.
        field(out, "expiration");
        out.push('"');
        push_rfc3339_ms(out, at, style);
        out.push('"');
        // store/README.md §5.1: ttl is omitempty, so a TTL that computes to 0 disappears (G101).
        let remaining = ttl::remaining_seconds(at, now_ms);
        if remaining != 0 {
            field(out, "ttl");
            if remaining < 0 {
                out.push('-');
            }
            push_decimal(out, remaining.unsigned_abs(), 1);
        }
    }
    if !node.nodes.is_empty() {
        field(out, "nodes");
        out.push('[');
    }
}

fn close_node(out: &mut String, node: &NodeView) {
    // Exactly the fields `open_node` wrote, so the commas line up.
    let mut wrote_any =
        node.key != "/" || node.value.is_some() || node.dir || node.expire_at_ms.is_some();
    if !node.nodes.is_empty() {
        out.push(']');
        wrote_any = true;
    }
    // store/README.md §5.1: indexes are omitempty (the root has none).
    for (name, index) in [
        ("modifiedIndex", node.modified_index),
        ("createdIndex", node.created_index),
    ] {
        if index != 0 {
            if wrote_any {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            push_decimal(out, index, 1);
            wrote_any = true;
        }
    }
    out.push('}');
}

/// Go's HTML-safe string encoding (go1.19, which built etcd 3.4.23): `\"`, `\\`, `\n`, `\r`,
/// `\t`, other control bytes as `\u00xx`, `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`
/// (store/README.md §2.6). Strings are valid UTF-8 here; the HTTP layer replaces bad bytes with
/// U+FFFD.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    // Runs of characters that need no escape (most keys and values are one run) are copied
    // whole. Every character escaped is ASCII or U+2028/U+2029 (bytes E2 80 A8/A9), so a run
    // always ends on a character boundary.
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let separator = b == 0xE2 && bytes.get(i + 1) == Some(&0x80) && {
            matches!(bytes.get(i + 2), Some(0xA8 | 0xA9))
        };
        if !(b < 0x20 || matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&') || separator) {
            i += 1;
            continue;
        }
        out.push_str(&text[run..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let code = if separator {
                    if bytes[i + 2] == 0xA8 { 0x2028 } else { 0x2029 }
                } else {
                    u32::from(b)
                };
                push_unicode_escape(out, code);
            }
        }
        i += if separator { 3 } else { 1 };
        run = i;
    }
    out.push_str(&text[run..]);
    out.push('"');
}

/// `\uXXXX`, lower-case hex, as Go's encoder writes it.
fn push_unicode_escape(out: &mut String, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[((code >> shift) & 0xF) as usize]));
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]` in UTC plus the style's suffix, the fraction trimmed of trailing
/// zeros as Go's RFC3339Nano does (store/README.md §5.2).
pub fn format_rfc3339_ms(at_ms: u64, style: ExpirationStyle) -> String {
    let mut out = String::with_capacity(30);
    push_rfc3339_ms(&mut out, at_ms, style);
    out
}

/// Appends [`format_rfc3339_ms`]'s text to `out`.
fn push_rfc3339_ms(out: &mut String, at_ms: u64, style: ExpirationStyle) {
    let seconds = at_ms / 1000;
    let millis = at_ms % 1000;
    let days = seconds / 86_400;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    push_decimal(out, year, 4);
    out.push('-');
    push_decimal(out, month, 2);
    out.push('-');
    push_decimal(out, day, 2);
    out.push('T');
    push_decimal(out, second_of_day / 3600, 2);
    out.push(':');
    push_decimal(out, second_of_day % 3600 / 60, 2);
    out.push(':');
    push_decimal(out, second_of_day % 60, 2);
    if millis != 0 {
        // Three digits, then the trailing zeros dropped.
        let (mut fraction, mut digits) = (millis, 3);
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        out.push('.');
        push_decimal(out, fraction, digits);
    }
    out.push_str(match style {
        ExpirationStyle::Offset => "+00:00",
        ExpirationStyle::Zulu => "Z",
    });
}

/// Appends `n` in decimal, zero-padded to at least `width` digits (`format!("{n:0width$}")`
/// without the formatting machinery: this runs for every index and timestamp rendered).
pub fn push_decimal(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    if start == digits.len() {
        // Zero is one digit.
        start -= 1;
    }
    for _ in digits.len() - start..width {
        out.push('0');
    }
    let text = std::str::from_utf8(&digits[start..]).expect("ASCII digits");
    out.push_str(text);
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's days-from-civil
/// inverse, restricted to non-negative days since times are u64 ms after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(
            format_rfc3339_ms(0, ExpirationStyle::Zulu),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339_ms(951_782_400_000, ExpirationStyle::Zulu),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339_ms(1_795_460_651_861, ExpirationStyle::Zulu),
            "2026-11-23T19:04:11.861Z"
        );
        assert_eq!(
            format_rfc3339_ms(1_795_460_651_500, ExpirationStyle::Offset),
            "2026-11-23T19:04:11.5+00:00"
        );
        assert_eq!(
            format_rfc3339_ms(4_107_542_399_000, ExpirationStyle::Zulu),
            "2100-02-28T23:59:59Z"
        );
        assert_eq!(
            format_rfc3339_ms(4_107_542_400_000, ExpirationStyle::Zulu),
            "2100-03-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339_ms(253_402_300_799_999, ExpirationStyle::Zulu),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn decimals_match_the_formatter() {
        let mut values = vec![0, 1, 9, 10, 99, 100, 999, 1000, u64::MAX, u64::MAX / 10];
        values.extend((0..20).map(|p| 10u64.pow(p)));
        values.extend((1..20).map(|p| 10u64.pow(p) - 1));
        for n in values {
            for width in [0, 1, 2, 3, 4, 20, 25] {
                let mut out = String::from("x");
                push_decimal(&mut out, n, width);
                assert_eq!(out, format!("x{n:0width$}"), "{n} to {width} digits");
            }
        }
    }

    #[test]
    fn every_millisecond_fraction_is_trimmed_as_before() {
        // The trimmed fraction against the formatter's, for every millisecond of a second.
        for millis in 0..1000u64 {
            let at = 1_795_460_651_000 + millis;
            let mut want = String::from("2026-11-23T19:04:11");
            if millis != 0 {
                want.push('.');
                want.push_str(format!("{millis:03}").trim_end_matches('0'));
            }
            want.push('Z');
            assert_eq!(format_rfc3339_ms(at, ExpirationStyle::Zulu), want);
        }
    }

    #[test]
    fn civil_matches_a_day_by_day_walk() {
        // An independent walk through the calendar for ~1100 years of days.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..400_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    /// The escaping `push_json_string` replaced, character by character: the reference.
    fn json_string_by_chars(text: &str) -> String {
        let mut out = String::from('"');
        for ch in text.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", u32::from(ch)));
                }
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn json_strings_escape_as_character_by_character() {
        // Every character up to U+00FF and the separators' neighbours, alone and in runs.
        let mut chars: Vec<char> = (0u32..=0xFF).filter_map(char::from_u32).collect();
        chars.extend([
            '\u{2027}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{2080}', '€', '😀',
        ]);
        for &c in &chars {
            for text in [
                c.to_string(),
                format!("ab{c}"),
                format!("{c}{c}x"),
                format!("é{c}€"),
            ] {
                let mut out = String::new();
                push_json_string(&mut out, &text);
                assert_eq!(out, json_string_by_chars(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn go_escaping() {
        let mut out = String::new();
        push_json_string(
            &mut out,
            "<a href=\"x\">&\n\t\r\u{1}\u{8}\u{c}\u{7f}\u{2028}é\\",
        );
        assert_eq!(
            out,
            "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\n\\t\\r\\u0001\\u0008\\u000c\u{7f}\\u2028é\\\\\""
        );
    }
}
