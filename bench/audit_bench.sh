#!/usr/bin/env bash
# The audit log's cost on the request path: tools/call through airlockd /mcp → mcp-tunnel → a
# native echo server, 64 callers, with the audit log on (every call a hash-chained record in
# audit.db) and off (audit.enabled: false). Two airlockd, each with its own tunnel to the same
# upstream, run side by side; their runs are interleaved (on, off, off, on, …) so that the
# VM's noise falls on both alike. Reported per run: calls/s, p50/p99 latency, and airlockd's
# CPU time per call (user+system from /proc, over the run) — the steadier figure on a noisy VM.
# A round is one run with the audit log on and one with it off, back to back; the figure to
# read is the median, over rounds, of each round's own on/off ratio, with a 95 % interval
# (bootstrap over the rounds) — on this noisy VM a single pair can differ by ±20 %. The
# audit writer thread's own CPU time (thread "audit-writer") is reported per call as well, and
# so are the machine's busy CPU time (every process and the kernel's own threads, which write
# the database's pages back to disk: /proc/stat) and the bytes airlockd wrote (/proc/PID/io).
# Usage: [CALLERS=64] [ROUNDS=20] [VERBOSE=1] [BASELINE=path/to/airlockd] \
#          bench/audit_bench.sh [SECONDS_PER_RUN]
#        (after scripts/build; VERBOSE prints every run; BASELINE adds a third airlockd, another
#        build with the audit log on, to each round, so that a change is measured against the
#        build before it in the same run)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
callers=${CALLERS:-64}
rounds=${ROUNDS:-20}
. bench/lib.sh

tcp_port=$(free_port)
setsid build/mcp_echo_server tcp "$tcp_port" 2>/dev/null & pids+=($!)
wait_port "$tcp_port"

declare -A url key pid binary=([on]=build/airlockd [off]=build/airlockd)
modes=(on off)
if [ -n "${BASELINE:-}" ]; then binary[baseline]=$BASELINE; modes+=(baseline); fi
for mode in "${modes[@]}"; do
  state=$work/$mode
  enabled=$([ "$mode" = off ] && echo false || echo true)
  printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\naudit: {enabled: %s}\n' \
    "$state" "$enabled" > "$work/$mode.yaml"
  setsid "${binary[$mode]}" --config "$work/$mode.yaml" 2>"$work/$mode.log" & pids+=($!)
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

# The audit writer thread's own CPU time (0 when there is none, as with the audit log off).
writer_ticks() {
  for t in /proc/$1/task/*; do
    [ "$(cat "$t/comm")" = audit-writer ] && { awk '{print $14 + $15}' "$t/stat"; return; }
  done
  echo 0
}
written_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }
results=$work/results.jsonl
one() {  # mode round
  local mode=$1 before after wbefore wafter mbefore mafter bbefore bafter
  before=$(cpu_ticks "${pid[$mode]}")
  wbefore=$(writer_ticks "${pid[$mode]}")
  mbefore=$(machine_ticks)
  bbefore=$(written_bytes "${pid[$mode]}")
  out=$(build/mcp_load --label "audit-$mode" --target "${url[$mode]}/mcp" --tool tcp_echo \
          --arguments '{"message":"hi"}' --concurrency "$callers" --sessions 16 \
          --duration "${secs}s" --header "Authorization: Bearer ${key[$mode]}")
  after=$(cpu_ticks "${pid[$mode]}")
  wafter=$(writer_ticks "${pid[$mode]}")
  mafter=$(machine_ticks)
  bafter=$(written_bytes "${pid[$mode]}")
  node -e '
    const [out, before, after, wbefore, wafter, hz, secs, round, mbefore, mafter, bbefore, bafter] =
      process.argv.slice(1);
    const r = JSON.parse(out);
    r.round = Number(round);
    r.calls = r.calls ?? Math.round(r.calls_per_s * Number(secs));
    r.cpu_us_per_call = (after - before) / hz * 1e6 / r.calls;
    r.writer_us_per_call = (wafter - wbefore) / hz * 1e6 / r.calls;
    r.machine_us_per_call = (mafter - mbefore) / hz * 1e6 / r.calls;
    r.bytes_written_per_call = (bafter - bbefore) / r.calls;
    console.log(JSON.stringify(r));' "$out" "$before" "$after" "$wbefore" "$wafter" "$hz" "$secs" "$2" \
    "$mbefore" "$mafter" "$bbefore" "$bafter" >> "$results"
}
for r in $(seq "$rounds"); do
  # The order turns each round, so that no arm always runs first or last.
  n=${#modes[@]}
  for i in $(seq 0 $((n - 1))); do one "${modes[$(( (i + r) % n ))]}" "$r"; done
done
verify_start=$(date +%s.%N)
records=$(build/airlock --state-dir "$work/on" --json audit verify)
verify_s=$(awk -v a="$verify_start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
node --input-type=module -e '
import fs from "node:fs";
import { interval, med, signed } from "./bench/stats.mjs";
const rows = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
if (process.env.VERBOSE) {
  console.log("| run | round | calls/s | p50 µs | p99 µs | airlockd CPU µs/call | writer µs/call | machine CPU µs/call | errors |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.label} | ${r.round} | ${Math.round(r.calls_per_s)} | ${r.p50_us} | ${r.p99_us} | ${r.cpu_us_per_call.toFixed(1)} | ${r.writer_us_per_call.toFixed(1)} | ${r.machine_us_per_call.toFixed(1)} | ${r.errors} |`);
}
// Each round ran on and off back to back: their ratio cancels the noise common to both.
const rounds = [...new Set(rows.map((r) => r.round))].map((n) => ({
  on: rows.find((r) => r.round === n && r.label === "audit-on"),
  off: rows.find((r) => r.round === n && r.label === "audit-off"),
  baseline: rows.find((r) => r.round === n && r.label === "audit-baseline") }));
const change = rounds.map((p) => (p.on.calls_per_s / p.off.calls_per_s - 1) * 100);
const cpu = rounds.map((p) => p.on.cpu_us_per_call - p.off.cpu_us_per_call);
const pick = (m, k) => rows.filter((r) => r.label === "audit-" + m).map((r) => r[k]);
const errors = rows.reduce((n, r) => n + r.errors, 0);
console.log(`rounds: ${rounds.length} × (on, off), ${rows[0].concurrency} callers; errors: ${errors}`);
console.log(`median calls/s: on ${Math.round(med(pick("on", "calls_per_s")))}, off ${Math.round(med(pick("off", "calls_per_s")))}`);
console.log(`calls/s, on against off in the same round: median ${med(change).toFixed(1)} % ` +
            `(95 % interval ${interval(change)})`);
if (rounds[0].baseline) {
  const base = rounds.map((p) => (p.baseline.calls_per_s / p.off.calls_per_s - 1) * 100);
  const machineBase = rounds.map((p) => (p.baseline.machine_us_per_call / p.off.machine_us_per_call - 1) * 100);
  console.log(`the baseline build, audit on, against off: calls/s median ${med(base).toFixed(1)} % ` +
              `(95 % interval ${interval(base)}); machine CPU per call ${signed(med(machineBase))} %; ` +
              `airlockd CPU per call ${med(pick("baseline", "cpu_us_per_call")).toFixed(1)} µs, ` +
              `writer ${med(pick("baseline", "writer_us_per_call")).toFixed(1)} µs, ` +
              `bytes written ${Math.round(med(pick("baseline", "bytes_written_per_call")))} per call`);
}
console.log(`airlockd CPU per call: on ${med(pick("on", "cpu_us_per_call")).toFixed(1)} µs, ` +
            `off ${med(pick("off", "cpu_us_per_call")).toFixed(1)} µs; ` +
            `difference in the same round: median ${med(cpu).toFixed(1)} µs`);
console.log(`of which the audit writer thread: ${med(pick("on", "writer_us_per_call")).toFixed(1)} µs per call`);
const machine = rounds.map((p) => (p.on.machine_us_per_call / p.off.machine_us_per_call - 1) * 100);
console.log(`machine CPU per call (every process and the kernel): on ${med(pick("on", "machine_us_per_call")).toFixed(1)} µs, ` +
            `off ${med(pick("off", "machine_us_per_call")).toFixed(1)} µs; on against off in the same round: median ${signed(med(machine))} %`);
console.log(`bytes airlockd wrote to disk per call: on ${Math.round(med(pick("on", "bytes_written_per_call")))}, ` +
            `off ${Math.round(med(pick("off", "bytes_written_per_call")))}`);
const v = JSON.parse(process.argv[2]);
console.log(`audit log after the runs: ${v.records} records, chain ${v.intact ? "intact" : "BROKEN: " + v.message}` +
            `; airlock audit verify took ${Number(process.argv[3]).toFixed(1)} s`);
' "$results" "$records" "$verify_s"
