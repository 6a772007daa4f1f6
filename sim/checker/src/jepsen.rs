//! Histories recorded by others: Jepsen/Knossos client logs of a single register with read,
//! write and compare-and-set, judged with a register model that needs no indexes.
//!
//! **Input.** One event a line, as Jepsen's `jepsen.util` logger writes them:
//! `<prefix> - <process> <type> <f> <value>`, fields separated by tabs or spaces, where `type`
//! is `:invoke`, `:ok`, `:fail` or `:info`, `f` is `:read`, `:write` or `:cas`, and `value` is
//! `nil`, an integer, `[from to]` (a cas) or `:timed-out`. Blank lines are skipped; any other
//! line, a completion without an open invocation, or a second invocation on a process that has
//! one open makes the history unreadable ([`JepsenError`]).
//!
//! **Meaning.**
//! - `:ok` — the operation took effect once between its invocation and its completion, and a
//!   read returned the value shown (`nil`: the register was never written);
//! - `:fail` of a cas — it took effect and found a value other than `from` (so it wrote
//!   nothing); `:fail` of a read or write — it did nothing (a read timing out is dropped);
//! - `:info`, or an invocation with no completion at all — it may have taken effect at any time
//!   after its invocation, or never: such an operation never returns.
//!
//! Lines are the time base: an event's line number orders it against every other event, which is
//! what a single logger gives (real-time order of invocations and completions).

use super::linearizability::{Budget, Event, Model, Search, search};

/// A register's value: `None` until the first write (Jepsen's `nil`).
pub type Value = Option<i64>;

/// One operation's call and answer, as the register model reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned the value.
    Read(Value),
    /// A write of the value.
    Write(i64),
    /// A compare-and-set from `from` to `to`; `swapped`: `Some(true)` it found `from` and wrote
    /// `to`, `Some(false)` it found another value, `None` unknown (it never returned).
    Cas {
        /// The value it expects.
        from: i64,
        /// The value it writes if it finds `from`.
        to: i64,
        /// What it answered, if it did.
        swapped: Option<bool>,
    },
}

/// The sequential specification of a register with compare-and-set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

impl Model for Register {
    type Input = RegisterOp;
    type State = Value;

    fn init(&self) -> Value {
        None
    }

    fn step(&self, state: &Value, input: &RegisterOp, next: &mut Vec<Value>) {
        match *input {
            RegisterOp::Read(seen) => {
                if seen == *state {
                    next.push(*state);
                }
            }
            RegisterOp::Write(value) => next.push(Some(value)),
            RegisterOp::Cas { from, to, swapped } => {
                let found = *state == Some(from);
                match swapped {
                    Some(true) if found => next.push(Some(to)),
                    Some(false) if !found => next.push(*state),
                    None => next.push(if found { Some(to) } else { *state }),
                    _ => {}
                }
            }
        }
    }

    fn is_read_only(&self, input: &RegisterOp) -> bool {
        matches!(input, RegisterOp::Read(_))
    }
}

/// Why a log could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JepsenError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub detail: String,
}

impl std::fmt::Display for JepsenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.detail)
    }
}

impl std::error::Error for JepsenError {}

/// An operation's function, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Read,
    Write,
    Cas,
}

/// A logged value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Logged {
    Nil,
    Int(i64),
    Pair(i64, i64),
    TimedOut,
}

/// An invocation still waiting for its completion.
struct Open {
    id: u64,
    line: usize,
    func: Func,
    value: Logged,
}

/// Reads a Jepsen register log into events for [`Register`] (ids: the invocation's line).
pub fn parse(text: &str) -> Result<Vec<Event<RegisterOp>>, JepsenError> {
    let mut open: std::collections::BTreeMap<String, Open> = Default::default();
    let mut events = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let fail = |detail: String| JepsenError { line, detail };
        if raw.trim().is_empty() {
            continue;
        }
        let body = match raw.split_once(" - ") {
            Some((_, body)) => body,
            None => raw,
        };
        let mut words = body.split_whitespace();
        let (Some(process), Some(kind), Some(func)) = (words.next(), words.next(), words.next())
        else {
            return Err(fail(format!(
                "expected `process type f value`, found {raw:?}"
            )));
        };
        let value = words.collect::<Vec<_>>().join(" ");
        let func = match func {
            ":read" => Func::Read,
            ":write" => Func::Write,
            ":cas" => Func::Cas,
            other => return Err(fail(format!("unknown function {other:?}"))),
        };
        let value = parse_value(&value).map_err(fail)?;
        let at = line as u64;
        match kind {
            ":invoke" => {
                check_invocation(func, value).map_err(fail)?;
                let previous = open.insert(
                    process.to_string(),
                    Open {
                        id: at,
                        line,
                        func,
                        value,
                    },
                );
                if let Some(previous) = previous {
                    return Err(fail(format!(
                        "process {process} invokes again while its call of line {} is open",
                        previous.line
                    )));
                }
            }
            ":ok" | ":fail" | ":info" => {
                let Some(call) = open.remove(process) else {
                    return Err(fail(format!(
                        "process {process} completes nothing it invoked"
                    )));
                };
                if call.func != func {
                    return Err(fail(format!(
                        "process {process} completes {func:?}, but invoked {:?} (line {})",
                        call.func, call.line
                    )));
                }
                if let Some(event) = complete(&call, kind, value, at).map_err(fail)? {
                    events.push(event);
                }
            }
            other => return Err(fail(format!("unknown event type {other:?}"))),
        }
    }
    // Calls the log never completes may or may not have taken effect.
    for call in open.into_values() {
        if let Some(event) =
            complete(&call, ":info", Logged::TimedOut, 0).map_err(|detail| JepsenError {
                line: call.line,
                detail,
            })?
        {
            events.push(event);
        }
    }
    events.sort_by_key(|e| e.id);
    Ok(events)
}

fn parse_value(text: &str) -> Result<Logged, String> {
    let int = |t: &str| {
        t.parse::<i64>()
            .map_err(|_| format!("{t:?} is not an integer"))
    };
    match text {
        "nil" => Ok(Logged::Nil),
        ":timed-out" => Ok(Logged::TimedOut),
        _ if text.starts_with('[') && text.ends_with(']') => {
            let inner: Vec<&str> = text[1..text.len() - 1].split_whitespace().collect();
            match inner[..] {
                [a, b] => Ok(Logged::Pair(int(a)?, int(b)?)),
                _ => Err(format!("{text:?}: a cas takes [from to]")),
            }
        }
        _ => int(text).map(Logged::Int),
    }
}

/// Checks that an invocation's value fits its function.
fn check_invocation(func: Func, value: Logged) -> Result<(), String> {
    let fits = match func {
        Func::Read => matches!(value, Logged::Nil),
        Func::Write => matches!(value, Logged::Int(_)),
        Func::Cas => matches!(value, Logged::Pair(..)),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{value:?} is not a value for {func:?}"))
    }
}

/// The event of `call` completed by `kind` with `value` at line `at` (`None`: dropped, as a read
/// that returned nothing).
fn complete(
    call: &Open,
    kind: &str,
    value: Logged,
    at: u64,
) -> Result<Option<Event<RegisterOp>>, String> {
    let returned = |input| {
        Some(Event {
            id: call.id,
            invoke_us: call.id,
            complete_us: Some(at),
            input,
            chain: None,
        })
    };
    let pending = |input| {
        Some(Event {
            id: call.id,
            invoke_us: call.id,
            complete_us: None,
            input,
            chain: None,
        })
    };
    let written = |v: Logged| match v {
        Logged::Int(v) => Ok(v),
        _ => Err(format!("{v:?} is not a value for a write")),
    };
    Ok(match (call.func, kind) {
        (Func::Read, ":ok") => match value {
            Logged::Nil => returned(RegisterOp::Read(None)),
            Logged::Int(v) => returned(RegisterOp::Read(Some(v))),
            other => return Err(format!("a read returned {other:?}")),
        },
        // A read that failed or timed out saw nothing and changed nothing.
        (Func::Read, _) => None,
        (Func::Write, ":ok") => returned(RegisterOp::Write(written(call.value)?)),
        (Func::Write, ":fail") => None,
        (Func::Write, _) => pending(RegisterOp::Write(written(call.value)?)),
        (Func::Cas, kind) => {
            let Logged::Pair(from, to) = call.value else {
                return Err(format!("{:?} is not a value for a cas", call.value));
            };
            let cas = |swapped| RegisterOp::Cas { from, to, swapped };
            match (kind, value) {
                (":ok", _) => returned(cas(Some(true))),
                (":fail", Logged::TimedOut) | (":info", _) => pending(cas(None)),
                (":fail", _) => returned(cas(Some(false))),
                _ => return Err(format!("unknown event type {kind:?}")),
            }
        }
    })
}

/// Parses and judges a Jepsen register log.
pub fn check(text: &str, budget: Budget<'_>) -> Result<Search, JepsenError> {
    let events = parse(text)?;
    Ok(search(&Register, &events, budget))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::Verdict;

    fn verdict(log: &str) -> Verdict {
        check(log, Budget::UNLIMITED).unwrap().verdict
    }

    #[test]
    fn a_read_after_a_write_must_see_it() {
        let good = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read 1\n";
        assert_eq!(verdict(good), Verdict::Linearizable);
        let bad = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read nil\n";
        assert_eq!(verdict(bad), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        let log = "0 :invoke :write 1\n1 :invoke :read nil\n1 :ok :read nil\n0 :ok :write 1\n";
        assert_eq!(verdict(log), Verdict::Linearizable);
    }

    #[test]
    fn an_info_write_may_or_may_not_happen() {
        let seen = "0 :invoke :write 7\n0 :info :write :timed-out\n1 :invoke :read nil\n\
                    1 :ok :read 7\n2 :invoke :read nil\n2 :ok :read 7\n";
        assert_eq!(verdict(seen), Verdict::Linearizable);
        let unseen = "0 :invoke :write 7\n0 :info :write :timed-out\n1 :invoke :read nil\n\
                      1 :ok :read nil\n";
        assert_eq!(verdict(unseen), Verdict::Linearizable);
        // Once seen, a lost write cannot be unseen.
        let flicker = "0 :invoke :write 7\n0 :info :write :timed-out\n1 :invoke :read nil\n\
                       1 :ok :read 7\n2 :invoke :read nil\n2 :ok :read nil\n";
        assert_eq!(verdict(flicker), Verdict::NotLinearizable);
    }

    #[test]
    fn a_failed_cas_saw_another_value_and_wrote_nothing() {
        let log = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :cas [1 2]\n1 :fail :cas [1 2]\n";
        assert_eq!(verdict(log), Verdict::NotLinearizable);
        let log = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :cas [3 2]\n1 :fail :cas [3 2]\n\
                   2 :invoke :read nil\n2 :ok :read 1\n";
        assert_eq!(verdict(log), Verdict::Linearizable);
        let log = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :cas [1 2]\n1 :ok :cas [1 2]\n\
                   2 :invoke :read nil\n2 :ok :read 1\n";
        assert_eq!(verdict(log), Verdict::NotLinearizable);
    }

    #[test]
    fn jepsen_prefixes_tabs_and_spaces_are_read() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:cas\t[0 4]\nINFO  jepsen.util - 0   :fail   :cas    [0 4]\n";
        let events = parse(log).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].input,
            RegisterOp::Cas {
                from: 0,
                to: 4,
                swapped: Some(false)
            }
        );
    }

    #[test]
    fn malformed_logs_are_refused_with_the_line() {
        for (log, line) in [
            ("0 :invoke :read nil\n0 :invoke :read nil\n", 2),
            ("0 :ok :read 1\n", 1),
            ("0 :invoke :frob nil\n", 1),
            ("0 :invoke :write x\n", 1),
            ("0 :invoke :cas [1]\n", 1),
            ("just words\n", 1),
            ("0 :invoke :write 1\n0 :ok :read 1\n", 2),
        ] {
            let err = parse(log).unwrap_err();
            assert_eq!(err.line, line, "{log:?}: {err}");
        }
    }
}
