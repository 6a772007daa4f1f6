#!/usr/bin/env python3
"""The clients of the fault test (engine/tests/faults.rs), with their history.

Usage: clients.py WORKDIR SECONDS SEED

The Rust test owns the three floe members (client ports 27011-27013) and the nemesis that kills,
restarts, stops and resumes them. This script, meanwhile:

1. runs CLIENTS threads for SECONDS, each a single-threaded etcd v2 client with its own
   keep-alive connection to a random member (a new random member after every connection error):
   set, quorum get, compare-and-swap by prevValue, create (prevExist=false) and delete on a few
   keys, each operation recorded with its invocation and completion time (µs since this script
   started), the member asked, the call and the answer;
2. creates WORKDIR/load-done, then waits for WORKDIR/healed (the test resumes or restarts every
   member), for every member to report healthy and for a leader;
3. reads every key with quorum=true and checks that every acknowledged write is still there or
   was superseded by a later write (no acknowledged write lost);
4. writes WORKDIR/history.jsonl in the format `sim check-history` reads (sim/src/check/history.rs:
   one `Op` per line) and prints a summary. Exit status 1 if an acknowledged write was lost.

Answers map to the history's `Ret` this way: a 2xx with an etcd event is `ok`; an etcd error below
300 (100 key not found, 101 compare failed, 105 key exists) is a definite `err`; anything else (a
timeout, a broken connection, a 5xx without an event, errorCode 300/301) is `unknown`: the write
may or may not have happened. A read without an answer changed nothing, so it is `fail`.
"""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

WORK, SECONDS, SEED = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
CLIENTS = 6
KEYS = ["/faults/k%d" % i for i in range(5)]
PORTS = [27011, 27012, 27013]
REQUEST_TIMEOUT_S = 2.0
T0 = time.monotonic()

history = []
history_lock = threading.Lock()
stop = threading.Event()


def now_us():
    return int((time.monotonic() - T0) * 1e6)


def record(client, node, invoke_us, call, ret):
    with history_lock:
        op = {"id": len(history) + 1, "client": client, "node": node, "invoke_us": invoke_us,
              "complete_us": max(now_us(), invoke_us), "call": call, "ret": ret}
        history.append(op)
        return op


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.getheader("X-Etcd-Index"), resp.read()


def answer(status, etcd_index, data):
    """The history's Ret for one HTTP answer."""
    try:
        doc = json.loads(data)
    except ValueError:
        return {"r": "unknown"}
    if not isinstance(doc, dict):
        return {"r": "unknown"}
    if "errorCode" in doc:
        code = int(doc["errorCode"])
        # 300 (request timed out, proposal dropped) and 301 (no leader) may still take effect.
        return {"r": "unknown"} if code >= 300 else {"r": "err", "code": code}
    if not 200 <= status < 300 or "node" not in doc or etcd_index is None:
        return {"r": "unknown"}
    node = doc["node"]
    return {"r": "ok", "index": int(etcd_index), "action": doc.get("action", ""),
            "key": node.get("key", ""), "value": node.get("value"),
            "modified_index": int(node.get("modifiedIndex", 0))}


def choose(r, cid, n, seen):
    """One random operation: (call, HTTP method, path, form body)."""
    key = r.choice(KEYS)
    path = "/v2/keys" + urllib.parse.quote(key)
    value = "c%d-%d" % (cid, n)
    kind = r.choice(["set", "set", "get", "get", "cas", "cas", "create", "delete"])
    if kind == "set":
        return ({"f": "set", "key": key, "value": value, "expire_at_us": None},
                "PUT", path, "value=" + value)
    if kind == "get":
        return {"f": "get", "key": key, "quorum": True}, "GET", path + "?quorum=true", None
    if kind == "cas":
        # Mostly the value this client last saw (it may have changed since), sometimes a stale
        # or made-up one: both outcomes of the comparison get exercised.
        prev = seen.get(key) if r.random() < 0.8 else None
        prev = prev or "c%d-%d" % (r.randrange(1, CLIENTS + 1), r.randrange(1, n + 1))
        call = {"f": "cas", "key": key, "value": value, "prev_value": prev, "prev_index": None}
        return call, "PUT", path + "?prevValue=" + urllib.parse.quote(prev), "value=" + value
    if kind == "create":
        return ({"f": "create", "key": key, "value": value},
                "PUT", path + "?prevExist=false", "value=" + value)
    return {"f": "delete", "key": key}, "DELETE", path, None


def client(cid):
    r = random.Random(SEED * 1000 + cid)
    conn, node, n, seen = None, 0, 0, {}
    while not stop.is_set():
        if conn is None:
            node = r.randrange(len(PORTS))
            conn = http.client.HTTPConnection("127.0.0.1", PORTS[node], timeout=REQUEST_TIMEOUT_S)
        n += 1
        call, method, path, body = choose(r, cid, n, seen)
        invoke = now_us()
        try:
            ret = answer(*request(conn, method, path, body))
        except (OSError, http.client.HTTPException):
            ret = {"r": "unknown"}
        if ret["r"] == "unknown":
            conn.close()
            conn = None
            if call["f"] == "get":
                ret = {"r": "fail"}
        record(cid, node + 1, invoke, call, ret)
        if ret["r"] == "ok":
            seen[call["key"]] = ret["value"]
        elif ret["r"] in ("unknown", "fail"):
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def get(port, path, timeout=1.0):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        resp = c.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return None, b""


def wait_for(what, predicate, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit("gave up waiting for %s after %d s" % (what, seconds))


def cluster_ready():
    healthy = all(get(p, "/health")[0] == 200 for p in PORTS)
    leaders = sum(b'"StateLeader"' in get(p, "/v2/stats/self")[1] for p in PORTS)
    return healthy and leaders == 1


def final_reads():
    """Quorum reads of every key after healing, recorded as client 0; retried until answered."""
    final = {}
    conn, node = None, 0
    for key in KEYS:
        for _attempt in range(20):
            if conn is None:
                node = random.randrange(len(PORTS))
                conn = http.client.HTTPConnection("127.0.0.1", PORTS[node], timeout=10)
            invoke = now_us()
            try:
                ret = answer(*request(conn, "GET", "/v2/keys" + key + "?quorum=true"))
            except (OSError, http.client.HTTPException):
                ret = {"r": "unknown"}
            if ret["r"] == "unknown":
                conn.close()
                conn = None
                ret = {"r": "fail"}
            op = record(0, node + 1, invoke, {"f": "get", "key": key, "quorum": True}, ret)
            if ret["r"] != "fail":
                final[key] = op
                break
            time.sleep(0.2)
        else:
            raise SystemExit("no answer to the final quorum read of %s" % key)
    return final


def lost_writes(final):
    """Every acknowledged write must be in the final state or superseded: the final node has its
    modifiedIndex (and then its value) or a higher one; a key that is gone needs a delete that may
    have come after the write."""
    problems = []
    for key, read in final.items():
        got = read["ret"]
        ops = [op for op in history if op["call"]["key"] == key and op["call"]["f"] != "get"]
        deletes = [op for op in ops if op["call"]["f"] == "delete"]
        for w in (op for op in ops if op["ret"]["r"] == "ok"):
            mi = w["ret"]["modified_index"]
            if got["r"] == "ok":
                if got["modified_index"] < mi:
                    problems.append("%s: acknowledged %s at index %d lost; the final read %s"
                                    % (key, w["call"], mi, got))
                elif got["modified_index"] == mi and got["value"] != w["call"].get("value"):
                    problems.append("%s: the final read %s disagrees with the write %s at its "
                                    "index" % (key, got, w["call"]))
            elif got.get("code") == 100:
                # An unanswered delete may take effect at any time after its invocation, even
                # after its client gave up, so any of them can explain a missing key.
                later_delete = any(
                    d["ret"]["r"] == "ok" and d["ret"]["modified_index"] >= mi
                    or d["ret"]["r"] == "unknown"
                    for d in deletes)
                if not later_delete:
                    problems.append("%s: gone, but no delete can follow the acknowledged %s "
                                    "(index %d)" % (key, w["call"], mi))
            else:
                problems.append("%s: the final read failed: %s" % (key, got))
                break
    return problems


def summary(problems, final):
    counts = {}
    for op in history:
        name = "%s %s" % (op["call"]["f"], op["ret"]["r"])
        counts[name] = counts.get(name, 0) + 1
    print("%d operations by %d clients over %.0f s (seed %d)"
          % (len(history), CLIENTS, SECONDS, SEED))
    print("  " + ", ".join("%s: %d" % kv for kv in sorted(counts.items())))
    for key, op in sorted(final.items()):
        print("  final %s: %s" % (key, op["ret"]))
    for p in problems:
        print("LOST: " + p)


def main():
    threads = [threading.Thread(target=client, args=(c,)) for c in range(1, CLIENTS + 1)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(REQUEST_TIMEOUT_S * 3)
        if t.is_alive():
            raise SystemExit("a client thread did not stop")
    open(os.path.join(WORK, "load-done"), "w").close()
    wait_for("the test to heal the cluster", lambda: os.path.exists(os.path.join(WORK, "healed")),
             60)
    wait_for("a healthy cluster with one leader", cluster_ready, 30)
    final = final_reads()
    with open(os.path.join(WORK, "history.jsonl"), "w") as f:
        for op in history:
            f.write(json.dumps(op, separators=(",", ":")) + "\n")
    problems = lost_writes(final)
    summary(problems, final)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
