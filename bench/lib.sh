# Sourced by the benchmark scripts (from the repository root, after `set -euo pipefail`):
# a scratch directory and the processes started under setsid, both removed on exit; free
# loopback ports; CPU time from /proc.
work=$(mktemp -d)
pids=()  # each started with `setsid … & pids+=($!)`: its whole process group is killed
bench_cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
# A process's CPU time (user + system), and the machine's busy time (user, nice, system, irq,
# softirq; not idle, iowait or steal), in clock ticks of `hz`.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
