// Statistics the benchmark summaries share: the median, a signed percentage, and a bootstrap
// 95 % interval for the median of per-round figures (fixed seed: the same runs always give the
// same interval).
export const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const signed = (x) => (x >= 0 ? "+" : "") + x.toFixed(1);
export function interval(xs) {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const boots = [];
  for (let i = 0; i < 4000; i++) boots.push(med(xs.map(() => xs[Math.floor(rand() * xs.length)])));
  boots.sort((a, b) => a - b);
  return `${boots[100].toFixed(1)} … ${boots[3899].toFixed(1)} %`;
}
