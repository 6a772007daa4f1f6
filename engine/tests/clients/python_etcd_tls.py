"""python-etcd 0.4.5 over https, with a client certificate: every call asserts its result.

Usage: python python_etcd_tls.py HOST PORT CA_FILE CERT_FILE KEY_FILE   (python-etcd venv)
"""
import sys

import etcd

host, port = sys.argv[1], int(sys.argv[2])
ca, cert, key = sys.argv[3], sys.argv[4], sys.argv[5]
c = etcd.Client(host=host, port=port, protocol="https", ca_cert=ca, cert=(cert, key))

assert c.version and c.version.startswith("3."), c.version
assert c.machines == ["https://%s:%d" % (host, port)], c.machines
assert c.leader and c.leader["clientURLs"] == c.machines, c.leader

r = c.write("/tls/py", "v1")
assert r.action == "set" and r.value == "v1", r
assert c.read("/tls/py").value == "v1"
assert c.read("/tls/py", quorum=True).value == "v1"
r = c.write("/tls/py", "v2", prevValue="v1")
assert r.action == "compareAndSwap" and r.value == "v2", r
r = c.write("/tls/dir/q", "item", append=False)
listing = sorted(child.key for child in c.read("/tls", recursive=True).leaves)
assert listing == ["/tls/dir/q", "/tls/py"], listing
c.delete("/tls/py")
try:
    c.read("/tls/py")
    raise AssertionError("a deleted key was read")
except etcd.EtcdKeyNotFound:
    pass

# Without a client certificate the member refuses the handshake.
anonymous = etcd.Client(host=host, port=port, protocol="https", ca_cert=ca)
try:
    anonymous.read("/tls/dir/q")
    raise AssertionError("a client without a certificate was served")
except etcd.EtcdConnectionFailed as e:
    assert "certificate" in str(e).lower(), e

print("python-etcd over TLS behaved: version machines leader write read quorum-read "
      "compare-and-swap recursive-read delete, and a client without a certificate was refused")
