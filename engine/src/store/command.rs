//! Store commands (what travels inside Raft log entries) and their construction from etcd-style
//! form parameters.
//!
//! Depends on `error`, `key` and `ttl`. TTLs travel as absolute expiry instants computed by the
//! proposer from its `now_ms` (store/README.md §7), so applying a command never needs a clock.
//! `G<n>` numbers are the recorded etcd exchanges of store/README.md §Transcripts.

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, StoreError};
use super::key;
use super::ttl;

/// The largest form the HTTP layer accepts: Go's `maxFormSize`, 10 MiB (store/README.md §2.3).
pub const FORM_BYTES_MAX: usize = 10 << 20;

/// One store mutation. Keys are cleaned by the constructors in this module; `Store::apply`
/// cleans them again, so a hand-built command with a raw key behaves the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Plain PUT: create or replace a file, or create a directory (action `set`).
    Set {
        /// The key.
        key: String,
        /// Create a directory instead of a file.
        dir: bool,
        /// The file value (empty for directories).
        value: String,
        /// Absolute expiry instant in ms, or `None` for a permanent node.
        expire_at_ms: Option<u64>,
        /// Keep the existing value and only move the TTL (`refresh=true`).
        refresh: bool,
    },
    /// `prevExist=false`: create only (action `create`).
    Create {
        /// The key.
        key: String,
        /// Create a directory instead of a file.
        dir: bool,
        /// The file value (empty for directories).
        value: String,
        /// Absolute expiry instant in ms, or `None` for a permanent node.
        expire_at_ms: Option<u64>,
    },
    /// POST: create `<dir_key>/<index %020d>` (action `create`, store/README.md §4.5).
    CreateInOrder {
        /// The directory to create the in-order key in.
        dir_key: String,
        /// Create a directory instead of a file.
        dir: bool,
        /// The file value (empty for directories).
        value: String,
        /// Absolute expiry instant in ms, or `None` for a permanent node.
        expire_at_ms: Option<u64>,
    },
    /// `prevExist=true` without conditions: update an existing node (action `update`).
    Update {
        /// The key.
        key: String,
        /// The new value; must be empty for a directory.
        value: String,
        /// New expiry; `None` makes the node permanent (G142).
        expire_at_ms: Option<u64>,
        /// Keep the existing value and only move the TTL.
        refresh: bool,
    },
    /// PUT with `prevValue` and/or `prevIndex` (action `compareAndSwap`).
    CompareAndSwap {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The value the file must have.
        prev_value: Option<String>,
        /// The `modifiedIndex` the file must have.
        prev_index: Option<u64>,
        /// New expiry; `None` makes the node permanent.
        expire_at_ms: Option<u64>,
        /// Keep the existing value and only move the TTL.
        refresh: bool,
    },
    /// Plain DELETE (action `delete`).
    Delete {
        /// The key.
        key: String,
        /// Allow deleting an empty directory.
        dir: bool,
        /// Allow deleting a directory with everything below it (implies `dir`).
        recursive: bool,
    },
    /// DELETE with `prevValue` and/or `prevIndex` (action `compareAndDelete`).
    CompareAndDelete {
        /// The key.
        key: String,
        /// The value the file must have.
        prev_value: Option<String>,
        /// The `modifiedIndex` the file must have.
        prev_index: Option<u64>,
    },
    /// The leader's expiry tick (etcd's `SYNC`): removes every node whose expiry instant is at
    /// or before `now_ms`, subtrees included, one `expire` event and one index each (README §7).
    Expire {
        /// The leader's clock when it proposed the tick, in ms since the Unix epoch.
        now_ms: u64,
    },
}

/// A log entry payload that is not a valid command.
#[derive(Debug, thiserror::Error)]
#[error("undecodable store command: {0}")]
pub struct DecodeError(String);

/// The first byte of every encoded command: the version of the encoding below. A payload that
/// starts with anything else is refused with a clear error, never guessed at.
pub const COMMAND_FORMAT: u8 = 1;

/// Variant tags of the binary encoding.
const SET: u8 = 0;
const CREATE: u8 = 1;
const CREATE_IN_ORDER: u8 = 2;
const UPDATE: u8 = 3;
const COMPARE_AND_SWAP: u8 = 4;
const DELETE: u8 = 5;
const COMPARE_AND_DELETE: u8 = 6;
const EXPIRE: u8 = 7;

impl Command {
    /// The bytes that go into a Raft log entry, in the binary encoding (format
    /// [`COMMAND_FORMAT`]): the format byte, a variant tag byte (Set 0, Create 1,
    /// CreateInOrder 2, Update 3, CompareAndSwap 4, Delete 5, CompareAndDelete 6, Expire 7),
    /// then the variant's fields in declaration order: a string as its byte length (LEB128
    /// varint) and its UTF-8 bytes, a `u64` as a LEB128 varint, a `bool` as one byte 0 or 1, an
    /// `Option` as one byte 0 (none) or 1 followed by the value. Nothing follows the last field.
    /// Floe before log format 3 wrote commands as JSON; those payloads start with `{`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.push(COMMAND_FORMAT);
        match self {
            Command::Set {
                key,
                dir,
                value,
                expire_at_ms,
                refresh,
            } => {
                out.push(SET);
                put_str(&mut out, key);
                put_bool(&mut out, *dir);
                put_str(&mut out, value);
                put_opt_u64(&mut out, *expire_at_ms);
                put_bool(&mut out, *refresh);
            }
            Command::Create {
                key,
                dir,
                value,
                expire_at_ms,
            } => {
                out.push(CREATE);
                put_str(&mut out, key);
                put_bool(&mut out, *dir);
                put_str(&mut out, value);
                put_opt_u64(&mut out, *expire_at_ms);
            }
            Command::CreateInOrder {
                dir_key,
                dir,
                value,
                expire_at_ms,
            } => {
                out.push(CREATE_IN_ORDER);
                put_str(&mut out, dir_key);
                put_bool(&mut out, *dir);
                put_str(&mut out, value);
                put_opt_u64(&mut out, *expire_at_ms);
            }
            Command::Update {
                key,
                value,
                expire_at_ms,
                refresh,
            } => {
                out.push(UPDATE);
                put_str(&mut out, key);
                put_str(&mut out, value);
                put_opt_u64(&mut out, *expire_at_ms);
                put_bool(&mut out, *refresh);
            }
            Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at_ms,
                refresh,
            } => {
                out.push(COMPARE_AND_SWAP);
                put_str(&mut out, key);
                put_str(&mut out, value);
                put_opt_str(&mut out, prev_value.as_deref());
                put_opt_u64(&mut out, *prev_index);
                put_opt_u64(&mut out, *expire_at_ms);
                put_bool(&mut out, *refresh);
            }
            Command::Delete {
                key,
                dir,
                recursive,
            } => {
                out.push(DELETE);
                put_str(&mut out, key);
                put_bool(&mut out, *dir);
                put_bool(&mut out, *recursive);
            }
            Command::CompareAndDelete {
                key,
                prev_value,
                prev_index,
            } => {
                out.push(COMPARE_AND_DELETE);
                put_str(&mut out, key);
                put_opt_str(&mut out, prev_value.as_deref());
                put_opt_u64(&mut out, *prev_index);
            }
            Command::Expire { now_ms } => {
                out.push(EXPIRE);
                put_u64(&mut out, *now_ms);
            }
        }
        out
    }

    /// Reads a command back from a Raft log entry. Any payload that is not exactly one command
    /// in the binary encoding (another format, an unknown tag, a truncated or overlong field,
    /// invalid UTF-8, a bool other than 0 or 1, bytes after the last field) is an error that
    /// says what is wrong; nothing panics and nothing allocates more than the payload's size.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        match r.byte("format")? {
            COMMAND_FORMAT => {}
            b'{' => {
                return Err(DecodeError(format!(
                    "a JSON command, as Floe wrote before log format 3; this build reads \
                     command format {COMMAND_FORMAT} (binary)"
                )));
            }
            other => {
                return Err(DecodeError(format!(
                    "command format {other}, this build reads format {COMMAND_FORMAT}"
                )));
            }
        }
        let command = match r.byte("tag")? {
            SET => Command::Set {
                key: r.string("key")?,
                dir: r.bool("dir")?,
                value: r.string("value")?,
                expire_at_ms: r.opt_u64("expire_at_ms")?,
                refresh: r.bool("refresh")?,
            },
            CREATE => Command::Create {
                key: r.string("key")?,
                dir: r.bool("dir")?,
                value: r.string("value")?,
                expire_at_ms: r.opt_u64("expire_at_ms")?,
            },
            CREATE_IN_ORDER => Command::CreateInOrder {
                dir_key: r.string("dir_key")?,
                dir: r.bool("dir")?,
                value: r.string("value")?,
                expire_at_ms: r.opt_u64("expire_at_ms")?,
            },
            UPDATE => Command::Update {
                key: r.string("key")?,
                value: r.string("value")?,
                expire_at_ms: r.opt_u64("expire_at_ms")?,
                refresh: r.bool("refresh")?,
            },
            COMPARE_AND_SWAP => Command::CompareAndSwap {
                key: r.string("key")?,
                value: r.string("value")?,
                prev_value: r.opt_string("prev_value")?,
                prev_index: r.opt_u64("prev_index")?,
                expire_at_ms: r.opt_u64("expire_at_ms")?,
                refresh: r.bool("refresh")?,
            },
            DELETE => Command::Delete {
                key: r.string("key")?,
                dir: r.bool("dir")?,
                recursive: r.bool("recursive")?,
            },
            COMPARE_AND_DELETE => Command::CompareAndDelete {
                key: r.string("key")?,
                prev_value: r.opt_string("prev_value")?,
                prev_index: r.opt_u64("prev_index")?,
            },
            EXPIRE => Command::Expire {
                now_ms: r.u64("now_ms")?,
            },
            other => return Err(DecodeError(format!("unknown command tag {other}"))),
        };
        if r.pos != bytes.len() {
            return Err(DecodeError(format!(
                "{} bytes after the command",
                bytes.len() - r.pos
            )));
        }
        Ok(command)
    }
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
    }
}

fn put_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// A cursor over a command's bytes; every read names the field it was for in its error.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self, field: &str) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| DecodeError(format!("truncated at {field}")))?;
        self.pos += 1;
        Ok(b)
    }

    fn u64(&mut self, field: &str) -> Result<u64, DecodeError> {
        // Most are one byte: string lengths, small numbers.
        if let Some(&b) = self.bytes.get(self.pos)
            && b & 0x80 == 0
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(field)?;
            let low = u64::from(b & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if shift == 63 && low > 1 {
                break;
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError(format!("{field}: varint overflows 64 bits")))
    }

    fn bool(&mut self, field: &str) -> Result<bool, DecodeError> {
        match self.byte(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError(format!("{field}: bool byte {other}"))),
        }
    }

    fn string(&mut self, field: &str) -> Result<String, DecodeError> {
        let len = self.u64(field)?;
        let left = self.bytes.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= left)
            .ok_or_else(|| DecodeError(format!("{field}: length {len} with {left} bytes left")))?;
        let raw = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        std::str::from_utf8(raw)
            .map(str::to_string)
            .map_err(|e| DecodeError(format!("{field}: not UTF-8: {e}")))
    }

    fn opt_u64(&mut self, field: &str) -> Result<Option<u64>, DecodeError> {
        Ok(if self.bool(field)? {
            Some(self.u64(field)?)
        } else {
            None
        })
    }

    fn opt_string(&mut self, field: &str) -> Result<Option<String>, DecodeError> {
        Ok(if self.bool(field)? {
            Some(self.string(field)?)
        } else {
            None
        })
    }
}

/// The write methods of the keys API. GET (reads and watches) never becomes a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod {
    /// PUT: set, create, update, compareAndSwap.
    Put,
    /// POST: in-order create.
    Post,
    /// DELETE: delete, compareAndDelete.
    Delete,
}

/// The first value of parameter `name`. store/README.md §2.3: names are case-sensitive, the first
/// value wins; the HTTP layer puts body values before query values ("body beats query").
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Go's `strconv.ParseBool` (store/README.md §2.4): anything else, the empty string included, is
/// `None`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(text, 10, 64)`: ASCII digits only, no sign, no spaces.
pub fn parse_go_uint(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A boolean parameter; absent is `None`. `quoted` picks the cause style: store/README.md §2.4
/// quotes the name for plain bools (`invalid value for "recursive"`) but not for prevExist/refresh.
pub fn bool_param(
    params: &[(String, String)],
    name: &str,
    quoted: bool,
) -> Result<Option<bool>, StoreError> {
    let Some(text) = param(params, name) else {
        return Ok(None);
    };
    parse_go_bool(text).map(Some).ok_or_else(|| {
        let cause = if quoted {
            format!("invalid value for \"{name}\"")
        } else {
            format!("invalid value for {name}")
        };
        StoreError::param(ErrorCode::InvalidField, cause)
    })
}

/// An index parameter (`prevIndex`, `waitIndex`); absent and 0 are both `None` (G143).
pub fn index_param(params: &[(String, String)], name: &str) -> Result<Option<u64>, StoreError> {
    let Some(text) = param(params, name) else {
        return Ok(None);
    };
    match parse_go_uint(text) {
        Some(0) => Ok(None),
        Some(index) => Ok(Some(index)),
        None => Err(StoreError::param(
            ErrorCode::IndexNan,
            format!("invalid value for \"{name}\""),
        )),
    }
}

/// The `ttl` parameter as an absolute expiry instant: absent or empty is permanent (G9); a sign,
/// garbage or a value past `ttl::TTL_SECONDS_MAX` is 202 (G17, G103, store/README.md §7).
pub fn ttl_param(params: &[(String, String)], now_ms: u64) -> Result<Option<u64>, StoreError> {
    let text = match param(params, "ttl") {
        None | Some("") => return Ok(None),
        Some(text) => text,
    };
    parse_go_uint(text)
        .and_then(|seconds| ttl::expiry_from_ttl(now_ms, seconds))
        .map(Some)
        .ok_or_else(|| StoreError::param(ErrorCode::TtlNan, "invalid value for \"ttl\""))
}

/// The parsed, validated parameters of a write (store/README.md §4.1).
struct WriteParams {
    recursive: bool,
    dir: bool,
    prev_value: Option<String>,
    prev_index: Option<u64>,
    expire_at_ms: Option<u64>,
    prev_exist: Option<bool>,
    refresh: bool,
    value: String,
}

/// Builds the store command of a PUT, POST or DELETE on `key` from etcd-style form parameters.
///
/// Checks run in etcd's order (store/README.md §4.2): prevIndex, waitIndex, bools, wait-only-GET,
/// empty prevValue, noValueOnSuccess, ttl, prevExist, refresh, then the refresh rules and the
/// 10 MiB form limit. Parameter errors carry index 0. `noValueOnSuccess` is validated here but is
/// a rendering flag: read it with `bool_param(params, "noValueOnSuccess", true)`.
pub fn command_from_params(
    method: WriteMethod,
    key: &str,
    params: &[(String, String)],
    now_ms: u64,
) -> Result<Command, StoreError> {
    let parsed = parse_write_params(params, now_ms)?;
    let key = key::normalize(key);
    Ok(match method {
        WriteMethod::Put => put_command(key, parsed),
        WriteMethod::Post => Command::CreateInOrder {
            dir_key: key,
            dir: parsed.dir,
            value: parsed.value,
            expire_at_ms: parsed.expire_at_ms,
        },
        WriteMethod::Delete => delete_command(key, parsed),
    })
}

fn parse_write_params(params: &[(String, String)], now_ms: u64) -> Result<WriteParams, StoreError> {
    let prev_index = index_param(params, "prevIndex")?;
    index_param(params, "waitIndex")?;
    let recursive = bool_param(params, "recursive", true)?.unwrap_or(false);
    bool_param(params, "sorted", true)?;
    let wait = bool_param(params, "wait", true)?.unwrap_or(false);
    let dir = bool_param(params, "dir", true)?.unwrap_or(false);
    bool_param(params, "quorum", true)?;
    bool_param(params, "stream", true)?;
    if wait {
        let cause = "\"wait\" can only be used with GET requests";
        return Err(StoreError::param(ErrorCode::InvalidField, cause));
    }
    let prev_value = param(params, "prevValue").map(str::to_string);
    if prev_value.as_deref() == Some("") {
        let cause = "\"prevValue\" cannot be empty";
        return Err(StoreError::param(ErrorCode::PrevValueRequired, cause));
    }
    bool_param(params, "noValueOnSuccess", true)?;
    let expire_at_ms = ttl_param(params, now_ms)?;
    let prev_exist = bool_param(params, "prevExist", false)?;
    let refresh = bool_param(params, "refresh", false)?.unwrap_or(false);
    let raw_value = param(params, "value").unwrap_or("");
    if refresh && !raw_value.is_empty() {
        let cause = "A value was provided on a refresh";
        return Err(StoreError::param(ErrorCode::RefreshValue, cause));
    }
    if refresh && expire_at_ms.is_none() {
        return Err(StoreError::param(
            ErrorCode::RefreshTtlRequired,
            "No TTL value set",
        ));
    }
    let form_bytes: usize = params.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    if form_bytes > FORM_BYTES_MAX {
        // store/README.md §2.3: Go refuses form bodies over 10 MiB before etcd sees them.
        return Err(StoreError::param(
            ErrorCode::InvalidForm,
            "http: POST too large",
        ));
    }
    // store/README.md §4.1: the value is ignored when dir=true (G148).
    let value = if dir {
        String::new()
    } else {
        raw_value.to_string()
    };
    Ok(WriteParams {
        recursive,
        dir,
        prev_value,
        prev_index,
        expire_at_ms,
        prev_exist,
        refresh,
        value,
    })
}

/// The PUT decision table of store/README.md §4.3.
fn put_command(key: String, p: WriteParams) -> Command {
    let has_condition = p.prev_value.is_some() || p.prev_index.is_some();
    match p.prev_exist {
        // prevExist=false is a create; prevValue/prevIndex are ignored (G144).
        Some(false) => Command::Create {
            key,
            dir: p.dir,
            value: p.value,
            expire_at_ms: p.expire_at_ms,
        },
        Some(true) if !has_condition => Command::Update {
            key,
            value: p.value,
            expire_at_ms: p.expire_at_ms,
            refresh: p.refresh,
        },
        // With conditions prevExist=true changes nothing: compareAndSwap (G145).
        _ if has_condition => Command::CompareAndSwap {
            key,
            value: p.value,
            prev_value: p.prev_value,
            prev_index: p.prev_index,
            expire_at_ms: p.expire_at_ms,
            refresh: p.refresh,
        },
        _ => Command::Set {
            key,
            dir: p.dir,
            value: p.value,
            expire_at_ms: p.expire_at_ms,
            refresh: p.refresh,
        },
    }
}

/// The DELETE decision table of store/README.md §4.6.
fn delete_command(key: String, p: WriteParams) -> Command {
    if p.prev_value.is_some() || p.prev_index.is_some() {
        Command::CompareAndDelete {
            key,
            prev_value: p.prev_value,
            prev_index: p.prev_index,
        }
    } else {
        Command::Delete {
            key,
            dir: p.dir || p.recursive,
            recursive: p.recursive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn put(pairs: &[(&str, &str)]) -> Result<Command, StoreError> {
        command_from_params(WriteMethod::Put, "/k", &params(pairs), 1_000)
    }

    fn code(result: Result<Command, StoreError>) -> (u16, String, u64) {
        let err = result.unwrap_err();
        (err.code.number(), err.cause, err.index)
    }

    #[test]
    fn put_decision_table() {
        let set = put(&[("value", "v"), ("ttl", "20")]).unwrap();
        let expect = Command::Set {
            key: "/k".into(),
            dir: false,
            value: "v".into(),
            expire_at_ms: Some(21_000),
            refresh: false,
        };
        assert_eq!(set, expect);
        assert!(matches!(
            put(&[("prevExist", "true")]).unwrap(),
            Command::Update { .. }
        ));
        let cas = put(&[("prevExist", "true"), ("prevValue", "c")]).unwrap();
        assert!(matches!(cas, Command::CompareAndSwap { .. }), "G145");
        let create = put(&[("prevExist", "false"), ("prevValue", "zzz")]).unwrap();
        assert!(matches!(create, Command::Create { .. }), "G144");
        let cas = put(&[("prevIndex", "26")]).unwrap();
        assert!(matches!(
            cas,
            Command::CompareAndSwap {
                prev_index: Some(26),
                ..
            }
        ));
        assert!(
            matches!(put(&[("prevIndex", "0")]).unwrap(), Command::Set { .. }),
            "G143"
        );
        assert!(
            matches!(put(&[("prevexist", "false")]).unwrap(), Command::Set { .. }),
            "G146"
        );
        let dir = put(&[("dir", "true"), ("value", "ignored")]).unwrap();
        assert!(matches!(dir, Command::Set { dir: true, ref value, .. } if value.is_empty()));
    }

    #[test]
    fn delete_and_post_tables() {
        let del = |pairs: &[(&str, &str)]| {
            command_from_params(WriteMethod::Delete, "/d/", &params(pairs), 0).unwrap()
        };
        let expect = Command::Delete {
            key: "/d".into(),
            dir: true,
            recursive: true,
        };
        assert_eq!(del(&[("recursive", "true")]), expect);
        assert!(matches!(
            del(&[("prevIndex", "3")]),
            Command::CompareAndDelete { .. }
        ));
        let post = command_from_params(WriteMethod::Post, "/q", &params(&[("value", "j")]), 0);
        assert!(
            matches!(post.unwrap(), Command::CreateInOrder { ref dir_key, .. } if dir_key == "/q")
        );
    }

    #[test]
    fn parameter_errors_in_order() {
        assert_eq!(
            code(put(&[("prevValue", "")])),
            (201, "\"prevValue\" cannot be empty".into(), 0)
        );
        assert_eq!(
            code(put(&[("ttl", "abc")])),
            (202, "invalid value for \"ttl\"".into(), 0)
        );
        assert_eq!(code(put(&[("ttl", "-1")])).0, 202);
        assert_eq!(code(put(&[("ttl", "+1")])).0, 202);
        assert_eq!(code(put(&[("ttl", "18446744073709551615")])).0, 202);
        assert_eq!(
            code(put(&[("prevIndex", "abc")])).1,
            "invalid value for \"prevIndex\""
        );
        assert_eq!(code(put(&[("prevIndex", "")])).0, 203);
        assert_eq!(
            code(put(&[("recursive", "maybe")])).1,
            "invalid value for \"recursive\""
        );
        assert_eq!(code(put(&[("dir", "")])).0, 209);
        assert_eq!(
            code(put(&[("prevExist", "x")])).1,
            "invalid value for prevExist"
        );
        assert_eq!(
            code(put(&[("refresh", "x")])).1,
            "invalid value for refresh"
        );
        let wait = "\"wait\" can only be used with GET requests";
        assert_eq!(code(put(&[("wait", "true")])).1, wait);
        assert_eq!(
            code(put(&[("prevIndex", "x"), ("ttl", "x")])).0,
            203,
            "prevIndex first"
        );
        let refresh = put(&[("refresh", "true"), ("ttl", "5"), ("value", "x")]);
        assert_eq!(code(refresh).0, 211);
        assert_eq!(code(put(&[("refresh", "true")])).0, 212);
        assert_eq!(code(put(&[("refresh", "true"), ("ttl", "")])).0, 212);
        let big = "x".repeat(FORM_BYTES_MAX);
        assert_eq!(
            code(put(&[("value", big.as_str())])),
            (210, "http: POST too large".into(), 0)
        );
    }

    #[test]
    fn go_parsers() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        for bad in ["", "yes", "tRUE", " true"] {
            assert_eq!(parse_go_bool(bad), None);
        }
        assert_eq!(parse_go_uint("007"), Some(7));
        assert_eq!(parse_go_uint("18446744073709551616"), None);
        assert_eq!(parse_go_uint(" 1"), None);
    }

    #[test]
    fn encode_round_trip() {
        let cmd = Command::CompareAndSwap {
            key: "/k".into(),
            value: "<&>".into(),
            prev_value: None,
            prev_index: Some(3),
            expire_at_ms: Some(9),
            refresh: true,
        };
        assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
        assert_eq!(
            Command::decode(&Command::Expire { now_ms: 5 }.encode()).unwrap(),
            Command::Expire { now_ms: 5 }
        );
        assert!(Command::decode(b"{\"Nope\":{}}").is_err());
    }

    fn every_kind() -> Vec<Command> {
        vec![
            Command::Set {
                key: "/a/b".into(),
                dir: false,
                value: "v\u{e9}".into(),
                expire_at_ms: Some(u64::MAX),
                refresh: true,
            },
            Command::Create {
                key: "/d".into(),
                dir: true,
                value: String::new(),
                expire_at_ms: None,
            },
            Command::CreateInOrder {
                dir_key: "/q".into(),
                dir: false,
                value: "x".repeat(300),
                expire_at_ms: Some(127),
            },
            Command::Update {
                key: "/u".into(),
                value: "1".into(),
                expire_at_ms: Some(128),
                refresh: false,
            },
            Command::CompareAndSwap {
                key: "/c".into(),
                value: "new".into(),
                prev_value: Some("old".into()),
                prev_index: Some(0),
                expire_at_ms: None,
                refresh: false,
            },
            Command::Delete {
                key: "/t".into(),
                dir: true,
                recursive: true,
            },
            Command::CompareAndDelete {
                key: "/c".into(),
                prev_value: None,
                prev_index: Some(1 << 40),
            },
            Command::Expire { now_ms: 0 },
        ]
    }

    #[test]
    fn binary_encoding_round_trips_every_kind() {
        for cmd in every_kind() {
            let bytes = cmd.encode();
            assert_eq!(bytes[0], COMMAND_FORMAT);
            assert_eq!(Command::decode(&bytes).expect("decodes"), cmd);
        }
    }

    #[test]
    fn every_damaged_payload_is_a_clear_error() {
        let msg = |bytes: &[u8]| Command::decode(bytes).expect_err("refused").to_string();
        assert!(msg(br#"{"Expire":{"now_ms":5}}"#).contains("JSON"));
        assert!(msg(&[]).contains("truncated at format"));
        assert!(msg(&[9, 7, 0]).contains("format 9"));
        assert!(msg(&[COMMAND_FORMAT, 200]).contains("unknown command tag 200"));
        assert!(msg(&[COMMAND_FORMAT, DELETE, 1, b'/', 2, 0]).contains("bool byte 2"));
        assert!(msg(&[COMMAND_FORMAT, DELETE, 1, 0xff, 0, 0]).contains("not UTF-8"));
        assert!(msg(&[COMMAND_FORMAT, DELETE, 0x7f, b'/']).contains("length 127"));
        let overflow = [
            COMMAND_FORMAT,
            EXPIRE,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            2,
        ];
        assert!(msg(&overflow).contains("overflows"));
        let mut trailing = Command::Expire { now_ms: 3 }.encode();
        trailing.push(0);
        assert!(msg(&trailing).contains("1 bytes after"));
        // Every strict prefix of every command, and every single-byte change, decodes to an
        // error or to some command, never a panic.
        for cmd in every_kind() {
            let bytes = cmd.encode();
            for end in 0..bytes.len() {
                assert!(
                    Command::decode(&bytes[..end]).is_err(),
                    "{cmd:?} cut at {end}"
                );
            }
            for i in 0..bytes.len() {
                for flip in [1u8, 0x80, 0xff] {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= flip;
                    let _ = Command::decode(&damaged);
                }
            }
        }
    }
}
