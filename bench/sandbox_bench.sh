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
# Prints a markdown table with p50/p99 and the largest resident set of the started program.
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
echo "| target | runs | p50 µs | p99 µs | max RSS KiB |"
echo "|---|---|---|---|---|"
row() {
  local name=$1; shift
  local runs=$runs
  if [ "$name" = srt ]; then runs=$(( runs < 50 ? runs : 50 )); fi
  "$bench" 10 -- "$@" >/dev/null  # warm-up (page cache, cgroup hierarchy)
  local line
  line=$("$bench" "$runs" -- "$@")
  local p50 p99 rss
  p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
  rss=$(sed -E 's/.*max_rss_kib=([0-9]+).*/\1/' <<<"$line")
  echo "| $name | $runs | $p50 | $p99 | $rss |"
}
row sandbox-agent "$PWD/build/sandbox-agent" run --config "$work/sandbox.yaml" --log-level warn -- sh -c true
row sandbox-agent+proxy "$PWD/build/sandbox-agent" run --config "$work/sandbox-proxy.yaml" --log-level warn -- sh -c true
row bwrap /usr/bin/bwrap --unshare-all --ro-bind / / sh -c true
srt=test/mcp/node_modules/.bin/srt
if [ -x "$srt" ]; then
  row srt "$PWD/$srt" -s "$work/srt.json" -c true
else
  echo "| srt | not installed (scripts/setup installs it into test/mcp) | | | |"
fi
row plain /bin/sh -c true
