#!/usr/bin/env python3
"""A real floe cluster reconfigured under write load, recording a client history.

Usage: cluster_reconfig.py FLOE_BIN WORKDIR SECONDS HISTORY_OUT

Three members n1..n3 start; client threads (one keep-alive connection each, to a member that
serves) run random etcd v2 operations on a few keys. Meanwhile, through the members API:
n4 is added as a learner (POST /v2/members, "isLearner": true), started with
--initial-cluster-state existing, and promoted (POST /v2/members/<id>/promote); an original
member that does not lead is removed (DELETE /v2/members/<id>), and must exit by itself saying it
was removed; then the leader is replaced: it is asked to remove itself (it hands over its
leadership first, then exits), and n5 is added as a voter and started. Afterwards every key is
read with quorum=true and every acknowledged write must be there or superseded. The history is
written as JSON lines for the checkers (the Rust test runs them).
"""
import http.client
import json
import os
import random
import sys
import subprocess
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from history_client import (T0, answer, durability_check, history, leads, now_us,  # noqa: E402
                            operation, perform, record, request)

FLOE, WORK, SECONDS, OUT = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
CLIENTS = 6
KEYS = ["/m/k%d" % i for i in range(5)]
BASE_CLIENT, BASE_PEER = 27811, 27821


def peer_url(i):
    return "http://127.0.0.1:%d" % (BASE_PEER + i)


class Member:
    def __init__(self, i):
        self.i, self.name = i, "n%d" % (i + 1)
        self.port = BASE_CLIENT + i
        self.proc = None

    def start(self, cluster, state):
        log = open(os.path.join(WORK, self.name + ".log"), "ab")
        ic = ",".join("%s=%s" % (m.name, peer_url(m.i)) for m in cluster)
        self.proc = subprocess.Popen(
            [FLOE, "--name", self.name, "--data-dir", os.path.join(WORK, self.name),
             "--listen-client-urls", "http://127.0.0.1:%d" % self.port,
             "--listen-peer-urls", peer_url(self.i),
             "--initial-cluster", ic, "--initial-cluster-state", state,
             "--snapshot-count", "200"],
            stdout=log, stderr=log)

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


members = [Member(i) for i in range(5)]
serving = members[:3]
serving_lock = threading.Lock()
stop = threading.Event()


def members_call(port, method, path, doc=None):
    """A members API request, following redirects to the leader; (status, body)."""
    for _ in range(5):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps(doc) if doc is not None else None
        headers = {"Content-Type": "application/json"} if doc is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status == 307:
            port = urllib.parse.urlparse(r.getheader("Location")).port
            continue
        return r.status, data
    raise SystemExit("too many redirects for %s %s" % (method, path))


def member_id(port, name_or_url):
    _, data = members_call(port, "GET", "/v2/members")
    for m in json.loads(data)["members"]:
        if m["name"] == name_or_url or name_or_url in m["peerURLs"]:
            return m["id"]
    raise SystemExit("no member %s" % name_or_url)


def healthy(m):
    try:
        c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=1)
        c.request("GET", "/health")
        return b"true" in c.getresponse().read()
    except Exception:
        return False


def wait_for(what, pred, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


def leader(candidates):
    for m in candidates:
        if leads(m.port):
            return m
    return None


def removed_exits(m, log):
    """`m` was removed: it must stop by itself, non-zero, saying so."""
    wait_for(m.name + " to exit after its removal", lambda: m.proc.poll() is not None, 20)
    code = m.proc.returncode
    m.proc = None
    with open(os.path.join(WORK, m.name + ".log"), errors="replace") as f:
        said = "permanently removed from the cluster" in f.read()
    log.append("%.1fs %s exited with status %d%s" % (time.monotonic() - T0, m.name, code,
               ", saying it was removed" if said else ""))
    if code == 0 or not said:
        raise SystemExit("%s did not exit as a removed member (status %d)" % (m.name, code))


def reconfigure(log, errors):
    try:
        steps(log)
    except BaseException as e:  # noqa: BLE001 (reported by main)
        errors.append(str(e))


def steps(log):
    def note(text):
        log.append("%.1fs %s" % (time.monotonic() - T0, text))

    time.sleep(2)
    n1, n2, n3, n4, n5 = members
    st, body = members_call(n1.port, "POST", "/v2/members",
                            {"peerURLs": [peer_url(n4.i)], "isLearner": True})
    note("POST /v2/members n4 as learner: %d %s" % (st, body.strip().decode()))
    assert st == 201, body
    n4_id = json.loads(body)["id"]
    n4.start([n1, n2, n3, n4], "existing")
    wait_for("n4 healthy", lambda: healthy(n4))
    with serving_lock:
        serving.append(n4)
    time.sleep(1)
    for _ in range(100):
        st, body = members_call(n2.port, "POST", "/v2/members/%s/promote" % n4_id)
        if st != 409:
            break
        time.sleep(0.2)
    note("promote n4: %d" % st)
    assert st == 200, body
    time.sleep(2)
    lead = leader([n1, n2, n3])
    victim = next(m for m in (n1, n2, n3) if m is not lead)
    with serving_lock:
        serving.remove(victim)
    victim_id = member_id(n4.port, victim.name)
    st, body = members_call(n4.port, "DELETE", "/v2/members/" + victim_id)
    note("DELETE %s (an original member, not the leader): %d" % (victim.name, st))
    assert st == 204, body
    removed_exits(victim, log)
    st, body = members_call(n4.port, "DELETE", "/v2/members/" + victim_id)
    note("DELETE %s again: %d %s" % (victim.name, st, body.decode()))
    assert st == 410 and b"Member permanently removed" in body, (st, body)
    time.sleep(2)
    lead = leader([m for m in (n1, n2, n3, n4) if m.proc is not None])
    assert lead is not None, "no leader"
    with serving_lock:
        serving.remove(lead)
    t = time.monotonic()
    st, body = members_call(lead.port, "DELETE", "/v2/members/" + member_id(lead.port, lead.name))
    note("DELETE %s (the leader, asked on itself): %d in %.0f ms" % (
        lead.name, st, (time.monotonic() - t) * 1000))
    assert st == 204, body
    removed_exits(lead, log)
    rest = [m for m in (n1, n2, n3, n4) if m.proc is not None]
    st, body = members_call(rest[0].port, "POST", "/v2/members", {"peerURLs": [peer_url(n5.i)]})
    note("POST /v2/members n5 as voter: %d" % st)
    assert st == 201, body
    n5.start(rest + [n5], "existing")
    wait_for("n5 healthy", lambda: healthy(n5))
    with serving_lock:
        serving.append(n5)
    want = sorted(m.name for m in rest + [n5])

    def names():
        _, body = members_call(n5.port, "GET", "/v2/members")
        return sorted(m["name"] for m in json.loads(body)["members"])

    # The new member lists what its log says so far: it catches up within moments.
    wait_for("n5 to list %s" % want, lambda: names() == want, 10)
    note("members at the end, as n5 lists them: %s" % names())


def client(cid):
    r = random.Random(cid * 7919 + 1)
    conn, node = None, 0
    n = 0
    while not stop.is_set():
        if conn is None:
            with serving_lock:
                choice = r.choice(serving)
            node = choice.i
            conn = http.client.HTTPConnection("127.0.0.1", choice.port, timeout=3)
        key = r.choice(KEYS)
        n += 1
        conn = perform(conn, cid, node, operation(r, key, cid, n, CLIENTS))


def main():
    os.makedirs(WORK, exist_ok=True)
    changes, errors = [], []
    try:
        for m in members[:3]:
            m.start(members[:3], "new")
        wait_for("the cluster healthy", lambda: all(healthy(m) for m in members[:3]))
        threads = [threading.Thread(target=client, args=(c,)) for c in range(1, CLIENTS + 1)]
        reconfig = threading.Thread(target=reconfigure, args=(changes, errors))
        for t in threads:
            t.start()
        reconfig.start()
        reconfig.join(SECONDS + 60)
        time.sleep(max(0.0, SECONDS - (time.monotonic() - T0)))
        stop.set()
        for t in threads:
            t.join(30)
        with serving_lock:
            last = list(serving)
        wait_for("the final members healthy", lambda: all(healthy(m) for m in last))
        final = {}
        conn = http.client.HTTPConnection("127.0.0.1", last[-1].port, timeout=10)
        for key in KEYS:
            invoke = now_us()
            ret = answer(*request(conn, "GET", "/v2/keys" + key + "?quorum=true"))
            record(0, last[-1].i + 1, invoke, {"f": "get", "key": key, "quorum": True}, ret)
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
    print("%d operations %s; membership changes:" % (len(history), counts))
    for line in changes:
        print("  " + line)
    problems = list(errors) + durability_check(KEYS, final)
    for m in members:
        path = os.path.join(WORK, m.name + ".log")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                if "panicked" in f.read():
                    problems.append("member %s panicked (see %s.log)" % (m.name, m.name))
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
