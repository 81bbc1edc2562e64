#!/usr/bin/env bash
# What mcp-tunnel costs per call to an http:// private server of MCP 2026-07-28, which it uses
# without a session (server/discover once, then the revision's _meta and headers on every
# request), against one of 2025-11-25 in a session (the session id on every request). The full
# path both times: agents in 2025-06-18 sessions (16, shared by the callers) → airlockd /mcp →
# mcp-tunnel → the native echo server in its `http` or `http2026` mode. One airlockd and one
# tunnel serve both arms; their runs are interleaved, the order turning each round. Reported per
# run: calls/s, p50/p99 latency, and CPU time per call of mcp-tunnel, airlockd, the arm's echo
# server and the whole machine. The figures to read are the medians, over rounds, of each
# round's own ratios.
# Usage: [CALLERS=64] [ROUNDS=10] [VERBOSE=1] bench/mcp_upstream_bench.sh [SECONDS_PER_RUN]
#        (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
callers=${CALLERS:-64}
rounds=${ROUNDS:-10}
. bench/lib.sh

declare -A port pid
for mode in http http2026; do
  port[$mode]=$(free_port)
  setsid build/mcp_echo_server "$mode" "${port[$mode]}" 2>/dev/null & pids+=($!)
  pid[$mode]=$!
  wait_port "${port[$mode]}"
done

state=$work/state
printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\n' "$state" > "$work/airlockd.yaml"
setsid build/airlockd --config "$work/airlockd.yaml" 2>"$work/airlockd.log" & pids+=($!)
pid[airlockd]=$!
for _ in $(seq 100); do [ -f "$state/airlockd.url" ] && break; sleep 0.1; done
url=$(cat "$state/airlockd.url")
a() { build/airlock --state-dir "$state" "$@"; }
a --json tunnel create bench | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/tunnel.token"
key=$(a --json agent-key create bench --tools '*' | sed -E 's/.*"key":"([^"]+)".*/\1/')
printf 'servers:\n  - {name: s2025, url: "http://127.0.0.1:%s/mcp"}\n  - {name: s2026, url: "http://127.0.0.1:%s/mcp"}\n' \
  "${port[http]}" "${port[http2026]}" > "$work/tunnel.yaml"
setsid build/mcp-tunnel start --endpoint "${url/http/ws}/v1/connect" --token-file "$work/tunnel.token" \
  --config "$work/tunnel.yaml" --log-level warn 2>"$work/tunnel.log" & pids+=($!)
pid[tunnel]=$!
printf 'tools:\n  - {name: a, mcp_tunnel: bench, server: s2025, prefix: s2025_}\n  - {name: b, mcp_tunnel: bench, server: s2026, prefix: s2026_}\n' \
  > "$work/tools.yaml"
a tools apply -f "$work/tools.yaml" >/dev/null
for _ in $(seq 100); do [ "$(a tools list | grep -c ' available')" -ge 2 ] && break; sleep 0.2; done

results=$work/results.jsonl
declare -A arm_server=([session-2025]=http [stateless-2026]=http2026)
declare -A arm_tool=([session-2025]=s2025_echo [stateless-2026]=s2026_echo)
arms=(session-2025 stateless-2026)
one() {  # arm round
  local arm=$1 server=${arm_server[$1]} t0 a0 s0 m0 t1 a1 s1 m1 out
  t0=$(cpu_ticks "${pid[tunnel]}"); a0=$(cpu_ticks "${pid[airlockd]}")
  s0=$(cpu_ticks "${pid[$server]}"); m0=$(machine_ticks)
  out=$(build/mcp_load --label "$arm" --target "$url/mcp" --tool "${arm_tool[$arm]}" \
          --arguments '{"message":"hi"}' --concurrency "$callers" --sessions 16 \
          --revision 2025-06-18 --duration "${secs}s" --header "Authorization: Bearer $key")
  t1=$(cpu_ticks "${pid[tunnel]}"); a1=$(cpu_ticks "${pid[airlockd]}")
  s1=$(cpu_ticks "${pid[$server]}"); m1=$(machine_ticks)
  node -e '
    const [out, hz, secs, round, ...t] = process.argv.slice(1);
    const [t0, t1, a0, a1, s0, s1, m0, m1] = t.map(Number);
    const r = JSON.parse(out);
    r.round = Number(round);
    r.calls = r.calls ?? Math.round(r.calls_per_s * Number(secs));
    const per = (b, e) => (e - b) / hz * 1e6 / r.calls;
    r.tunnel_us_per_call = per(t0, t1);
    r.airlockd_us_per_call = per(a0, a1);
    r.server_us_per_call = per(s0, s1);
    r.machine_us_per_call = per(m0, m1);
    console.log(JSON.stringify(r));' "$out" "$hz" "$secs" "$2" "$t0" "$t1" "$a0" "$a1" "$s0" "$s1" "$m0" "$m1" \
    >> "$results"
}
for r in $(seq "$rounds"); do
  for i in 0 1; do one "${arms[$(( (i + r) % 2 ))]}" "$r"; done
done
node bench/summary.mjs "$results" \
  '[["tunnel_us_per_call", "mcp-tunnel CPU µs/call", "mcp-tunnel CPU per call"],
    ["airlockd_us_per_call", "airlockd CPU µs/call", "airlockd CPU per call"],
    ["server_us_per_call", "echo server CPU µs/call", "echo server CPU per call"],
    ["machine_us_per_call", "machine CPU µs/call", "machine CPU per call"]]' \
  '[["stateless-2026", "session-2025"]]'
