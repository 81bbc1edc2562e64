#!/usr/bin/env bash
# The audit log's cost on the request path: tools/call through airlockd /mcp → mcp-tunnel → a
# native echo server, 64 callers, with the audit log on (every call a hash-chained record in
# audit.db) and off (audit.enabled: false). Two airlockd, each with its own tunnel to the same
# upstream, run side by side; their runs are interleaved (on, off, off, on, …) so that the
# VM's noise falls on both alike. Reported per run: calls/s, p50/p99 latency, and airlockd's
# CPU time per call (user+system from /proc, over the run) — the steadier figure on a noisy VM.
# Usage: [CALLERS=64] [ROUNDS=3] bench/audit_bench.sh [SECONDS_PER_RUN]   (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
callers=${CALLERS:-64}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

tcp_port=$(free_port)
setsid build/mcp_echo_server tcp "$tcp_port" 2>/dev/null & pids+=($!)
wait_port "$tcp_port"

declare -A url key pid
for mode in on off; do
  state=$work/$mode
  enabled=$([ "$mode" = on ] && echo true || echo false)
  printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\naudit: {enabled: %s}\n' \
    "$state" "$enabled" > "$work/$mode.yaml"
  setsid build/airlockd --config "$work/$mode.yaml" 2>"$work/$mode.log" & pids+=($!)
  pid[$mode]=$!
  for _ in $(seq 100); do [ -f "$state/airlockd.url" ] && break; sleep 0.1; done
  url[$mode]=$(cat "$state/airlockd.url")
  a() { build/airlock --state-dir "$state" "$@"; }
  a --json tunnel create bench | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/$mode.token"
  key[$mode]=$(a --json agent-key create bench --tools '*' | sed -E 's/.*"key":"([^"]+)".*/\1/')
  printf 'servers:\n  - {name: fx, url: "tcp://127.0.0.1:%s"}\n' "$tcp_port" > "$work/tunnel.yaml"
  setsid build/mcp-tunnel start --endpoint "${url[$mode]/http/ws}/v1/connect" \
    --token-file "$work/$mode.token" --config "$work/tunnel.yaml" --log-level warn \
    2>"$work/$mode-tunnel.log" & pids+=($!)
  printf 'tools:\n  - {name: t, mcp_tunnel: bench, server: fx, prefix: tcp_}\n' > "$work/tools.yaml"
  a tools apply -f "$work/tools.yaml" >/dev/null
  for _ in $(seq 100); do a tools list | grep -q ' available' && break; sleep 0.2; done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
results=$work/results.jsonl
one() {  # mode
  local mode=$1 before after
  before=$(cpu_ticks "${pid[$mode]}")
  out=$(build/mcp_load --label "audit-$mode" --target "${url[$mode]}/mcp" --tool tcp_echo \
          --arguments '{"message":"hi"}' --concurrency "$callers" --sessions 16 \
          --duration "${secs}s" --header "Authorization: Bearer ${key[$mode]}")
  after=$(cpu_ticks "${pid[$mode]}")
  node -e '
    const r = JSON.parse(process.argv[1]);
    r.cpu_s = (Number(process.argv[3]) - Number(process.argv[2])) / Number(process.argv[4]);
    r.calls = r.calls ?? Math.round(r.calls_per_s * Number(process.argv[5]));
    r.cpu_us_per_call = r.cpu_s * 1e6 / r.calls;
    console.log(JSON.stringify(r));' "$out" "$before" "$after" "$hz" "$secs" >> "$results"
}
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then one on; one off; else one off; one on; fi
done
records=$(build/airlock --state-dir "$work/on" --json audit verify)
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
console.log("| run | callers | calls/s | p50 µs | p99 µs | airlockd CPU µs/call | errors |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.label} | ${r.concurrency} | ${Math.round(r.calls_per_s)} | ${r.p50_us} | ${r.p99_us} | ${r.cpu_us_per_call.toFixed(1)} | ${r.errors} |`);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pick = (m, k) => rows.filter((r) => r.label === "audit-" + m).map((r) => r[k]);
const on = med(pick("on", "calls_per_s")), off = med(pick("off", "calls_per_s"));
const con = med(pick("on", "cpu_us_per_call")), coff = med(pick("off", "cpu_us_per_call"));
console.log(`\nmedian calls/s: on ${Math.round(on)}, off ${Math.round(off)} (${((on / off - 1) * 100).toFixed(1)} %)`);
console.log(`median airlockd CPU per call: on ${con.toFixed(1)} µs, off ${coff.toFixed(1)} µs (${((con / coff - 1) * 100).toFixed(1)} %)`);
const v = JSON.parse(process.argv[2]);
console.log(`audit log after the runs: ${v.records} records, chain ${v.intact ? "intact" : "BROKEN: " + v.message}`);
' "$results" "$records"
