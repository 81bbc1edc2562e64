#!/usr/bin/env bash
# What a tools/call costs through the full path — airlockd /mcp → mcp-tunnel → a native echo
# server over tcp:// — in MCP 2026-07-28 (no session: every request carries its version and
# capabilities, and airlockd checks its _meta and headers) against 2025-06-18 in a session
# (callers share 16 sessions). One airlockd serves both; their runs are interleaved, the order
# turning each round, so that the VM's noise falls on both alike. Reported per run: calls/s,
# p50/p99 latency, airlockd's CPU time per call (user+system from /proc over the run) and the
# machine's. The figures to read are the medians, over rounds, of each round's own ratios.
# Usage: [CALLERS=64] [ROUNDS=10] [VERBOSE=1] [BASELINE=path/to/airlockd] \
#          bench/mcp_revision_bench.sh [SECONDS_PER_RUN]
#        (after scripts/build; BASELINE adds a second airlockd, another build, called in
#        2025-06-18 sessions in each round: a change measured against the build before it)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
callers=${CALLERS:-64}
rounds=${ROUNDS:-10}
. bench/lib.sh

tcp_port=$(free_port)
setsid build/mcp_echo_server tcp "$tcp_port" 2>/dev/null & pids+=($!)
wait_port "$tcp_port"

declare -A url key pid binary=([current]=build/airlockd)
builds=(current)
if [ -n "${BASELINE:-}" ]; then binary[baseline]=$BASELINE; builds+=(baseline); fi
for b in "${builds[@]}"; do
  state=$work/$b
  printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\n' "$state" > "$work/$b.yaml"
  setsid "${binary[$b]}" --config "$work/$b.yaml" 2>"$work/$b.log" & pids+=($!)
  pid[$b]=$!
  for _ in $(seq 100); do [ -f "$state/airlockd.url" ] && break; sleep 0.1; done
  url[$b]=$(cat "$state/airlockd.url")
  a() { build/airlock --state-dir "$state" "$@"; }
  a --json tunnel create bench | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/$b.token"
  key[$b]=$(a --json agent-key create bench --tools '*' | sed -E 's/.*"key":"([^"]+)".*/\1/')
  printf 'servers:\n  - {name: fx, url: "tcp://127.0.0.1:%s"}\n' "$tcp_port" > "$work/tunnel.yaml"
  setsid build/mcp-tunnel start --endpoint "${url[$b]/http/ws}/v1/connect" \
    --token-file "$work/$b.token" --config "$work/tunnel.yaml" --log-level warn \
    2>"$work/$b-tunnel.log" & pids+=($!)
  printf 'tools:\n  - {name: t, mcp_tunnel: bench, server: fx, prefix: tcp_}\n' > "$work/tools.yaml"
  a tools apply -f "$work/tools.yaml" >/dev/null
  for _ in $(seq 100); do a tools list | grep -q ' available' && break; sleep 0.2; done
done

results=$work/results.jsonl
# An arm: which airlockd, and which revision its callers speak.
declare -A arm_build=([session-2025]=current [stateless-2026]=current [baseline-2025]=baseline)
declare -A arm_revision=([session-2025]=2025-06-18 [stateless-2026]=2026-07-28 [baseline-2025]=2025-06-18)
arms=(session-2025 stateless-2026)
[ -n "${BASELINE:-}" ] && arms+=(baseline-2025)
one() {  # arm round
  local arm=$1 b=${arm_build[$1]} before after mbefore mafter
  before=$(cpu_ticks "${pid[$b]}")
  mbefore=$(machine_ticks)
  out=$(build/mcp_load --label "$arm" --target "${url[$b]}/mcp" --tool tcp_echo \
          --arguments '{"message":"hi"}' --concurrency "$callers" --sessions 16 \
          --revision "${arm_revision[$arm]}" --duration "${secs}s" \
          --header "Authorization: Bearer ${key[$b]}")
  after=$(cpu_ticks "${pid[$b]}")
  mafter=$(machine_ticks)
  node -e '
    const [out, before, after, hz, secs, round, mbefore, mafter] = process.argv.slice(1);
    const r = JSON.parse(out);
    r.round = Number(round);
    r.calls = r.calls ?? Math.round(r.calls_per_s * Number(secs));
    r.cpu_us_per_call = (after - before) / hz * 1e6 / r.calls;
    r.machine_us_per_call = (mafter - mbefore) / hz * 1e6 / r.calls;
    console.log(JSON.stringify(r));' "$out" "$before" "$after" "$hz" "$secs" "$2" "$mbefore" "$mafter" \
    >> "$results"
}
for r in $(seq "$rounds"); do
  n=${#arms[@]}
  for i in $(seq 0 $((n - 1))); do one "${arms[$(( (i + r) % n ))]}" "$r"; done
done
node bench/summary.mjs "$results" \
  '[["cpu_us_per_call", "airlockd CPU µs/call", "airlockd CPU per call"],
    ["machine_us_per_call", "machine CPU µs/call", "machine CPU per call"]]' \
  '[["stateless-2026", "session-2025"], ["session-2025", "baseline-2025"]]'
