#!/usr/bin/env bash
# etcdctl v2 (Debian's etcd-client, ETCDCTL_API=2) member commands against a 3-member cluster:
# list, add, update, remove, with their output checked. Usage: etcdctl_members.sh URL NEW_PEER_URL
# URL may be any member: a member that does not lead redirects the change to the leader.
set -euo pipefail
url=$1
new=$2
moved=${new%:*}:$(( ${new##*:} + 1 ))
export ETCDCTL_API=2
ctl() { timeout 30 etcdctl --endpoints "$url" "$@"; }
fail() { echo "etcdctl_members.sh: $*" >&2; exit 1; }

[ "$(ctl member list | wc -l)" = 3 ] || fail "member list: $(ctl member list)"
ctl member list | grep -q "isLeader=true" || fail "no leader listed: $(ctl member list)"
out=$(ctl member add extra "$new")
echo "$out"
case "$out" in *"Added member named extra with ID"*) ;; *) fail "member add: $out" ;; esac
case "$out" in *'ETCD_INITIAL_CLUSTER_STATE="existing"'*) ;; *) fail "member add: $out" ;; esac
id=$(echo "$out" | sed -n 's/.*with ID \([0-9a-f]*\) to cluster.*/\1/p')
[ -n "$id" ] || fail "no id in: $out"
ctl member list | grep -q "^$id\[unstarted\]: peerURLs=$new$" || fail "list after add: $(ctl member list)"
out=$(ctl member add again "$new" 2>&1 || true)
case "$out" in *"peerURL exists"*) ;; *) fail "second add of $new: $out" ;; esac
out=$(ctl member update "$id" "$moved")
case "$out" in *"Updated member with ID $id in cluster"*) ;; *) fail "member update: $out" ;; esac
ctl member list | grep -q "^$id\[unstarted\]: peerURLs=$moved$" || fail "list after update: $(ctl member list)"
out=$(ctl member remove "$id")
case "$out" in *"Removed member $id from cluster"*) ;; *) fail "member remove: $out" ;; esac
[ "$(ctl member list | wc -l)" = 3 ] || fail "list after remove: $(ctl member list)"
out=$(ctl member remove "$id" 2>&1 || true)
case "$out" in *"Couldn't find a member in the cluster with an ID of $id"*) ;; *) fail "second remove: $out" ;; esac
ctl member list
echo "etcdctl member: ok"
