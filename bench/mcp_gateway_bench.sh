#!/usr/bin/env bash
# MCP gateway benchmark: tools/call (echo) at 1, 16, 64 and 256 callers against
#   direct-tcp / direct-http   the upstream itself (tcp:// NDJSON, Streamable HTTP)
#   airlock-tcp / airlock-http airlockd /mcp → mcp-tunnel → the same upstream (tcp / http)
#   mcp-proxy / supergateway   each bridging the same upstream over stdio to Streamable HTTP
#   relay-pair-tcp             two tcp_relay processes in a row in front of the tcp upstream:
#                              copying bytes and nothing else, the floor for any gateway two
#                              process hops from its upstream (as airlockd → mcp-tunnel are)
# Every target on loopback; HTTP callers share at most 16 MCP sessions (one per caller up to
# 16), so the stdio bridges run at most 16 server processes. Prints a markdown table.
# The upstream is bench/mcp_echo_server.cc (native; UPSTREAM=native, the default) or the
# project's Node.js fixture (UPSTREAM=node, test/mcp/fixture_server.mjs).
# Usage: [UPSTREAM=node] [CALLERS="1 64"] bench/mcp_gateway_bench.sh [SECONDS_PER_RUN]
#        (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
peers=$PWD/test/mcp
case ${UPSTREAM:-native} in
  native) upstream=("$PWD/build/mcp_echo_server") ;;
  node) upstream=(node "$peers/fixture_server.mjs") ;;
  *) echo "UPSTREAM must be native or node" >&2; exit 2 ;;
esac
. bench/lib.sh

tcp_port=$(free_port); http_port=$(free_port); proxy_port=$(free_port); sg_port=$(free_port)
relay1_port=$(free_port); relay2_port=$(free_port)
setsid "${upstream[@]}" tcp "$tcp_port" 2>/dev/null & pids+=($!)
setsid "${upstream[@]}" http "$http_port" 2>/dev/null & pids+=($!)
setsid build/tcp_relay "$relay2_port" "$tcp_port" & pids+=($!)
setsid build/tcp_relay "$relay1_port" "$relay2_port" & pids+=($!)

state=$work/state
printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\n' "$state" > "$work/airlockd.yaml"
setsid build/airlockd --config "$work/airlockd.yaml" 2>"$work/airlockd.log" & pids+=($!)
for _ in $(seq 100); do [ -f "$state/airlockd.url" ] && break; sleep 0.1; done
url=$(cat "$state/airlockd.url")
airlock() { build/airlock --state-dir "$state" "$@"; }
airlock --json tunnel create bench | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/token"
key=$(airlock --json agent-key create bench --tools '*' | sed -E 's/.*"key":"([^"]+)".*/\1/')
printf 'servers:\n  - {name: fx-tcp, url: "tcp://127.0.0.1:%s"}\n  - {name: fx-http, url: "http://127.0.0.1:%s/mcp"}\n' \
  "$tcp_port" "$http_port" > "$work/tunnel.yaml"
setsid build/mcp-tunnel start --endpoint "${url/http/ws}/v1/connect" --token-file "$work/token" \
  --config "$work/tunnel.yaml" --log-level warn 2>"$work/tunnel.log" & pids+=($!)
printf 'tools:\n  - {name: t, mcp_tunnel: bench, server: fx-tcp, prefix: tcp_}\n  - {name: h, mcp_tunnel: bench, server: fx-http, prefix: http_}\n' > "$work/tools.yaml"
airlock tools apply -f "$work/tools.yaml" >/dev/null
for _ in $(seq 100); do [ "$(airlock tools list | grep -c ' available')" = 2 ] && break; sleep 0.2; done

(cd "$peers" && exec setsid npx --no-install mcp-proxy --host 127.0.0.1 --port "$proxy_port" \
   --server stream -- "${upstream[@]}" stdio) >"$work/mcp-proxy.log" 2>&1 & pids+=($!)
(cd "$peers" && exec setsid npx --no-install supergateway --stdio "${upstream[*]} stdio" \
   --outputTransport streamableHttp --stateful --port "$sg_port" --logLevel none) \
   >"$work/supergateway.log" 2>&1 & pids+=($!)
wait_port "$proxy_port"; wait_port "$sg_port"; wait_port "$tcp_port"; wait_port "$http_port"
wait_port "$relay1_port"; wait_port "$relay2_port"

run() {  # label target tool sessions concurrency [header]
  local label=$1 target=$2 tool=$3 c=$5 sessions=$4
  shift 5
  build/mcp_load --label "$label" --target "$target" --tool "$tool" --arguments '{"message":"hi"}' \
    --concurrency "$c" --sessions "$sessions" --duration "${secs}s" "$@" || true
}
results=$work/results.jsonl
for c in ${CALLERS:-1 16 64 256}; do  # CALLERS="1 16" runs a subset
  s=$(( c < 16 ? c : 16 ))
  run direct-tcp   "tcp://127.0.0.1:$tcp_port"        echo      "$s" "$c"                >> "$results"
  run direct-http  "http://127.0.0.1:$http_port/mcp"  echo      "$s" "$c"                >> "$results"
  run relay-pair-tcp "tcp://127.0.0.1:$relay1_port"   echo      "$s" "$c"                >> "$results"
  run airlock-tcp  "$url/mcp"                         tcp_echo  "$s" "$c" --header "Authorization: Bearer $key" >> "$results"
  run airlock-http "$url/mcp"                         http_echo "$s" "$c" --header "Authorization: Bearer $key" >> "$results"
  run mcp-proxy    "http://127.0.0.1:$proxy_port/mcp" echo      "$s" "$c"                >> "$results"
  run supergateway "http://127.0.0.1:$sg_port/mcp"    echo      "$s" "$c"                >> "$results"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
console.log("| target | callers | sessions | calls/s | p50 µs | p99 µs | errors |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.label} | ${r.concurrency} | ${r.sessions} | ${Math.round(r.calls_per_s)} | ${r.p50_us} | ${r.p99_us} | ${r.errors}${r.first_error ? " (" + r.first_error.slice(0, 60) + ")" : ""} |`);
' "$results"
