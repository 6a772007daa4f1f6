#!/usr/bin/env bash
# Throughput and latency of a 3-member Floe cluster against a 3-member etcd 3.4 cluster (v2 API,
# fsync on for both), same machine, same load (wrk): PUT at 1, 16 and 64 connections; quorum GET
# and default GET at 64; each at the leader and at a follower (clients talk to any member), and
# Floe's 0.x lock acquire at both (etcd 3.4 has no lock module). Writes reports/perf.md.
# Usage: benches/perf/run.sh [--tls] [SECONDS [ROUNDS]]   (or TLS=1 benches/perf/run.sh ...)
# ROUNDS (default 3): each round starts a fresh Floe cluster and runs every row, then a fresh
# etcd cluster and runs every row; the table gives each row's median over the rounds (one
# stall of this shared host then moves one round, not the comparison), and a second table
# every round's p99.
# --tls: both clusters with https:// client and peer URLs (certificates made here by openssl:
# one CA, one member certificate; peers demand each other's certificate), wrk over https;
# writes reports/perf-tls.md. PERF_REPORT=FILE writes the table elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
tls=${TLS:-0}
if [ "${1:-}" = --tls ]; then tls=1; shift; fi
[ "$tls" = 0 ] || tls=1
secs=${1:-10}
rounds=${2:-3}
report=${PERF_REPORT:-reports/perf.md}
tls_arg=
if [ "$tls" = 1 ]; then report=${PERF_REPORT:-reports/perf-tls.md} tls_arg="--tls "; fi
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }
cargo build --release -p engine --bin floe >/dev/null 2>&1
floe_bin=${CARGO_TARGET_DIR:-target}/release/floe
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# TLS: the scheme of every URL, the members' TLS flags (the same for Floe and etcd), and what
# curl needs to trust them. wrk checks no certificate and cannot present one, so the client
# URLs ask for none; members demand each other's (--peer-client-cert-auth).
scheme=http tls_flags=() curl_tls=()
if [ "$tls" = 1 ]; then
  command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
  pki=$work/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=bench-ca -keyout "$pki/ca-key.pem" -out "$pki/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=bench-member -keyout "$pki/member-key.pem" -out "$pki/member.csr" 2>/dev/null
  printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth, clientAuth\n' >"$pki/ext.cnf"
  openssl x509 -req -days 2 -in "$pki/member.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" \
    -CAcreateserial -extfile "$pki/ext.cnf" -out "$pki/member.pem" 2>/dev/null
  scheme=https
  tls_flags=(--cert-file "$pki/member.pem" --key-file "$pki/member-key.pem"
    --peer-cert-file "$pki/member.pem" --peer-key-file "$pki/member-key.pem"
    --peer-trusted-ca-file "$pki/ca.pem" --peer-client-cert-auth)
  curl_tls=(--cacert "$pki/ca.pem")
fi

start_floe() {
  local ic="n1=$scheme://127.0.0.1:28021,n2=$scheme://127.0.0.1:28022,n3=$scheme://127.0.0.1:28023"
  for i in 1 2 3; do
    "$floe_bin" --name n$i --data-dir "$work/floe$i" --initial-cluster "$ic" --legacy \
      --listen-client-urls $scheme://127.0.0.1:2801$i --listen-peer-urls $scheme://127.0.0.1:2802$i \
      "${tls_flags[@]}" >"$work/floe$i.log" 2>&1 &
    pids+=($!)
  done
}
start_etcd() {
  local ic="e1=$scheme://127.0.0.1:44381,e2=$scheme://127.0.0.1:44391,e3=$scheme://127.0.0.1:44401"
  for i in 1 2 3; do
    local c=$((44370 + 10 * i)) p=$((44371 + 10 * i))
    etcd --name e$i --data-dir "$work/etcd$i" --enable-v2=true --log-level error \
      --listen-client-urls $scheme://127.0.0.1:$c --advertise-client-urls $scheme://127.0.0.1:$c \
      --listen-peer-urls $scheme://127.0.0.1:$p --initial-advertise-peer-urls $scheme://127.0.0.1:$p \
      --initial-cluster "$ic" --initial-cluster-state new "${tls_flags[@]}" >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
  done
}
leader() { # leader URL among the given client ports
  for _ in $(seq 1 100); do
    for port in "$@"; do
      if curl -sf "${curl_tls[@]}" "$scheme://127.0.0.1:$port/v2/stats/self" 2>/dev/null | grep -q StateLeader; then
        echo "$scheme://127.0.0.1:$port"; return
      fi
    done
    sleep 0.2
  done
  echo "no leader among $*" >&2; exit 1
}
follower() { # a follower's URL among the given client ports, given the leader's URL first
  local lead=$1; shift
  for port in "$@"; do
    [ "$scheme://127.0.0.1:$port" = "$lead" ] || { echo "$scheme://127.0.0.1:$port"; return; }
  done
}
# wrk: "<req/s> <p50 ms> <p99 ms> <errors>"
measure() { # URL CONNS LUA_OR_PATH
  local url=$1 conns=$2 what=$3 out threads=2
  [ "$conns" -eq 1 ] && threads=1
  if [[ $what == *.lua* ]]; then
    # "script.lua -- ARGS": wrk takes the script's arguments after the URL.
    local script=${what%% *} args=()
    [[ $what == *" -- "* ]] && read -ra args <<<"${what#* -- }"
    out=$(wrk -t$threads -c"$conns" -d"${secs}s" --latency -s "$script" "$url" -- "${args[@]}")
  else
    out=$(wrk -t$threads -c"$conns" -d"${secs}s" --latency "$url$what")
  fi
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out"); bad=${bad:-0}
  [ -n "$rps" ] || { echo "wrk gave no figures for $url $what: $out" >&2; rps=0; }
  echo "$rps $(ms "$p50") $(ms "$p99") $bad"
}
ms() { # wrk prints 850.00us, 1.23ms or 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 } }'
}
run_suite() { # LEADER_URL FOLLOWER_URL [lock] -> lines "name rps p50 p99 errors"
  local lead=$1 follow=$2 lock=${3:-} at url
  curl -sf "${curl_tls[@]}" -X PUT "$lead/v2/keys/bench/k1" -d value=x >/dev/null
  for at in leader follower; do
    url=$lead; [ "$at" = follower ] && url=$follow
    echo "put-1@$at $(measure "$url" 1 benches/perf/put.lua)"
    echo "put-16@$at $(measure "$url" 16 benches/perf/put.lua)"
    echo "put-64@$at $(measure "$url" 64 benches/perf/put.lua)"
    echo "qget-64@$at $(measure "$url" 64 '/v2/keys/bench/k1?quorum=true')"
    echo "get-64@$at $(measure "$url" 64 '/v2/keys/bench/k1')"
    if [ -n "$lock" ]; then
      echo "lock-64@$at $(measure "$url" 64 "benches/perf/lock.lua -- $at-$RANDOM")"
    fi
  done
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
# Per round: "name rps p50 p99 errors" lines of each system, then their medians.
floe_rounds="" etcd_rounds=""
for round in $(seq 1 "$rounds"); do
  rm -rf "$work"/floe? "$work"/etcd?
  start_floe
  floe_url=$(leader 28011 28012 28013)
  floe_rounds+=$(run_suite "$floe_url" "$(follower "$floe_url" 28011 28012 28013)" lock)$'\n'
  stop_all
  start_etcd
  etcd_url=$(leader 44380 44390 44400)
  etcd_rounds+=$(run_suite "$etcd_url" "$(follower "$etcd_url" 44380 44390 44400)")$'\n'
  stop_all
  echo "round $round of $rounds done" >&2
done
median_rows() { # lines "name rps p50 p99 errors" over rounds -> one line per name (first-seen order)
  awk 'function med(list,   n, v, i, j, t) {
         n = split(list, v, " ")
         for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
         return n % 2 ? v[(n + 1) / 2] : sprintf("%.2f", (v[n / 2] + v[n / 2 + 1]) / 2)
       }
       NF == 5 { if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 }
                 r[$1] = r[$1] " " $2; a[$1] = a[$1] " " $3; b[$1] = b[$1] " " $4; e[$1] += $5 }
       END { for (i = 1; i <= k; i++) { n = order[i]; print n, med(r[n]), med(a[n]), med(b[n]), e[n] } }' <<<"$1"
}
p99s_of() { awk -v n="$2" '$1 == n { printf "%s%s", sep, $4; sep = ", " }' <<<"$1"; }
floe=$(median_rows "$floe_rounds")
etcd=$(median_rows "$etcd_rounds")

label() { # put-64@follower -> "PUT, 64 connections | follower"
  local load=${1%@*} at=${1#*@}
  load=$(sed 's/^put-1$/PUT, 1 connection/; s/^put-16$/PUT, 16 connections/; s/^put-64$/PUT, 64 connections/; s/^qget-64$/quorum GET, 64 connections/; s/^get-64$/default GET, 64 connections/; s/^lock-64$/0.x lock acquire, 64 connections/' <<<"$load")
  echo "$load | $at"
}
rps_of() { awk -v n="$2" '$1 == n {print $2}' <<<"$1"; }
{
  if [ "$tls" = 1 ]; then
    echo "# Floe vs etcd 3.4 over TLS: v2 API throughput and latency, at the leader and at a follower"
    echo
    echo "Both clusters with https:// client and peer URLs: one openssl-made CA and EC P-256 member"
    echo "certificate, members demanding each other's certificate (\`--peer-client-cert-auth\`);"
    echo "clients present none (wrk cannot), and wrk does not check the members' certificate."
    echo "Floe: rustls (ring); etcd: Go's crypto/tls. Otherwise as \`reports/perf.md\`."
    echo
  else
    echo "# Floe vs etcd 3.4: v2 API throughput and latency, at the leader and at a follower"
    echo
  fi
  echo "Generated by \`benches/perf/run.sh ${tls_arg}$secs $rounds\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m);"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)). Both clusters: 3 members on"
  echo "loopback on this one machine, fsync on (etcd's default; Floe's \`fdatasync\` per batch),"
  echo "snapshots at each system's default count (100,000 for both). The load generator"
  echo "(wrk, ${secs} s per row) talks to the leader's client URL, then to a follower's; PUT writes"
  echo "a 64-byte value to one of 1,000 keys; GETs read one key; the lock row acquires a lock of"
  echo "its own per request (Floe's 0.x module; etcd 3.4 has none). etcd: $(etcd --version | sed -n 1p)."
  echo "$rounds rounds, each a fresh Floe cluster running every row, then a fresh etcd cluster running"
  echo "every row; each figure below is the row's median over the rounds (every round's p99 is in the"
  echo "second table)."
  echo
  echo "| load | member | Floe req/s | Floe p50 ms | Floe p99 ms | etcd req/s | etcd p50 ms | etcd p99 ms | throughput ratio | p99 ratio |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  while read -r name frps fp50 fp99 fbad; do
    erps=- ep50=- ep99=- ebad=0 ratio=- pratio=-
    if grep -q "^$name " <<<"$etcd"; then
      read -r _ erps ep50 ep99 ebad < <(grep "^$name " <<<"$etcd")
      ratio=$(awk -v a="$frps" -v b="$erps" 'BEGIN { printf "%.2f×", a / b }')
      pratio=$(awk -v a="$fp99" -v b="$ep99" 'BEGIN { printf "%.2f", a / b }')
    fi
    echo "| $(label "$name") | $frps | $fp50 | $fp99 | $erps | $ep50 | $ep99 | $ratio | $pratio |"
    [ "$fbad" = 0 ] || echo "| (Floe non-2xx answers: $fbad) | | | | | | | | | |"
    [ "$ebad" = 0 ] || echo "| (etcd non-2xx answers: $ebad) | | | | | | | | | |"
  done <<<"$floe"
  echo
  echo "Every round's p99 (ms), in round order:"
  echo
  echo "| load | member | Floe p99 per round | etcd p99 per round |"
  echo "|---|---|---|---|"
  while read -r name _; do
    echo "| $(label "$name") | $(p99s_of "$floe_rounds" "$name") | $(p99s_of "$etcd_rounds" "$name") |"
  done <<<"$floe"
  echo
  echo "A follower's throughput as a share of its leader's:"
  echo
  echo "| load | Floe | etcd |"
  echo "|---|---:|---:|"
  for load in put-1 put-16 put-64 qget-64 get-64 lock-64; do
    f=$(awk -v a="$(rps_of "$floe" "$load@follower")" -v b="$(rps_of "$floe" "$load@leader")" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')
    e=$(awk -v a="$(rps_of "$etcd" "$load@follower")" -v b="$(rps_of "$etcd" "$load@leader")" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')
    echo "| $(label "$load@x" | cut -d'|' -f1) | $f | $e |"
  done
} > "$report"
cat "$report"
