//! Histories as JSON lines: one `Op` per line, in any order, as `sim check-history FILE` reads
//! them. Reading never panics: each problem is reported with its 1-based line number.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufWriter, Write};

use serde_json::error::Category;

use super::history::Op;

/// Writes `ops` as JSON lines (one `Op` per line, each ending in a newline).
pub fn write_jsonl(ops: &[Op], w: impl Write) -> io::Result<()> {
    let mut w = BufWriter::new(w);
    for op in ops {
        serde_json::to_writer(&mut w, op)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Reads a history written as JSON lines. Blank lines are skipped. The last line may lack its
/// newline only if it is a whole record.
pub fn read_jsonl(text: &str) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    let mut first_line_of_id: BTreeMap<u64, usize> = BTreeMap::new();
    let mut lines = text.split_inclusive('\n').peekable();
    let mut line = 0;
    while let Some(raw) = lines.next() {
        line += 1;
        let record = raw.trim();
        if record.is_empty() {
            continue;
        }
        let last_unterminated = lines.peek().is_none() && !raw.ends_with('\n');
        let op: Op = serde_json::from_str(record).map_err(|e| HistoryError {
            line,
            problem: Problem::from_json(&e, last_unterminated),
        })?;
        if op.complete_us < op.invoke_us {
            return Err(HistoryError {
                line,
                problem: Problem::CompleteBeforeInvoke {
                    invoke_us: op.invoke_us,
                    complete_us: op.complete_us,
                },
            });
        }
        if let Some(&first_line) = first_line_of_id.get(&op.id) {
            return Err(HistoryError {
                line,
                problem: Problem::DuplicateId {
                    id: op.id,
                    first_line,
                },
            });
        }
        first_line_of_id.insert(op.id, line);
        ops.push(op);
    }
    Ok(ops)
}

/// A history file that cannot be read, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a line of a history file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not JSON (the parser's message).
    Malformed(String),
    /// A required field is missing (its name).
    MissingField(String),
    /// A field has the wrong type or an impossible value, or a tag names no call or answer
    /// (the parser's message).
    WrongType(String),
    /// The last line ends in the middle of a record: the file was cut short.
    Truncated,
    /// Another line already has this id.
    DuplicateId {
        /// The id.
        id: u64,
        /// The line that has it first.
        first_line: usize,
    },
    /// The operation completed before it was invoked.
    CompleteBeforeInvoke {
        /// Its `invoke_us`.
        invoke_us: u64,
        /// Its `complete_us`.
        complete_us: u64,
    },
}

impl Problem {
    fn from_json(e: &serde_json::Error, last_unterminated: bool) -> Problem {
        match e.classify() {
            Category::Eof if last_unterminated => Problem::Truncated,
            Category::Data => {
                let message = e.to_string();
                match message.strip_prefix("missing field `") {
                    Some(rest) => {
                        Problem::MissingField(rest.split('`').next().unwrap_or("").to_string())
                    }
                    None => Problem::WrongType(message),
                }
            }
            Category::Eof | Category::Syntax | Category::Io => Problem::Malformed(e.to_string()),
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.problem {
            Problem::Malformed(message) => write!(f, "malformed JSON: {message}"),
            Problem::MissingField(field) => write!(f, "missing field `{field}`"),
            Problem::WrongType(message) => write!(f, "wrong type: {message}"),
            Problem::Truncated => write!(f, "truncated record (the file was cut short)"),
            Problem::DuplicateId { id, first_line } => {
                write!(f, "duplicate id {id} (first on line {first_line})")
            }
            Problem::CompleteBeforeInvoke {
                invoke_us,
                complete_us,
            } => write!(f, "complete_us {complete_us} < invoke_us {invoke_us}"),
        }
    }
}

impl std::error::Error for HistoryError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Ret};

    fn sample() -> Vec<Op> {
        vec![
            Op {
                id: 1,
                client: 3,
                node: 2,
                invoke_us: 10,
                complete_us: 20,
                call: Call::Cas {
                    key: "/k".into(),
                    value: "b".into(),
                    prev_value: Some("a".into()),
                    prev_index: None,
                },
                ret: Ret::Ok {
                    index: 7,
                    action: "compareAndSwap".into(),
                    key: "/k".into(),
                    value: Some("b".into()),
                    modified_index: 7,
                },
            },
            Op {
                id: 2,
                client: 4,
                node: 0,
                invoke_us: 15,
                complete_us: 1_000,
                call: Call::Set {
                    key: "/t".into(),
                    value: "x".into(),
                    expire_at_us: Some(5_000),
                },
                ret: Ret::Unknown,
            },
            Op {
                id: 3,
                client: 5,
                node: 1,
                invoke_us: 30,
                complete_us: 40,
                call: Call::Get {
                    key: "/k".into(),
                    quorum: true,
                },
                ret: Ret::Err { code: 100 },
            },
        ]
    }

    fn text(ops: &[Op]) -> String {
        let mut out = Vec::new();
        write_jsonl(ops, &mut out).expect("writing to a Vec");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    fn problem(text: &str) -> (usize, Problem) {
        let e = read_jsonl(text).expect_err("the text is bad");
        (e.line, e.problem)
    }

    #[test]
    fn round_trip() {
        let ops = sample();
        let written = text(&ops);
        assert_eq!(written.lines().count(), 3);
        assert_eq!(read_jsonl(&written), Ok(ops));
    }

    #[test]
    fn blank_lines_and_missing_final_newline_are_accepted() {
        let ops = sample();
        let written = text(&ops).replace('\n', "\n\n");
        assert_eq!(read_jsonl(written.trim_end()), Ok(ops));
        assert_eq!(read_jsonl(""), Ok(Vec::new()));
    }

    #[test]
    fn malformed_json_names_its_line() {
        let bad = format!("{}not json\n", text(&sample()[..1]));
        assert!(matches!(problem(&bad), (2, Problem::Malformed(_))));
        let unclosed_inside = format!("{{\"id\": 1,\n{}", text(&sample()[1..]));
        assert!(matches!(
            problem(&unclosed_inside),
            (1, Problem::Malformed(_))
        ));
    }

    #[test]
    fn missing_field_is_named() {
        let line = text(&sample()[..1]).replace("\"client\":3,", "");
        assert_eq!(problem(&line), (1, Problem::MissingField("client".into())));
        let untagged = text(&sample()[..1]).replace("\"r\":\"ok\",", "");
        assert_eq!(problem(&untagged), (1, Problem::MissingField("r".into())));
    }

    #[test]
    fn wrong_type_is_reported() {
        let line = text(&sample()[..1]).replace("\"invoke_us\":10", "\"invoke_us\":\"10\"");
        assert!(matches!(problem(&line), (1, Problem::WrongType(_))));
        let negative = text(&sample()[..1]).replace("\"invoke_us\":10", "\"invoke_us\":-1");
        assert!(matches!(problem(&negative), (1, Problem::WrongType(_))));
        let unknown_call = text(&sample()[..1]).replace("\"f\":\"cas\"", "\"f\":\"frobnicate\"");
        assert!(matches!(problem(&unknown_call), (1, Problem::WrongType(_))));
    }

    #[test]
    fn truncated_last_line_is_reported() {
        let whole = text(&sample());
        for cut in [whole.len() - 10, whole.len() - 2] {
            assert_eq!(
                problem(&whole[..cut]),
                (3, Problem::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn duplicate_id_is_reported_with_both_lines() {
        let mut ops = sample();
        ops[2].id = 1;
        let problem = problem(&text(&ops));
        assert_eq!(
            problem,
            (
                3,
                Problem::DuplicateId {
                    id: 1,
                    first_line: 1
                }
            )
        );
    }

    #[test]
    fn completion_before_invocation_is_reported() {
        let mut ops = sample();
        ops[1].complete_us = 5;
        let problem = problem(&text(&ops));
        assert_eq!(
            problem,
            (
                2,
                Problem::CompleteBeforeInvoke {
                    invoke_us: 15,
                    complete_us: 5
                }
            )
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for bad in [
            "{",
            "}",
            "[]",
            "null",
            "\"x\"",
            "{\"id\":1e400}",
            "\u{0}",
            "{\"f\":1}\n{",
        ] {
            assert!(read_jsonl(bad).is_err(), "{bad:?}");
        }
    }
}
