// Summarizes an interleaved benchmark's runs (one JSON object per line, each with label, round,
// calls_per_s, p50_us, p99_us, errors, concurrency, and the CPU figures named below): per arm,
// the median of every figure; per comparison, the median over rounds of each round's own
// ratio, with a bootstrap 95 % interval. VERBOSE=1 prints every run first.
// Usage: node bench/summary.mjs RESULTS.jsonl 'METRICS' 'COMPARISONS'
//   METRICS:     [[key, "column header", "name in comparisons"], ...]
//   COMPARISONS: [[arm, against arm], ...] (a pair whose arms did not run is skipped)
import fs from "node:fs";
import { interval, med, signed } from "./stats.mjs";

const [file, metricsJson, comparisonsJson] = process.argv.slice(2);
const metrics = JSON.parse(metricsJson);
const comparisons = JSON.parse(comparisonsJson);
const rows = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const header = (cols) => `| ${cols.join(" | ")} |\n|---|${cols.slice(1).map(() => "---:").join("|")}|`;
if (process.env.VERBOSE) {
  console.log(header(["run", "round", "calls/s", "p50 µs", "p99 µs", ...metrics.map((m) => m[1]), "errors"]));
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.round} | ${Math.round(r.calls_per_s)} | ${r.p50_us} | ${r.p99_us} | ` +
                `${metrics.map(([k]) => r[k].toFixed(1)).join(" | ")} | ${r.errors} |`);
  }
}
const arms = [...new Set(rows.map((r) => r.label))];
const rounds = [...new Set(rows.map((r) => r.round))];
const get = (arm, n) => rows.find((r) => r.round === n && r.label === arm);
const errors = rows.reduce((n, r) => n + r.errors, 0);
console.log(`rounds: ${rounds.length} × (${arms.join(", ")}), ${rows[0].concurrency} callers; errors: ${errors}`);
console.log(header(["arm", "calls/s", "p50 µs", "p99 µs", ...metrics.map((m) => m[1])]));
for (const a of arms) {
  const rs = rows.filter((r) => r.label === a);
  const m = (k) => med(rs.map((r) => r[k]));
  console.log(`| ${a} | ${Math.round(m("calls_per_s"))} | ${m("p50_us")} | ${m("p99_us")} | ` +
              `${metrics.map(([k]) => m(k).toFixed(1)).join(" | ")} |`);
}
for (const [a, b] of comparisons) {
  if (!arms.includes(a) || !arms.includes(b)) continue;
  for (const [k, , what] of [...metrics, ["calls_per_s", "", "calls/s"]]) {
    const xs = rounds.map((n) => (get(a, n)[k] / get(b, n)[k] - 1) * 100);
    console.log(`${a} against ${b}, ${what}: median ${signed(med(xs))} % (95 % interval ${interval(xs)})`);
  }
}
