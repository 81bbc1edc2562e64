#!/usr/bin/env bash
# Sandbox start-up benchmark: a fully isolated `sh -c true`, start to exit, RUNS times in a row
# (default 200), through
#   sandbox-agent   sandbox-agent run --config (image: host, default limits) -- sh -c true
#                   every namespace, cgroup limits, pivot_root, capabilities, seccomp
#   sandbox-agent+proxy  the same with an allowlist, so the egress proxy runs too
#   bwrap           bwrap --unshare-all --ro-bind / / sh -c true   (Debian's bubblewrap)
#   srt             srt -c true  (@anthropic-ai/sandbox-runtime from test/mcp, no domains
#                   allowed; needs socat and ripgrep; fewer runs: it takes ~0.3 s each)
#   plain           sh -c true, no isolation (the floor)
# The first three run interleaved (one run of each in turn), so that a noisy machine weighs on
# each alike. Prints a markdown table with p50/p99, the largest resident set of the started
# program, and each p50 against bwrap's.
# Needs root (cgroups). Usage: bench/sandbox_bench.sh [RUNS]   (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/sandbox.yaml" <<YAML
sandbox:
  type: self-hosted
  name: bench
  image: host
YAML
cat > "$work/sandbox-proxy.yaml" <<YAML
sandbox:
  type: self-hosted
  name: bench
  image: host
  network:
    allowed_outbound: ["*.internal-api.example.com"]
YAML
echo '{"network":{"allowedDomains":[],"deniedDomains":[]},"filesystem":{"denyRead":[],"allowWrite":[],"denyWrite":[]}}' > "$work/srt.json"
bench=build/spawn_bench
echo "| target | runs | p50 µs | p99 µs | max RSS KiB | p50 / bwrap |"
echo "|---|---|---|---|---|---|"
# One markdown row from a spawn_bench line; $3: bwrap's p50 for the last column ("" for none).
row() {
  local name=$1 line=$2 base=${3:-}
  local runs p50 p99 rss ratio=""
  runs=$(sed -E 's/.*runs=([0-9]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
  rss=$(sed -E 's/.*max_rss_kib=([0-9]+).*/\1/' <<<"$line")
  if [ -n "$base" ]; then ratio=$(awk -v a="$p50" -v b="$base" 'BEGIN { printf "%.2fx", a / b }'); fi
  echo "| $name | $runs | $p50 | $p99 | $rss | $ratio |"
}
agent=("$PWD/build/sandbox-agent" run --log-level warn)
bwrap=(/usr/bin/bwrap --unshare-all --ro-bind / / sh -c true)
# sandbox-agent, sandbox-agent+proxy and bwrap interleaved run by run (the VM's noise weighs on
# each alike), after a warm-up (page cache, cgroup hierarchies).
"$bench" 10 -- "${agent[@]}" --config "$work/sandbox.yaml" -- sh -c true :: "${bwrap[@]}" >/dev/null
mapfile -t lines < <("$bench" "$runs" -- \
  "${agent[@]}" --config "$work/sandbox.yaml" -- sh -c true :: \
  "${agent[@]}" --config "$work/sandbox-proxy.yaml" -- sh -c true :: \
  "${bwrap[@]}")
base=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"${lines[2]}")
row sandbox-agent "${lines[0]}" "$base"
row sandbox-agent+proxy "${lines[1]}" "$base"
row bwrap "${lines[2]}" "$base"
srt=test/mcp/node_modules/.bin/srt
if [ -x "$srt" ]; then
  srt_runs=$(( runs < 50 ? runs : 50 ))
  "$bench" 3 -- "$PWD/$srt" -s "$work/srt.json" -c true >/dev/null
  row srt "$("$bench" "$srt_runs" -- "$PWD/$srt" -s "$work/srt.json" -c true)" "$base"
else
  echo "| srt | not installed (scripts/setup installs it into test/mcp) | | | | |"
fi
row plain "$("$bench" "$runs" -- /bin/sh -c true)" "$base"
