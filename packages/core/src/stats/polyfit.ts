/**
 * Least-squares polynomial fits, solved by Householder QR (no normal equations: Vandermonde
 * systems in 1/b are badly conditioned).
 */

export interface PolyFitOptions {
  /** Highest power. */
  degree: number;
  /** Lowest power; 1 fits without a constant term (Theorem 4). @default 0 */
  minPower?: number;
  /** Per-point weights (multiply the residuals). @default all ones */
  weights?: readonly number[];
}

export interface PolyFit {
  /** coefficients[k] multiplies x^k; entries below minPower are 0. */
  coefficients: number[];
  /** Weighted residual sum of squares. */
  rss: number;
}

/** Fits y ~ sum_{k=minPower}^{degree} c_k x^k by weighted least squares. */
export function polyfit(x: readonly number[], y: readonly number[], opts: PolyFitOptions): PolyFit {
  const minPower = opts.minPower ?? 0;
  const cols = opts.degree - minPower + 1;
  const rows = x.length;
  if (x.length !== y.length) throw new RangeError('polyfit: x and y differ in length');
  if (rows < cols) throw new RangeError(`polyfit: ${rows} points cannot determine ${cols} coefficients`);
  // Scale x to [-1, 1]-ish magnitude to keep the columns comparable.
  const scale = Math.max(...x.map((v) => Math.abs(v))) || 1;
  const a: number[][] = [];
  const rhs: number[] = [];
  for (let i = 0; i < rows; i++) {
    const w = opts.weights?.[i] ?? 1;
    const row: number[] = [];
    for (let k = minPower; k <= opts.degree; k++) row.push(w * (x[i] / scale) ** k);
    a.push(row);
    rhs.push(w * y[i]);
  }
  const coef = leastSquares(a, rhs);
  const coefficients = new Array<number>(opts.degree + 1).fill(0);
  for (let k = minPower; k <= opts.degree; k++) coefficients[k] = coef[k - minPower] / scale ** k;
  let rss = 0;
  for (let i = 0; i < rows; i++) {
    const w = opts.weights?.[i] ?? 1;
    const r = w * (y[i] - polyval(coefficients, x[i]));
    rss += r * r;
  }
  return { coefficients, rss };
}

/** Evaluates sum_k c_k x^k (Horner). */
export function polyval(coefficients: readonly number[], x: number): number {
  let v = 0;
  for (let k = coefficients.length - 1; k >= 0; k--) v = v * x + coefficients[k];
  return v;
}

/** Solves min ||A c - y|| for a dense tall A by Householder QR. */
export function leastSquares(aIn: readonly (readonly number[])[], yIn: readonly number[]): number[] {
  return householder(aIn, yIn).coefficients;
}

/** Real roots of a polynomial in (lo, hi), by sign changes on a grid and bisection. */
export function realRootsIn(coefficients: readonly number[], lo: number, hi: number, grid = 2000): number[] {
  const roots: number[] = [];
  let x0 = lo;
  let f0 = polyval(coefficients, x0);
  for (let i = 1; i <= grid; i++) {
    const x1 = lo + ((hi - lo) * i) / grid;
    const f1 = polyval(coefficients, x1);
    if (f0 === 0) roots.push(x0);
    else if (f0 * f1 < 0) {
      let a = x0;
      let b = x1;
      let fa = f0;
      for (let it = 0; it < 200 && b - a > 1e-15 * Math.max(1, Math.abs(a)); it++) {
        const mid = (a + b) / 2;
        const fm = polyval(coefficients, mid);
        if (fa * fm <= 0) b = mid;
        else {
          a = mid;
          fa = fm;
        }
      }
      roots.push((a + b) / 2);
    }
    x0 = x1;
    f0 = f1;
  }
  return roots;
}

/** A weighted least-squares fit with known variances: coefficients, their covariance, chi-square. */
export interface WeightedFit {
  /** coefficients[k] multiplies x^powers[k]. */
  coefficients: number[];
  /** Covariance of the coefficients, (X' W X)^-1. */
  covariance: number[][];
  /** sum_i (y_i - fit_i)^2 / sigma_i^2. */
  chiSquare: number;
  /** Points minus coefficients. */
  df: number;
}

/**
 * Fits y_i ~ sum_k c_k x_i^powers[k] with Var(y_i) = sigma_i^2 known, by Householder QR of the
 * whitened design (columns scaled to unit norm first): the coefficients, their covariance
 * R^-1 R^-T and the residual chi-square.
 */
export function weightedPolyfit(x: readonly number[], y: readonly number[], sigma: readonly number[], powers: readonly number[]): WeightedFit {
  const n = x.length;
  const p = powers.length;
  if (n < p) throw new RangeError(`weightedPolyfit: ${n} points cannot determine ${p} coefficients`);
  const cols = powers.map((k) => x.map((xi, i) => xi ** k / sigma[i]));
  const norms = cols.map((c) => Math.sqrt(c.reduce((s, v) => s + v * v, 0)) || 1);
  const a = Array.from({ length: n }, (_, i) => cols.map((c, j) => c[i] / norms[j]));
  const rhs = y.map((v, i) => v / sigma[i]);
  const { coefficients: scaled, r } = householder(a, rhs);
  const rInv = upperInverse(r);
  const covariance = Array.from({ length: p }, (_, i) =>
    Array.from({ length: p }, (_, j) => {
      let s = 0;
      for (let k = Math.max(i, j); k < p; k++) s += rInv[i][k] * rInv[j][k];
      return s / (norms[i] * norms[j]);
    }),
  );
  const coefficients = scaled.map((c, j) => c / norms[j]);
  let chiSquare = 0;
  for (let i = 0; i < n; i++) {
    let f = 0;
    for (let j = 0; j < p; j++) f += coefficients[j] * x[i] ** powers[j];
    chiSquare += ((y[i] - f) / sigma[i]) ** 2;
  }
  return { coefficients, covariance, chiSquare, df: n - p };
}

/** Householder QR least squares that also returns R (p x p, upper triangular). */
function householder(aIn: readonly (readonly number[])[], yIn: readonly number[]): { coefficients: number[]; r: number[][] } {
  const m = aIn.length;
  const n = aIn[0]?.length ?? 0;
  const a = aIn.map((row) => [...row]);
  const y = [...yIn];
  for (let k = 0; k < n; k++) {
    let norm = 0;
    for (let i = k; i < m; i++) norm += a[i][k] * a[i][k];
    norm = Math.sqrt(norm);
    if (norm === 0) throw new RangeError('leastSquares: the design matrix is rank deficient');
    const alpha = a[k][k] > 0 ? -norm : norm;
    const v = new Array<number>(m).fill(0);
    v[k] = a[k][k] - alpha;
    for (let i = k + 1; i < m; i++) v[i] = a[i][k];
    let vv = 0;
    for (let i = k; i < m; i++) vv += v[i] * v[i];
    if (vv === 0) continue;
    for (let j = k; j < n; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += v[i] * a[i][j];
      const f = (2 * s) / vv;
      for (let i = k; i < m; i++) a[i][j] -= f * v[i];
    }
    let s = 0;
    for (let i = k; i < m; i++) s += v[i] * y[i];
    const f = (2 * s) / vv;
    for (let i = k; i < m; i++) y[i] -= f * v[i];
  }
  const r = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (j >= i ? a[i][j] : 0)));
  const c = new Array<number>(n).fill(0);
  for (let k = n - 1; k >= 0; k--) {
    let s = y[k];
    for (let j = k + 1; j < n; j++) s -= r[k][j] * c[j];
    c[k] = s / r[k][k];
  }
  return { coefficients: c, r };
}

/** Inverse of an upper-triangular matrix by back substitution. */
function upperInverse(r: readonly (readonly number[])[]): number[][] {
  const n = r.length;
  const inv = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let j = 0; j < n; j++) {
    inv[j][j] = 1 / r[j][j];
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += r[i][k] * inv[k][j];
      inv[i][j] = -s / r[i][i];
    }
  }
  return inv;
}
