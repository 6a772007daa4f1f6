#!/usr/bin/env python3
"""What a sweep of seeds ran, from `sim --seeds A..B --keep-going --json` output.

    cargo run --release -p sim -- --seeds 100000..101000 --keep-going --json > runs.jsonl
    python3 sim/tools/coverage.py runs.jsonl

Prints a Markdown summary: runs and failures, the share run with floe's exact configuration,
HTTP requests per seed, the request shapes drawn (the union and per seed), faults by kind
(clock and aimed faults among them), membership changes, and acknowledged write latency at
the leader and through a follower (simulated time).
"""
import json
import statistics
import sys


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    rank = max(1, -(-p * len(values) // 100))
    return values[rank - 1]


def main(path):
    runs = [json.loads(line) for line in open(path) if line.startswith("{")]
    n = len(runs)
    failed = [r["seed"] for r in runs if not r["ok"]]
    production = sum(1 for r in runs if r["config"].get("production"))
    http = [r.get("http_requests", 0) for r in runs]
    union, per_seed, totals = set(), [], {}
    for r in runs:
        drawn = {k for k, v in r["request_shapes"].items() if v > 0}
        union |= drawn
        per_seed.append(len(drawn))
        for k, v in r["request_shapes"].items():
            totals[k] = totals.get(k, 0) + v
    faults = {}
    for r in runs:
        for k, v in r["faults_by_kind"].items():
            faults[k] = faults.get(k, 0) + v
    seeds_with = {k: sum(1 for r in runs if r["faults_by_kind"].get(k, 0) > 0) for k in faults}
    reconf = [r.get("reconfigurations", 0) for r in runs]
    lat = {"at_leader": ([], []), "at_follower": ([], [])}
    for r in runs:
        for side in lat:
            s = r.get("write_latency", {}).get(side, {})
            if s.get("p50_us") is not None:
                lat[side][0].append(s["p50_us"] / 1000)
                lat[side][1].append(s["p99_us"] / 1000)
    seeds = f"{runs[0]['seed']}..{runs[-1]['seed'] + 1}" if runs else "-"
    print(f"Seeds {seeds}: {n} runs, {n - len(failed)} passed, {len(failed)} failed"
          + (f" ({failed[:10]})" if failed else "") + ".\n")
    print(f"- floe's exact configuration (`config.production`): {production} of {n} "
          f"({100 * production / max(n, 1):.1f}%)")
    print(f"- HTTP requests per seed: median {statistics.median(http):.0f}, "
          f"min {min(http)}, max {max(http)}, total {sum(http)}")
    print(f"- request shapes drawn: {len(union)} in all; per seed median "
          f"{statistics.median(per_seed):.0f}, min {min(per_seed)}")
    print(f"- membership changes asked: {sum(reconf)} in {sum(1 for x in reconf if x)} seeds\n")
    print("| request shape | requests |\n|---|---:|")
    for k in sorted(totals):
        print(f"| `{k}` | {totals[k]} |")
    print("\n| fault kind | injected | seeds with one |\n|---|---:|---:|")
    for k in sorted(faults):
        print(f"| `{k}` | {faults[k]} | {seeds_with[k]} |")
    print("\nAcknowledged writes, per seed's median and p99 (ms of simulated time), then the "
          "median of those over seeds:\n")
    print("| sent to | seeds | median of p50 | median of p99 |\n|---|---:|---:|---:|")
    for side, label in (("at_leader", "the leader"), ("at_follower", "a follower")):
        p50s, p99s = lat[side]
        if p50s:
            print(f"| {label} | {len(p50s)} | {statistics.median(p50s):.1f} | "
                  f"{statistics.median(p99s):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
