"""python-etcd 0.4.5's API against one server: every call asserts its real result.

Usage: python python_etcd_api.py HOST PORT   (in the python-etcd venv)
"""
import sys
import threading
import time

import etcd

host, port = sys.argv[1], int(sys.argv[2])
c = etcd.Client(host=host, port=port)


def expect_raises(cls, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except cls:
        return
    raise AssertionError("%s did not raise %s" % (fn, cls.__name__))


assert c.version and c.version.startswith("3."), c.version
assert c.machines and c.machines[0].startswith("http://"), c.machines
assert c.members, c.members
assert c.leader and "clientURLs" in c.leader, c.leader
assert "getsSuccess" in c.store_stats

# write / read / set / get / update / delete
r = c.write("/api/k", "v1")
assert r.value == "v1" and r.newKey and r.modifiedIndex > 0
assert c.read("/api/k").value == "v1"
c.set("/api/k", "v2")
assert c.get("/api/k").value == "v2"
r = c.read("/api/k")
r.value = "v3"
c.update(r)
assert c.get("/api/k").value == "v3"
# compare-and-swap by value and by index, and their failures
c.test_and_set("/api/k", "v4", "v3")
expect_raises(ValueError, c.test_and_set, "/api/k", "v5", "nope")
idx = c.read("/api/k").modifiedIndex
c.write("/api/k", "v5", prevIndex=idx)
expect_raises(ValueError, c.write, "/api/k", "v6", prevIndex=idx)
expect_raises(etcd.EtcdAlreadyExist, c.write, "/api/k", "v6", prevExist=False)
expect_raises(etcd.EtcdKeyNotFound, c.write, "/api/missing", "x", prevExist=True)
c.delete("/api/k")
expect_raises(etcd.EtcdKeyNotFound, c.read, "/api/k")
# TTL
r = c.write("/api/ttl", "t", ttl=30)
assert r.ttl is not None and 0 < r.ttl <= 30, r.ttl
assert r.expiration, r.expiration
# directories, recursive and sorted reads
c.write("/api/dir", None, dir=True)
expect_raises(etcd.EtcdNotFile, c.write, "/api/dir", "x")
c.write("/api/dir/b", "2")
c.write("/api/dir/a", "1")
c.write("/api/dir/sub/c", "3")
r = c.read("/api/dir", recursive=True, sorted=True)
leaves = sorted((n.key, n.value) for n in r.leaves)
assert leaves == [("/api/dir/a", "1"), ("/api/dir/b", "2"), ("/api/dir/sub/c", "3")], leaves
expect_raises(etcd.EtcdDirNotEmpty, c.delete, "/api/dir", dir=True)
c.delete("/api/dir", recursive=True)
# in-order keys
first = c.write("/api/queue", "j1", append=True)
second = c.write("/api/queue", "j2", append=True)
assert first.key < second.key and len(first.key.split("/")[-1]) == 20, (first.key, second.key)
r = c.read("/api/queue", sorted=True)
assert [n.value for n in r.children] == ["j1", "j2"]
# watch: from history with waitIndex, and fired from another thread
w = c.read("/api/queue", wait=True, waitIndex=first.modifiedIndex, recursive=True)
assert w.value == "j1", w.value
fired = {}


def watcher():
    fired["r"] = c.watch("/api/watched", timeout=10)


t = threading.Thread(target=watcher)
t.start()
time.sleep(0.5)
c.write("/api/watched", "hello")
t.join(15)
assert fired.get("r") is not None and fired["r"].value == "hello", fired
# quorum reads
assert c.read("/api/watched", quorum=True).value == "hello"
# etcd.Lock: two threads contend for one lock; holds never overlap
events = []


def holder(name):
    lock = etcd.Lock(etcd.Client(host=host, port=port), "api-lock")
    lock.acquire(blocking=True, lock_ttl=10)
    events.append((name, "+", time.time()))
    time.sleep(0.5)
    events.append((name, "-", time.time()))
    lock.release()


threads = [threading.Thread(target=holder, args=(n,)) for n in ("A", "B")]
for th in threads:
    th.start()
for th in threads:
    th.join(30)
signs = [e[1] for e in events]
assert signs == ["+", "-", "+", "-"], events
assert events[0][0] == events[1][0] and events[2][0] == events[3][0], events
print("python-etcd API: all calls behaved")
