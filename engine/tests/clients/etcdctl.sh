#!/usr/bin/env bash
# etcdctl v2 (Debian's etcd-client, ETCDCTL_API=2) against one server: every command of the
# issue, with its output checked. Usage: etcdctl.sh URL
set -euo pipefail
url=$1
export ETCDCTL_API=2
ctl() { etcdctl --endpoints "$url" "$@"; }
fail() { echo "etcdctl.sh: $*" >&2; exit 1; }
expect() { # expect WANT GOT WHAT
  [ "$1" = "$2" ] || fail "$3: want '$1', got '$2'"
}

ctl rm -r /ctl >/dev/null 2>&1 || true
expect v1 "$(ctl set /ctl/k v1)" "set"
expect v1 "$(ctl get /ctl/k)" "get"
expect new "$(ctl mk /ctl/new new)" "mk"
ctl mk /ctl/new again >/dev/null 2>&1 && fail "mk on an existing key succeeded"
ctl mkdir /ctl/dir
expect v2 "$(ctl update /ctl/k v2)" "update"
ctl update /ctl/missing x >/dev/null 2>&1 && fail "update of a missing key succeeded"
err=$(ctl set /ctl/k v3 --swap-with-value nope 2>&1 || true)
case "$err" in *"101: Compare failed"*) ;; *) fail "swap mismatch: $err" ;; esac
ctl set /ctl/dir/a 1 >/dev/null
ctl set /ctl/dir/sub/b 2 >/dev/null
listing=$(ctl ls -r --sort /ctl)
want=$'/ctl/dir\n/ctl/dir/a\n/ctl/dir/sub\n/ctl/dir/sub/b\n/ctl/k\n/ctl/new'
expect "$want" "$listing" "ls -r"
ctl rm /ctl/new >/dev/null
ctl get /ctl/new >/dev/null 2>&1 && fail "rm left the key"
ctl mkdir /ctl/empty
ctl rmdir /ctl/empty
ctl rmdir /ctl/dir >/dev/null 2>&1 && fail "rmdir of a non-empty dir succeeded"
ctl rm -r /ctl/dir

# watch: one event, printed
etcdctl --endpoints "$url" watch /ctl/w > /tmp/etcdctl-watch.$$ 2>&1 &
watcher=$!
sleep 0.5
ctl set /ctl/w fired >/dev/null
wait "$watcher" || fail "watch exited with an error: $(cat /tmp/etcdctl-watch.$$)"
expect fired "$(cat /tmp/etcdctl-watch.$$)" "watch"

# exec-watch: runs a command per event (etcdctl 3.4 reads the key as the last argument)
out=/tmp/etcdctl-exec.$$
rm -f "$out"
etcdctl --endpoints "$url" exec-watch -- sh -c "echo \$ETCD_WATCH_VALUE >> $out" /ctl/x &
execw=$!
sleep 0.5
ctl set /ctl/x one >/dev/null
for _ in $(seq 1 40); do [ -s "$out" ] && break; sleep 0.1; done
kill "$execw" 2>/dev/null || true
expect one "$(cat "$out")" "exec-watch"
rm -f "$out" /tmp/etcdctl-watch.$$

members=$(ctl member list)
case "$members" in *"isLeader=true"*) ;; *) fail "member list: $members" ;; esac
health=$(ctl cluster-health)
case "$health" in *"cluster is healthy"*) ;; *) fail "cluster-health: $health" ;; esac
echo "etcdctl: set get mk mkdir update rm rmdir ls -r watch exec-watch member list cluster-health behaved"
