"""dsoprea's `etcd` 2.0.8 (PyPI `etcd`, the 2014 client) against one server, with the two test
harness shims it needs on any modern Python (engine/src/store/README.md §12.2):
ssl.PROTOCOL_SSLv3 no longer exists, and `Client.debug` was removed from the client while its
modules still call it.

Usage: python dsoprea_etcd.py HOST PORT   (in the dsoprea venv)
"""
import logging
import ssl
import sys
import threading
import time

ssl.PROTOCOL_SSLv3 = ssl.PROTOCOL_TLS_CLIENT  # shim 1 (before the import)

from etcd.client import Client  # noqa: E402

Client.debug = lambda self, msg: logging.debug(msg)  # shim 2

host, port = sys.argv[1], int(sys.argv[2])
c = Client(host=host, port=port)

# node.set / node.get
c.node.set("/dsoprea/k", "v1")
r = c.node.get("/dsoprea/k")
assert r.node.value == "v1", r.node.value
# a TTL'd set: the client parses `expiration` by hand and needs a numeric offset (+00:00)
r = c.node.set("/dsoprea/ttl", "t", ttl=30)
assert r.node.ttl is not None and 0 < r.node.ttl <= 30, r.node.ttl
# node.wait fired from another thread
got = {}


def waiter():
    got["r"] = c.node.wait("/dsoprea/watched")


t = threading.Thread(target=waiter)
t.start()
time.sleep(0.5)
c.node.set("/dsoprea/watched", "fired")
t.join(15)
assert got.get("r") is not None and got["r"].node.value == "fired", got

# The seed's walkthrough line, then two threads contending for one lock.
with c.module.lock.get_lock("test_lock_1", ttl=10):
    r = c.node.get("/dsoprea/k")
    assert r.node.value == "v1"

events = []


def contender(name):
    client = Client(host=host, port=port)
    with client.module.lock.get_lock("test_lock_2", ttl=10):
        events.append((name, "+", time.time()))
        time.sleep(0.5)
        events.append((name, "-", time.time()))


threads = [threading.Thread(target=contender, args=(n,)) for n in ("A", "B")]
for th in threads:
    th.start()
for th in threads:
    th.join(30)
signs = [e[1] for e in events]
assert signs == ["+", "-", "+", "-"], events
assert events[0][0] == events[1][0] and events[2][0] == events[3][0], events
assert events[1][2] <= events[2][2], events
print("dsoprea etcd 2.0.8: set, get, TTL set, wait, lock (and two contenders) behaved")
