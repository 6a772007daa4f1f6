#!/usr/bin/env python3
"""Time without a leader after planned leadership transfers versus after leader crashes, from
the simulator's `--json` lines (field `handovers`): count, median and p99 (nearest rank), in
simulated ms and in units of the run's minimum election timeout.

    cargo run --release -p sim -- --seeds 1..2001 --keep-going --json > runs.jsonl
    python3 sim/tools/handovers.py runs.jsonl
"""
import json
import math
import sys


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[max(1, math.ceil(p * len(values) / 100)) - 1]


def table(rows):
    print("| runs | cause | gaps (seeds with one) | median ms | p99 ms | median / election timeout | p99 / election timeout |")
    print("|---|---|---|---|---|---|---|")
    groups = [
        ("all", lambda c: True),
        ("neither PreVote nor CheckQuorum",
         lambda c: not c["settings"]["pre_vote"] and not c["settings"]["check_quorum"]),
        ("PreVote or CheckQuorum",
         lambda c: c["settings"]["pre_vote"] or c["settings"]["check_quorum"]),
    ]
    for label, keep in groups:
        picked = [r for r in rows if keep(r["config"])]
        if not picked:
            continue
        for cause, field in (("planned transfer", "transfer_us"), ("leader crash", "crash_us")):
            ms, rel, seeds = [], [], 0
            for r in picked:
                c = r["config"]
                # The node's settings: its election timeout's lower bound, in ms.
                election_ms = c["settings"]["election_ticks"] * c["settings"]["tick_ms"]
                gaps = r["handovers"][field]
                seeds += bool(gaps)
                ms += [us / 1000 for us in gaps]
                rel += [us / 1000 / election_ms for us in gaps]
            f = lambda x: "-" if x is None else f"{x:.0f}"
            g = lambda x: "-" if x is None else f"{x:.2f}"
            print(f"| {label} ({len(picked)}) | {cause} | {len(ms)} ({seeds}) | {f(pct(ms, 50))} | "
                  f"{f(pct(ms, 99))} | {g(pct(rel, 50))} | {g(pct(rel, 99))} |")
    not_done = sum(r["handovers"]["transfers_not_done"] for r in rows)
    failed = sum(not r["ok"] for r in rows)
    print(f"\n{len(rows)} runs, {failed} failed; {not_done} transfers gave up or were refused "
          "(not counted above).")


if __name__ == "__main__":
    rows = []
    for path in sys.argv[1:]:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    table(rows)
