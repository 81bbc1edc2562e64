#!/usr/bin/env bash
# The connected sandbox agent (sandbox-agent start, image "host"), measured through airlockd's
# /mcp. Needs root (real sandboxes). Everything on loopback.
#   1. per call: `bash {"command":"true"}` in an existing session, one caller, beside
#      airlock-tcp (a tunnelled native echo upstream) — ROUNDS rounds, the two interleaved;
#   2. the first call of a new session (its sandbox taken from the warm pool, the call), COUNT
#      sessions one after another, with PAUSE_MS between them and back to back;
#   3. memory: the agent's RSS idle (warm pool started, no session), then with 16 idle sessions
#      (each a sandbox with its shell), per session.
# Usage: [ROUNDS=3] [COUNT=200] [PAUSE_MS=20] bench/sandbox_session_bench.sh [SECONDS_PER_RUN]
#        (after scripts/build); AGENT_LOG_LEVEL=debug logs each call's time in the sandbox, and
#        KEEP=1 keeps the work directory (logs) and prints where.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

tcp_port=$(free_port)
setsid build/mcp_echo_server tcp "$tcp_port" 2>/dev/null & pids+=($!)
state=$work/state
printf 'listen: 127.0.0.1:0\nstate_dir: %s\ntls: {plaintext: true}\nlog_level: warn\nmcp: {max_sessions: 4096}\n' "$state" > "$work/airlockd.yaml"
setsid build/airlockd --config "$work/airlockd.yaml" 2>"$work/airlockd.log" & pids+=($!)
for _ in $(seq 100); do [ -f "$state/airlockd.url" ] && break; sleep 0.1; done
url=$(cat "$state/airlockd.url")
airlock() { build/airlock --state-dir "$state" "$@"; }
airlock --json tunnel create bench | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/tunnel.token"
airlock --json sandbox create bench-box | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$work/sandbox.token"
key=$(airlock --json agent-key create bench --tools '*' | sed -E 's/.*"key":"([^"]+)".*/\1/')
printf 'servers:\n  - {name: fx-tcp, url: "tcp://127.0.0.1:%s"}\n' "$tcp_port" > "$work/tunnel.yaml"
printf 'sandbox:\n  name: bench-box\n  image: host\n  resources: {cpu: "1", memory: 256Mi}\n  max_sessions: 64\n  warm_pool: 2\n' > "$work/sandbox.yaml"
setsid build/mcp-tunnel start --endpoint "${url/http/ws}/v1/connect" --token-file "$work/tunnel.token" \
  --config "$work/tunnel.yaml" --log-level warn 2>"$work/tunnel.log" & pids+=($!)
setsid build/sandbox-agent start --endpoint "${url/http/ws}/v1/connect" --token-file "$work/sandbox.token" \
  --config "$work/sandbox.yaml" --log-level ${AGENT_LOG_LEVEL:-warn} 2>"$work/sandbox.log" & agent=$!; pids+=($agent)
printf 'tools:\n  - {name: t, mcp_tunnel: bench, server: fx-tcp, prefix: tcp_}\n  - {name: box, sandbox: bench-box}\n' > "$work/tools.yaml"
airlock tools apply -f "$work/tools.yaml" >/dev/null
for _ in $(seq 100); do [ "$(airlock tools list | grep -c ' available')" = 2 ] && break; sleep 0.2; done
sleep 1  # the warm pool fills

echo "## per call (1 caller, ${secs}s each, interleaved)"
echo "| round | target | calls/s | p50 µs | p99 µs | errors |"
echo "|---:|---|---:|---:|---:|---:|"
for round in $(seq "${ROUNDS:-3}"); do
  for target in airlock-tcp sandbox-bash; do
    case $target in airlock-tcp) tool=tcp_echo; args='{"message":"hi"}' ;; *) tool=bash; args='{"command":"true"}' ;; esac
    build/mcp_load --label "$target" --target "$url/mcp" --tool "$tool" --arguments "$args" \
      --concurrency 1 --sessions 1 --duration "${secs}s" --header "Authorization: Bearer $key" |
      node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`| '"$round"' | ${r.label} | ${Math.round(r.calls_per_s)} | ${r.p50_us} | ${r.p99_us} | ${r.errors} |`)'
  done
done

echo
echo "## first call of a new session"
echo "| target | sessions | pause between | p50 µs | p90 µs | p99 µs | max µs | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for pause in "${PAUSE_MS:-20}" 0; do
  for target in airlock-tcp sandbox-bash; do
    case $target in airlock-tcp) tool=tcp_echo; args='{"message":"hi"}' ;; *) tool=bash; args='{"command":"true"}' ;; esac
    sleep 1
    build/mcp_load --label "$target" --target "$url/mcp" --tool "$tool" --arguments "$args" \
      --new-sessions "${COUNT:-200}" --pause-ms "$pause" --header "Authorization: Bearer $key" |
      node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`| ${r.label} | ${r.calls} | '"$pause"' ms | ${r.p50_us} | ${r.p90_us} | ${r.p99_us} | ${r.max_us} | ${r.errors} |`)'
  done
done
echo
echo "## memory (sandbox-agent's own RSS; the sandboxes' processes are not in it)"
sleep 2
rss() { awk '/VmRSS/ {print $2}' "/proc/$agent/status"; }
idle=$(rss)
node bench/sandbox_sessions.mjs "$url/mcp" "$key" 16 > "$work/hold.out" & holder=$!; pids+=($holder)
for _ in $(seq 300); do grep -q ready "$work/hold.out" 2>/dev/null && break; sleep 0.1; done
sleep 2
busy=$(rss)
kill "$holder" 2>/dev/null || true
echo "| idle agent (warm pool 2, no session) | 16 idle sessions | per idle session |"
echo "|---:|---:|---:|"
echo "| $idle KiB | $busy KiB | $(( (busy - idle) / 16 )) KiB |"
