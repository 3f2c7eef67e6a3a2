/** Standard normal distribution helpers, accurate to about 1e-13 relative in the range used here. */

const SQRT_PI = Math.sqrt(Math.PI);

/** Complementary error function. Series below 3, Lentz continued fraction above. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x === Infinity) return 0;
  if (x < 3) {
    // erf(x) = 2/sqrt(pi) * sum (-1)^k x^(2k+1) / (k! (2k+1))
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let k = 1; k < 200; k++) {
      term *= -x2 / k;
      const add = term / (2 * k + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / SQRT_PI) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = d === 0 ? tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (SQRT_PI * f);
}

/** P(Z <= z) for Z ~ N(0, 1). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** P(Z > z) for Z ~ N(0, 1), accurate in the far upper tail. */
export function normalSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

/** The z with P(Z <= z) = p, by safeguarded Newton iteration on normalCdf. */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new RangeError(`normalQuantile needs p in [0, 1], got ${p}`);
  }
  if (p > 0.5) return -normalQuantile(1 - p);
  // Lower half: start from the tail asymptote and refine.
  let lo = -40;
  let hi = 0;
  let z = -Math.sqrt(-2 * Math.log(p));
  for (let i = 0; i < 100; i++) {
    const f = normalCdf(z) - p;
    if (f > 0) hi = z;
    else lo = z;
    const density = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    let next = density > 0 ? z - f / density : (lo + hi) / 2;
    if (!(next > lo && next < hi)) next = (lo + hi) / 2;
    if (Math.abs(next - z) < 1e-14 * Math.max(1, Math.abs(z))) return next;
    z = next;
  }
  return z;
}
