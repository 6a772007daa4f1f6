//! Sweeps over many seeds: on every core of one machine (`--jobs`), split across machines
//! (`--shard K/N`), and the merge of the shards' `--json` lines (`merge-results`).
//!
//! Parallel runs change nothing a serial run would show: results are emitted in seed order, and
//! the stop at the first failure stops at the same seed (a failure found out of order only
//! keeps later seeds from starting; earlier ones still run and are emitted first).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// One shard of a sweep: `K/N`, `K` from 1 to `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` (1 ≤ K ≤ N).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, got {text:?}"))?;
        let index: u64 = k
            .trim()
            .parse()
            .map_err(|e| format!("bad shard {k:?}: {e}"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|e| format!("bad shard count {n:?}: {e}"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {text:?}: need 1 <= K <= N"));
        }
        Ok(Shard { index, count })
    }

    /// The seeds of `range` this shard runs: every `count`-th, starting at the `index`-th, so
    /// that the shards split the range exactly and the slow seeds spread evenly.
    pub fn seeds(&self, range: Range<u64>) -> Vec<u64> {
        range
            .skip((self.index - 1) as usize)
            .step_by(self.count as usize)
            .collect()
    }
}

/// The number of jobs when `--jobs` is not given: every core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on every seed with up to `jobs` threads and hands each result to `emit` in the
/// order of `seeds`. Once `stop` holds for a result, no seed after it starts, and `emit` gets
/// nothing after it: exactly what a serial loop that breaks there would do.
pub fn run_ordered<T, W, S, E>(seeds: &[u64], jobs: usize, work: W, stop: S, mut emit: E)
where
    T: Send,
    W: Fn(u64) -> T + Sync,
    S: Fn(&T) -> bool + Sync,
    E: FnMut(u64, T),
{
    let jobs = jobs.clamp(1, seeds.len().max(1));
    if jobs == 1 {
        for &seed in seeds {
            let t = work(seed);
            let halt = stop(&t);
            emit(seed, t);
            if halt {
                return;
            }
        }
        return;
    }
    let next = AtomicUsize::new(0);
    // The position of the earliest result that stops the sweep (`usize::MAX`: none yet).
    let limit = Mutex::new(usize::MAX);
    let (tx, rx) = mpsc::channel::<(usize, T)>();
    #[allow(clippy::disallowed_methods)] // Outside the simulation: each thread runs whole seeds.
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, limit, work, stop) = (&next, &limit, &work, &stop);
            scope.spawn(move || {
                loop {
                    let position = next.fetch_add(1, Ordering::SeqCst);
                    let bound = *limit.lock().expect("no thread panics holding it");
                    if position >= seeds.len() || position > bound {
                        break;
                    }
                    let t = work(seeds[position]);
                    if stop(&t) {
                        let mut bound = limit.lock().expect("no thread panics holding it");
                        *bound = (*bound).min(position);
                    }
                    if tx.send((position, t)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, T> = BTreeMap::new();
        let mut due = 0;
        for (position, t) in rx {
            waiting.insert(position, t);
            while let Some(t) = waiting.remove(&due) {
                let halt = stop(&t);
                emit(seeds[due], t);
                due += 1;
                if halt {
                    // Later results are dropped; the workers see the limit and stop.
                    return;
                }
            }
        }
    });
}

/// What `merge-results` found in the shards' `--json` lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Seeds seen, each once.
    pub seeds: u64,
    /// Seeds that passed.
    pub passed: u64,
    /// Failing seeds with their broken rule.
    pub failed: Vec<(u64, String)>,
    /// Seeds that appear more than once.
    pub duplicated: Vec<u64>,
    /// Seeds of the expected range that appear nowhere.
    pub missing: Vec<u64>,
}

impl Merged {
    /// True when every seed passed, once, and (given a range) none is missing.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.duplicated.is_empty() && self.missing.is_empty()
    }
}

/// Merges `--json` lines (`(source, text)` per file): one object a line with at least `seed`
/// and `ok`. An unreadable line is an error naming its file and line.
pub fn merge(files: &[(String, String)], range: Option<Range<u64>>) -> Result<Merged, String> {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let mut merged = Merged::default();
    for (source, text) in files {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{source}:{}", n + 1);
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{}: not JSON: {e}", at()))?;
            let seed = value["seed"]
                .as_u64()
                .ok_or_else(|| format!("{}: no \"seed\"", at()))?;
            let ok = value["ok"]
                .as_bool()
                .ok_or_else(|| format!("{}: no \"ok\"", at()))?;
            let count = seen.entry(seed).or_default();
            *count += 1;
            if *count > 1 {
                if *count == 2 {
                    merged.duplicated.push(seed);
                }
                continue;
            }
            merged.seeds += 1;
            if ok {
                merged.passed += 1;
            } else {
                let rule = value["violation"]["rule"]
                    .as_str()
                    .unwrap_or("unknown rule")
                    .to_string();
                merged.failed.push((seed, rule));
            }
        }
    }
    if let Some(range) = range {
        merged.missing = range.filter(|s| !seen.contains_key(s)).collect();
    }
    merged.failed.sort();
    merged.duplicated.sort();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_a_range_exactly() {
        let mut all: Vec<u64> = (1..=4)
            .flat_map(|k| Shard { index: k, count: 4 }.seeds(10..33))
            .collect();
        all.sort();
        assert_eq!(all, (10..33).collect::<Vec<_>>());
        assert_eq!(Shard::parse("2/4").unwrap().seeds(0..9), vec![1, 5]);
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parallel_runs_emit_what_a_serial_run_does() {
        let seeds: Vec<u64> = (1..200).collect();
        // A seed "fails" when divisible by 37; a later seed is slower, so results arrive out
        // of order.
        let work = |s: u64| {
            let mut x = s;
            for _ in 0..(200 - s) * 100 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            }
            (s, x)
        };
        let stop = |t: &(u64, u64)| t.0.is_multiple_of(37);
        for (jobs, halt) in [(1, true), (4, true), (4, false), (8, false)] {
            let mut serial = Vec::new();
            run_ordered(
                &seeds,
                1,
                work,
                |t| halt && stop(t),
                |s, t| serial.push((s, t)),
            );
            let mut parallel = Vec::new();
            run_ordered(
                &seeds,
                jobs,
                work,
                |t| halt && stop(t),
                |s, t| parallel.push((s, t)),
            );
            assert_eq!(serial, parallel, "jobs {jobs}");
            let last = parallel.last().unwrap().0;
            assert_eq!(last, if halt { 37 } else { 199 });
        }
    }

    #[test]
    fn merge_finds_failures_duplicates_and_gaps() {
        let a = (
            "a".to_string(),
            "{\"seed\":1,\"ok\":true}\n{\"seed\":3,\"ok\":false,\"violation\":{\"rule\":\"x\"}}\n"
                .to_string(),
        );
        let b = (
            "b".to_string(),
            "{\"seed\":2,\"ok\":true}\n{\"seed\":1,\"ok\":true}\n".to_string(),
        );
        let merged = merge(&[a.clone(), b], Some(1..5)).unwrap();
        assert_eq!(merged.seeds, 3);
        assert_eq!(merged.passed, 2);
        assert_eq!(merged.failed, vec![(3, "x".to_string())]);
        assert_eq!(merged.duplicated, vec![1]);
        assert_eq!(merged.missing, vec![4]);
        assert!(!merged.ok());
        let bad = ("c".to_string(), "{\"seed\":1}\n".to_string());
        assert_eq!(merge(&[bad], None).unwrap_err(), "c:1: no \"ok\"");
        let clean = merge(
            &[("a".into(), "{\"seed\":1,\"ok\":true}".into())],
            Some(1..2),
        )
        .unwrap();
        assert!(clean.ok());
    }
}
