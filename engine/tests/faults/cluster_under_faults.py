#!/usr/bin/env python3
"""A real 3-process floe cluster under faults, recording a client history.

Usage: cluster_under_faults.py FLOE_BIN WORKDIR SECONDS HISTORY_OUT

Several clients (threads, one keep-alive connection each, to a random member) run random etcd v2
operations on a few keys while a nemesis repeatedly SIGKILLs a random member (the leader too)
and restarts it, or SIGSTOPs and later SIGCONTs it. Afterwards every member is healed, each key is
read with quorum=true, and every acknowledged write must still be there or superseded. The whole
history is written as JSON lines in the format `sim check-history` reads; the linearizability
checker then judges it (the Rust test does that).

With FLOE_FAULT_DISK=wal (or snapshot) the nemesis instead damages a log at rest: it kills a
member under the write load, flips bytes in the middle of its WAL (or inside the snapshot record
at the WAL's start, once it has one), and restarts it; the member must repair from the others
(it does not vote until it caught up from a leader) or refuse to start with a clear message.
One member at a time: the next damage waits until all three are healthy again (the fault model:
damage at rest on a minority). FLOE_FAULT_PORT sets the first client port (peers at +10).
"""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from history_client import (T0, answer, durability_check, history, leads, now_us,  # noqa: E402
                            operation, perform, record, request)

FLOE, WORK, SECONDS, OUT = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
CLIENTS = 6
KEYS = ["/f/k%d" % i for i in range(5)]
BASE_CLIENT = int(os.environ.get("FLOE_FAULT_PORT", "27011"))
BASE_PEER = BASE_CLIENT + 10
DISK = os.environ.get("FLOE_FAULT_DISK", "")
WAL_HEADER_BYTES = 21  # the header record: 9 bytes of length, CRC and kind, then 12 of payload
NAMES = ["n1", "n2", "n3"]
IC = ",".join("%s=http://127.0.0.1:%d" % (n, BASE_PEER + i) for i, n in enumerate(NAMES))
rng = random.Random(int(os.environ.get("FLOE_FAULT_SEED", "1")))


class Member:
    def __init__(self, i):
        self.i, self.name = i, NAMES[i]
        self.port = BASE_CLIENT + i
        self.proc = None
        self.stopped = False

    def start(self):
        log = open(os.path.join(WORK, self.name + ".log"), "ab")
        self.proc = subprocess.Popen(
            [FLOE, "--name", self.name, "--data-dir", os.path.join(WORK, self.name),
             "--listen-client-urls", "http://127.0.0.1:%d" % self.port,
             "--listen-peer-urls", "http://127.0.0.1:%d" % (BASE_PEER + self.i),
             "--initial-cluster", IC,
             # Small, so that compaction, restarts from a snapshot and InstallSnapshot to a
             # member that was down all happen under the faults.
             "--snapshot-count", os.environ.get("FLOE_FAULT_SNAPSHOT_COUNT", "64")],
            stdout=log, stderr=log)
        self.stopped = False

    def kill(self):
        if self.proc:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.stopped = False


members = [Member(i) for i in range(3)]
stop = threading.Event()


def client(cid):
    r = random.Random(cid * 7919 + 1)
    conn, node = None, 0
    n = 0
    while not stop.is_set():
        if conn is None:
            node = r.randrange(3)
            conn = http.client.HTTPConnection("127.0.0.1", members[node].port, timeout=3)
        key = r.choice(KEYS)
        n += 1
        conn = perform(conn, cid, node, operation(r, key, cid, n, CLIENTS))


def leader():
    for m in members:
        if m.proc is None or m.stopped:
            continue
        if leads(m.port):
            return m
    return None


def damage(target, log):
    """Kills `target`, flips 4 bytes of its WAL at rest (the middle, or inside the snapshot
    record), restarts it; returns False if the member refused to start (with its message)."""
    target.kill()
    wal = os.path.join(WORK, target.name, "wal")
    with open(wal, "rb") as f:
        data = bytearray(f.read())
    # The record after the header is a snapshot (kind 3) once the member compacted its log.
    snap_len = int.from_bytes(data[WAL_HEADER_BYTES:WAL_HEADER_BYTES + 4], "little")
    has_snapshot = len(data) > WAL_HEADER_BYTES + 9 and data[WAL_HEADER_BYTES + 8] == 3
    if DISK == "snapshot" and has_snapshot:
        start = WAL_HEADER_BYTES + 9
        at = start + rng.randrange(max(1, snap_len - 4))
        where = "its snapshot record"
    else:
        at = len(data) // 4 + rng.randrange(max(1, len(data) // 2))
        where = "the middle of its WAL"
    for k in range(4):
        if at + k < len(data):
            data[at + k] ^= 0xff
    with open(wal, "wb") as f:
        f.write(data)
    log.append("%.1fs %s: 4 bytes flipped at byte %d of %d, in %s"
               % (time.monotonic() - T0, target.name, at, len(data), where))
    target.start()
    time.sleep(1.5)
    if target.proc.poll() is not None:
        with open(os.path.join(WORK, target.name + ".log"), errors="replace") as f:
            tail = f.read()[-400:]
        log.append("  %s refused to start: %s" % (target.name, tail.strip().splitlines()[-1]))
        DAMAGE["refused"] += 1
        return False
    DAMAGE["restarted"] += 1
    return True


DAMAGE = {"restarted": 0, "refused": 0}


def disk_nemesis(log):
    while not stop.is_set():
        time.sleep(rng.uniform(2.0, 3.0))
        if stop.is_set():
            return
        try:
            wait_healthy(20)
        except SystemExit:
            log.append("%.1fs not healthy: no new damage" % (time.monotonic() - T0))
            continue
        target = leader() if rng.random() < 0.5 else None
        if not damage(target or rng.choice(members), log):
            return


def nemesis(log):
    if DISK:
        return disk_nemesis(log)
    while not stop.is_set():
        time.sleep(rng.uniform(2.0, 4.0))
        if stop.is_set():
            return
        target = leader() if rng.random() < 0.5 else None
        target = target or rng.choice(members)
        pause = rng.uniform(1.0, 3.0)
        if rng.random() < 0.5:
            log.append("%.1fs kill -9 %s (down %.1fs)" % (time.monotonic() - T0, target.name, pause))
            target.kill()
            time.sleep(pause)
            target.start()
        else:
            log.append("%.1fs SIGSTOP %s (for %.1fs)" % (time.monotonic() - T0, target.name, pause))
            target.stopped = True
            target.proc.send_signal(signal.SIGSTOP)
            time.sleep(pause)
            target.proc.send_signal(signal.SIGCONT)
            target.stopped = False


def wait_healthy(deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        ok = 0
        for m in members:
            try:
                c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=1)
                c.request("GET", "/health")
                ok += b"true" in c.getresponse().read()
            except Exception:
                pass
        if ok == 3:
            return
        time.sleep(0.2)
    raise SystemExit("the cluster did not become healthy after healing")


def main():
    os.makedirs(WORK, exist_ok=True)
    faults = []
    try:
        for m in members:
            m.start()
        wait_healthy()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(1, CLIENTS + 1)]
        threads.append(threading.Thread(target=nemesis, args=(faults,)))
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        stop.set()
        for t in threads:
            t.join(30)
        for m in members:
            if m.proc is None:
                m.start()
            elif m.stopped:
                m.proc.send_signal(signal.SIGCONT)
        wait_healthy()
        final = {}
        conn = http.client.HTTPConnection("127.0.0.1", members[0].port, timeout=10)
        for key in KEYS:
            invoke = now_us()
            ret = answer(*request(conn, "GET", "/v2/keys" + key + "?quorum=true"))
            record(0, 1, invoke, {"f": "get", "key": key, "quorum": True}, ret)
            final[key] = ret
    finally:
        for m in members:
            m.kill()
    with open(OUT, "w") as f:
        for op in history:
            f.write(json.dumps(op) + "\n")
    counts = {}
    for op in history:
        counts[op["ret"]["r"]] = counts.get(op["ret"]["r"], 0) + 1
    print("%d operations %s; %d faults:" % (len(history), counts, len(faults)))
    for line in faults:
        print("  " + line)
    problems = durability_check(KEYS, final)
    installs = 0
    for m in members:
        with open(os.path.join(WORK, m.name + ".log"), errors="replace") as f:
            text = f.read()
        installs += text.count("installed a snapshot")
        if "panicked" in text:
            problems.append("member %s panicked (see %s.log)" % (m.name, m.name))
    print("snapshots installed from a leader: %d" % installs)
    if DISK:
        repaired = 0
        for m in members:
            with open(os.path.join(WORK, m.name + ".log"), errors="replace") as f:
                repaired += f.read().count("votes again")
        print("damaged logs: %d restarted, %d refused; recoveries ended (votes again): %d"
              % (DAMAGE["restarted"], DAMAGE["refused"], repaired))
        if DAMAGE["restarted"] + DAMAGE["refused"] == 0:
            problems.append("no damage was injected")
        if DAMAGE["refused"]:
            problems.append("a member with a damaged log refused to start though the others "
                            "could repair it")
    for p in problems:
        print("LOST: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
