#!/usr/bin/env bash
# What a host-bound credential costs per HTTPS request, beside the egress proxy's plain relay.
#   A `sandbox-agent run` (image: host) whose tool, curl, makes REQUESTS HTTPS requests to a
#   loopback API (test/sandbox/upstream_server.mjs, 127.0.0.2) through the run's egress proxy:
#     relay   allowed_outbound only: the proxy checks the CONNECT and relays the TLS bytes;
#             curl verifies the API's certificate itself
#     inject  the same host under http_credentials: the proxy ends curl's TLS with the sandbox
#             CA's certificate, adds the header, opens its own TLS to the API (verified), and
#             redacts the answer
#   each over one kept-alive connection (one curl, REQUESTS URLs) and with a connection per
#   request (REQUESTS curl processes), ROUNDS times, the four interleaved. Prints wall time and
#   CPU time (user+sys of sandbox-agent and everything it started, /usr/bin/time) per request;
#   the API's own CPU is not counted. Then what http_credentials add to a run's start:
#   `sandbox-agent run -- true` with each config, STARTS times interleaved (medians) — the
#   hand-over to sandbox-agent-connected, the sandbox's CA, the CA bundles, the clean init.
# Needs root, node, openssl, curl. Loopback only.
# Usage: [ROUNDS=5] [REQUESTS=200] bench/http_credentials_bench.sh   (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
requests=${REQUESTS:-200}
work=$(mktemp -d)
api_pid=
cleanup() { [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The API's certificate, from a CA of the bench's own.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=api.bench.test \
  -keyout "$work/api.key" -out "$work/api.csr" 2>/dev/null
echo "subjectAltName=DNS:api.bench.test" > "$work/ext.cnf"
openssl x509 -req -in "$work/api.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/ext.cnf" -out "$work/api.pem" 2>/dev/null
# curl loads as many CA certificates either way: the system's plus the API's CA (relay; the
# same bundle the sandbox gets with the sandbox CA appended, inject).
mkdir -p "$work/ws" && cat /etc/ssl/certs/ca-certificates.crt "$work/ca.pem" > "$work/ws/ca.pem"

setpriv --pdeathsig KILL node test/sandbox/upstream_server.mjs 127.0.0.2 "$work/api.pem" \
  "$work/api.key" /dev/null > "$work/api.out" &
api_pid=$!
for _ in $(seq 100); do grep -q listening "$work/api.out" 2>/dev/null && break; sleep 0.05; done
port=$(awk '/listening/ {print $2}' "$work/api.out")
[ -n "$port" ] || { echo "the API did not start" >&2; exit 1; }
api="https://api.bench.test:$port"

# The proxy resolves the name through /etc/hosts, in a mount namespace of the bench's own.
echo "127.0.0.2 api.bench.test" > "$work/hosts"
echo "bench-key-0123456789abcdef" > "$work/key"
common="secrets:
  - {name: api-key, from: 'file:$work/key'}
sandbox:
  name: bench
  image: host
  network:
    allowed_outbound: [api.bench.test, 127.0.0.2]
"
printf '%s' "$common" > "$work/relay.yaml"
printf '%s  http_credentials:\n    - {host: api.bench.test, header: Authorization, value: "Bearer ${secret:api-key}", ca_file: %s}\n' \
  "$common" "$work/ca.pem" > "$work/inject.yaml"

urls=$(for i in $(seq "$requests"); do printf '%s/r%s ' "$api" "$i"; done)
# CAs for curl: the bundle with the API's CA (relay), or the sandbox's from SSL_CERT_FILE (inject).
script_for() {  # MODE SHAPE
  local ca=""
  [ "$1" = relay ] && ca="--cacert /workspace/ca.pem"
  if [ "$2" = keepalive ]; then
    echo "curl -sS --fail ${CURL_FLAGS:-} $ca $urls > /dev/null"
  else
    echo "for i in \$(seq $requests); do curl -sS --fail $ca $api/c\$i > /dev/null || exit 1; done"
  fi
}
measure() {  # MODE SHAPE -> "wall_s cpu_s"
  /usr/bin/time -f "%e %U %S" -o "$work/time" \
    unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$work/hosts" \
    build/sandbox-agent run --config "$work/$1.yaml" --workspace "$work/ws" -- bash -c "$(script_for "$1" "$2")" \
    > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  [ -n "${SHOW_OUTPUT:-}" ] && cat "$work/out" >&2
  awk '{printf "%s %.3f\n", $1, $2 + $3}' "$work/time"
}

declare -A wall cpu
[ -n "${STARTS_ONLY:-}" ] && rounds=0
for round in $(seq "$rounds"); do
  for shape in keepalive connection; do
    for mode in relay inject; do
      read -r w c < <(measure "$mode" "$shape")
      wall[$mode-$shape]+="$w "
      cpu[$mode-$shape]+="$c "
    done
  done
  echo "round $round done" >&2
done

per_request() {  # "v1 v2 …" -> "min–max" in µs per request
  tr ' ' '\n' <<< "$1" | awk -v n="$requests" 'NF { v = $1 * 1e6 / n; if (min == "" || v < min) min = v; if (v > max) max = v }
    END { printf "%.0f–%.0f", min, max }'
}
starts=${STARTS:-40}
for i in $(seq "$starts"); do  # interleaved, one of each in turn
  for mode in relay inject; do
    /usr/bin/time -f "%e %U %S" -o "$work/time-$mode" build/sandbox-agent run --config "$work/$mode.yaml" -- true \
      > /dev/null 2>&1 || { echo "run failed ($mode)" >&2; exit 1; }
    awk '{printf "%.1f %.1f\n", $1 * 1000, ($2 + $3) * 1000}' "$work/time-$mode" >> "$work/starts-$mode"
  done
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "run -- true, $starts each, medians: wall ms / CPU ms (10 ms resolution)"
for mode in relay inject; do
  printf '  %-7s %s / %s\n' "$mode" "$(cut -d' ' -f1 "$work/starts-$mode" | median)" \
    "$(cut -d' ' -f2 "$work/starts-$mode" | median)"
done
[ "$rounds" -gt 0 ] || exit 0
echo "requests per run: $requests, rounds: $rounds (µs per request, min–max over rounds)"
printf '%-11s %-8s %-14s %-14s\n' shape mode wall cpu
for shape in keepalive connection; do
  for mode in relay inject; do
    printf '%-11s %-8s %-14s %-14s\n' "$shape" "$mode" "$(per_request "${wall[$mode-$shape]}")" \
      "$(per_request "${cpu[$mode-$shape]}")"
  done
done
