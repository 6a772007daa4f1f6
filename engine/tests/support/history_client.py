"""The etcd v2 client side of the real-cluster tests that record a history for the checkers
(faults/cluster_under_faults.py, membership_real/cluster_reconfig.py): random operations on a
few keys over keep-alive connections, each answer turned into the history's Ret, the history
itself, and the final durability check."""
import http.client
import json
import threading
import time
import urllib.parse

T0 = time.monotonic()
history = []
_lock = threading.Lock()
_next_id = [0]


def now_us():
    return int((time.monotonic() - T0) * 1e6)


def leads(port):
    """True if the member serving clients on `port` says it is the leader."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/v2/stats/self")
        return json.loads(c.getresponse().read()).get("state") == "StateLeader"
    except Exception:
        return False


def record(client, node, invoke, call, ret):
    with _lock:
        _next_id[0] += 1
        history.append({"id": _next_id[0], "client": client, "node": node, "invoke_us": invoke,
                        "complete_us": max(now_us(), invoke), "call": call, "ret": ret})


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.getheader("X-Etcd-Index"), data


def answer(status, etcd_index, data):
    """The history's Ret for an HTTP answer."""
    try:
        doc = json.loads(data)
    except ValueError:
        return {"r": "unknown"}
    if "errorCode" in doc:
        code = doc["errorCode"]
        # 300/301: timed out or no leader: it may still happen. Others are definite refusals.
        return {"r": "unknown"} if code >= 300 else {"r": "err", "code": code}
    node = doc.get("node", {})
    return {"r": "ok", "index": int(etcd_index or 0), "action": doc.get("action", ""),
            "key": node.get("key", ""), "value": node.get("value"),
            "modified_index": node.get("modifiedIndex", 0)}


def operation(r, key, cid, n, clients):
    """A random operation of client `cid` (its `n`-th) on `key`: (kind, call, request)."""
    value = "c%d-%d" % (cid, n)
    kind = r.choice(["set", "set", "get", "get", "cas", "create", "delete"])
    quoted = urllib.parse.quote(key)
    if kind == "set":
        call = {"f": "set", "key": key, "value": value, "expire_at_us": None}
        args = ("PUT", "/v2/keys" + quoted, "value=" + value)
    elif kind == "get":
        call = {"f": "get", "key": key, "quorum": True}
        args = ("GET", "/v2/keys" + quoted + "?quorum=true", None)
    elif kind == "cas":
        prev = "c%d-%d" % (r.randrange(clients), r.randrange(1, max(2, n)))
        call = {"f": "cas", "key": key, "value": value, "prev_value": prev, "prev_index": None}
        args = ("PUT", "/v2/keys" + quoted + "?prevValue=" + prev, "value=" + value)
    elif kind == "create":
        call = {"f": "create", "key": key, "value": value}
        args = ("PUT", "/v2/keys" + quoted + "?prevExist=false", "value=" + value)
    else:
        call = {"f": "delete", "key": key}
        args = ("DELETE", "/v2/keys" + quoted, None)
    return kind, call, args


def perform(conn, cid, node, op):
    """Sends `op` (from `operation`) on `conn` to member `node` (from 0) and records it; returns
    the connection, or None if it broke."""
    kind, call, args = op
    invoke = now_us()
    try:
        ret = answer(*request(conn, *args))
    except Exception:
        ret = {"r": "unknown"}
        try:
            conn.close()
        except Exception:
            pass
        conn = None
    if ret["r"] == "unknown" and kind == "get":
        ret = {"r": "fail"}  # a read that got no answer changed nothing
    record(cid, node + 1, invoke, call, ret)
    if ret["r"] in ("unknown", "fail"):
        time.sleep(0.05)
    return conn


def durability_check(keys, final):
    """Every acknowledged write is there or superseded: per key, the final value's modifiedIndex
    is at least every acknowledged write's index, or a later delete removed it."""
    problems = []
    for key in keys:
        acked = [op for op in history if op["call"]["key"] == key and op["call"]["f"] != "get"
                 and op["ret"]["r"] == "ok"]
        if not acked:
            continue
        last = max(acked, key=lambda op: op["ret"]["modified_index"])
        got = final[key]
        if got["r"] == "ok":
            if got["modified_index"] < last["ret"]["modified_index"]:
                problems.append("%s: acknowledged write %s (index %d) lost; final read %s"
                                % (key, last["call"], last["ret"]["modified_index"], got))
        elif last["call"]["f"] != "delete":
            unknown_deletes = [op for op in history if op["call"]["key"] == key
                               and op["call"]["f"] == "delete" and op["ret"]["r"] == "unknown"]
            if not unknown_deletes:
                problems.append("%s: gone, but its last acknowledged write %s was not a delete"
                                % (key, last["call"]))
    return problems
