#!/usr/bin/env python3
"""Differential test: the same scripted requests against two etcd v2 servers (real etcd 3.4 and
Floe), compared after the normalisation of engine/src/store/README.md §12.5.

Usage: run.py URL_A URL_B CASE_FILE...   (exit 0 when every answer matches)

Case file format (one request per line; blank lines and '#' comments ignored):
    == name                     starts a case (for the report)
    METHOD PATH [BODY]          a request; BODY is a raw form body (sent as
                                application/x-www-form-urlencoded); '{N}' anywhere in PATH or
                                BODY becomes (the server's starting X-Etcd-Index + N)
    JSON METHOD PATH BODY       the same with Content-Type: application/json
    ASYNC METHOD PATH [BODY]    sent in the background (a watch); compared at the next AWAIT
    AWAIT                       waits for every ASYNC request and compares them
    SLEEP SECONDS               pause
    BIG METHOD PATH NAME BYTES  a form body NAME=<BYTES x's> (10 MiB limit tests)
    REPEAT N METHOD PATH [BODY] the request N times, answers not compared (fills the history)
Flags before METHOD: '~cause' ignores the error cause (it names raw indexes), '~body' compares
status and headers only.
"""
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse

TIMEOUT = 10
COMPARED_HEADERS = ["content-type", "x-etcd-index", "location", "allow", "transfer-encoding"]
PRESENT_HEADERS = ["x-etcd-cluster-id", "x-raft-index", "x-raft-term"]


class Server:
    def __init__(self, url):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.base = None

    def request(self, method, path, body=None, content_type=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        headers = {}
        if body is not None:
            headers["Content-Type"] = content_type or "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return {
                "status": resp.status,
                "headers": {k.lower(): v for k, v in resp.getheaders()},
                "body": data,
            }
        except Exception as e:  # a hang or a dropped connection is a result to compare
            return {"status": None, "headers": {}, "body": repr(e).encode()}
        finally:
            conn.close()

    def expand(self, text):
        return re.sub(r"\{(\d+)\}", lambda m: str(self.base + int(m.group(1))), text)


def shift_json(value, base):
    """Indexes relative to the server's starting index; expirations and ttls made comparable."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("modifiedIndex", "createdIndex", "index") and isinstance(v, int) and v > 0:
                out[k] = v - base
            elif k == "expiration":
                out[k] = "<expiration>"
            elif k == "ttl":
                out[k] = "<ttl>" if isinstance(v, int) else v
            elif k == "key" and isinstance(v, str):
                out[k] = re.sub(r"/(\d{20})(?=/|$)", lambda m: "/<inorder %d>" % (int(m.group(1)) - base), v)
            elif k in ("id", "leader") and isinstance(v, str):
                out[k] = "<id>"
            else:
                out[k] = shift_json(v, base)
        if "nodes" in out and isinstance(out["nodes"], list):
            out["nodes"] = sorted(out["nodes"], key=lambda n: json.dumps(n, sort_keys=True))
        return out
    if isinstance(value, list):
        return [shift_json(v, base) for v in value]
    return value


def normalise(server, result, flags):
    body = result["body"]
    headers = result["headers"]
    norm = {"status": result["status"], "headers": {}}
    for h in COMPARED_HEADERS:
        if h in headers:
            v = headers[h]
            if h == "x-etcd-index" and server.base is not None and v.isdigit() and int(v) > 0:
                v = str(int(v) - server.base)
            norm["headers"][h] = v
    for h in PRESENT_HEADERS:
        norm["headers"][h] = "present" if h in headers else "absent"
    if "~body" in flags:
        return norm
    text = body.decode("utf-8", "replace")
    lines = [l for l in text.split("\n") if l.strip()] if headers.get("content-type", "").startswith("application/json") else None
    parsed = []
    if lines:
        try:
            parsed = [json.loads(l, object_pairs_hook=dict) for l in lines]
        except ValueError:
            parsed = None
    if parsed:
        shifted = [shift_json(p, server.base or 0) for p in parsed]
        if "~cause" in flags:
            for p in shifted:
                p.pop("cause", None)
        if "~stats" in flags:
            shifted = [sorted(p.keys()) for p in shifted]
        norm["json"] = shifted
        norm["trailing_newline"] = text.endswith("\n")
        # Field order matters (Go struct order): compare the raw key order too.
        norm["order"] = [list(json.loads(l, object_pairs_hook=lambda kv: [k for k, _ in kv])) for l in lines] if "~stats" not in flags else None
    else:
        norm["text"] = text
    return norm


def parse_line(line):
    flags = set()
    parts = line.split(" ", 1)
    while parts[0].startswith("~"):
        flags.add(parts[0])
        parts = parts[1].split(" ", 1)
    return flags, parts[0], (parts[1] if len(parts) > 1 else "")


def run(servers, case_files):
    mismatches = []
    requests = 0
    for s in servers:
        first = s.request("GET", "/v2/keys/")
        s.base = int(first["headers"].get("x-etcd-index", "0"))
    for path in case_files:
        case = path
        pending = []
        with open(path) as f:
            for raw in f:
                line = raw.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line.startswith("== "):
                    case = line[3:]
                    continue
                flags, op, rest = parse_line(line)
                if op == "SLEEP":
                    time.sleep(float(rest))
                    continue
                if op == "REPEAT":
                    count, method, rest2 = rest.split(" ", 2)
                    target, _, body = rest2.partition(" ")
                    for s in servers:
                        for _ in range(int(count)):
                            s.request(method, s.expand(target), s.expand(body).encode() if body else None)
                    continue
                if op == "AWAIT":
                    for t, results, desc, fl in pending:
                        t.join(TIMEOUT + 2)
                        requests += 1
                        compare(servers, results, case, desc, fl, mismatches)
                    pending = []
                    continue
                content_type = None
                background = False
                if op == "JSON":
                    content_type = "application/json"
                    op, rest = rest.split(" ", 1)
                if op == "ASYNC":
                    background = True
                    op, rest = rest.split(" ", 1)
                if op == "BIG":
                    method, target, name, size = rest.split(" ")
                    body = name + "=" + "x" * int(size)
                    desc = "%s %s %s=<%s bytes>" % (method, target, name, size)
                else:
                    method, _, tail = rest.partition(" ")
                    target, _, body = tail.partition(" ")
                    method, target = op, rest.split(" ")[0]
                    body = rest[len(target) + 1:] if len(rest) > len(target) else None
                    desc = line
                results = [None] * len(servers)

                def send(i, method=method, target=target, body=body, content_type=content_type, results=results):
                    s = servers[i]
                    b = s.expand(body).encode() if body is not None else None
                    results[i] = s.request(method, s.expand(target), b, content_type)

                if background:
                    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(servers))]
                    for t in threads:
                        t.start()

                    class Both:
                        def join(self, timeout, threads=threads):
                            for t in threads:
                                t.join(timeout)
                    pending.append((Both(), results, desc, flags))
                else:
                    for i in range(len(servers)):
                        send(i)
                    requests += 1
                    compare(servers, results, case, desc, flags, mismatches)
    return requests, mismatches


def compare(servers, results, case, desc, flags, mismatches):
    a, b = [normalise(s, r or {"status": None, "headers": {}, "body": b"no answer"}, flags) for s, r in zip(servers, results)]
    if a != b:
        mismatches.append({"case": case, "request": desc, "A": a, "B": b})


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    servers = [Server(sys.argv[1]), Server(sys.argv[2])]
    started = time.time()
    requests, mismatches = run(servers, sys.argv[3:])
    for m in mismatches:
        print("MISMATCH in %s: %s" % (m["case"], m["request"]))
        print("  A:", json.dumps(m["A"]))
        print("  B:", json.dumps(m["B"]))
    print("%d requests, %d mismatches, %.1f s" % (requests, len(mismatches), time.time() - started))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
