import { describe, expect, it } from 'vitest';
import { DataError } from '@sgd-lab/core';
import { testDataFile } from '@sgd-lab/core/testing';
import { ADMISSION_DIR, ADMISSION_FILE, loadAdmission, parseAdmissionCsv, syntheticData } from './data.js';

const real = testDataFile(ADMISSION_DIR, ADMISSION_FILE);
const HEADER = 'Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit ';

function columnStats(x: Float64Array, n: number, p: number, j: number) {
  let m = 0;
  for (let i = 0; i < n; i++) m += x[i * p + j] / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i * p + j] - m) ** 2 / n;
  return { mean: m, std: Math.sqrt(v) };
}

describe.skipIf(!real)('the real admission file', () => {
  it('loads 500 rows, 7 standardised features and an intercept', () => {
    const d = loadAdmission(real!, { standardizeTarget: false });
    expect(d.n).toBe(500);
    expect(d.p).toBe(8);
    expect(d.features).toEqual(['GRE Score', 'TOEFL Score', 'University Rating', 'SOP', 'LOR ', 'CGPA', 'Research', '(intercept)']);
    for (let j = 0; j < 7; j++) {
      const s = columnStats(d.x, d.n, d.p, j);
      expect(Math.abs(s.mean)).toBeLessThan(1e-12);
      expect(s.std).toBeCloseTo(1, 12);
    }
    for (let i = 0; i < d.n; i++) expect(d.x[i * 8 + 7]).toBe(1);
    expect(d.y[0]).toBe(0.92);
    expect(d.y[499]).toBe(0.84);
    // sha256 listed in shared/data/graduate_admission/SOURCE.md
    expect(d.sha256).toBe('4d46ee6b89402ed92c37120672cef85379876ccb72ecb80f58120d7202645dc9');
  });

  it('standardises the target on request', () => {
    const d = loadAdmission(real!, { standardizeTarget: true });
    const s = columnStats(d.y, d.n, 1, 0);
    expect(Math.abs(s.mean)).toBeLessThan(1e-12);
    expect(s.std).toBeCloseTo(1, 12);
  });
});

describe('parseAdmissionCsv', () => {
  const good = `${HEADER}\r\n1,337,118,4,4.5,4.5,9.65,1,0.92\r\n2,324,107,4,4,4.5,8.87,1,0.76\r\n3,316,104,3,3,3.5,8,0,0.72`;

  it('parses CRLF text without a final newline', () => {
    const d = parseAdmissionCsv(good, 'a.csv', { standardizeTarget: false });
    expect(d.n).toBe(3);
    expect(Array.from(d.y)).toEqual([0.92, 0.76, 0.72]);
  });

  it('names the file, line and column of a bad value', () => {
    const bad = good.replace('2,324,107,4,4,4.5,8.87', '2,324,107,4,4,4.5,abc');
    expect(() => parseAdmissionCsv(bad, 'a.csv', { standardizeTarget: false })).toThrowError(
      new DataError('a.csv', 'line 3, column "CGPA": "abc" is not a number'),
    );
  });

  it('names the line of a short row', () => {
    const bad = good.replace('3,316,104,3,3,3.5,8,0,0.72', '3,316,104');
    expect(() => parseAdmissionCsv(bad, 'a.csv', { standardizeTarget: false })).toThrow(/a\.csv: line 4: expected 9 fields, found 3/);
  });

  it('insists on the original header (the target keeps its trailing space)', () => {
    const renamed = good.replace('Chance of Admit ', 'Chance of Admit');
    expect(() => parseAdmissionCsv(renamed, 'a.csv', { standardizeTarget: false })).toThrow(/no column "Chance of Admit "/);
  });

  it('rejects a constant feature', () => {
    const constant = good.replace('9.65', '8').replace('8.87', '8');
    expect(() => parseAdmissionCsv(constant, 'a.csv', { standardizeTarget: false })).toThrow(/column "CGPA" is constant/);
  });

  it('explains how to get a missing file', () => {
    expect(() => loadAdmission('/nonexistent/x.csv', { standardizeTarget: false })).toThrow(/x\.csv: not found; download "Admission_Predict_Ver1\.1\.csv" from the Kaggle/);
  });
});

describe('syntheticData', () => {
  it('is a deterministic function of the seed', () => {
    const a = syntheticData(3, { rows: 50, features: 4, noise: 0.1 }, false);
    const b = syntheticData(3, { rows: 50, features: 4, noise: 0.1 }, false);
    const c = syntheticData(4, { rows: 50, features: 4, noise: 0.1 }, false);
    expect(Array.from(a.y)).toEqual(Array.from(b.y));
    expect(Array.from(a.y)).not.toEqual(Array.from(c.y));
    expect(a.p).toBe(5);
  });
});

describe('hostile CSV content', () => {
  const row = (i: number, gre: number | string) => `${i},${gre},${100 + i},${1 + (i % 5)},${1 + (i % 4)},${2 + (i % 3)},${7 + i / 10},${i % 2},0.${5 + i}`;
  const csv = (rows: string[]) => [HEADER, ...rows].join('\n');
  const rows = (f: (i: number) => number | string) => Array.from({ length: 6 }, (_, i) => row(i + 1, f(i)));

  it('reads a file with a UTF-8 byte-order mark like one without (Serial No. is not a feature)', () => {
    const plain = parseAdmissionCsv(csv(rows((i) => 300 + i)), 'f.csv', { standardizeTarget: false });
    const bom = parseAdmissionCsv('\uFEFF' + csv(rows((i) => 300 + i)), 'f.csv', { standardizeTarget: false });
    expect(bom.features).toEqual(plain.features);
    expect(bom.features).not.toContain('\uFEFFSerial No.');
    expect([...bom.x]).toEqual([...plain.x]);
  });

  it('standardises values near the float limit instead of turning them into zeros', () => {
    const d = parseAdmissionCsv(csv(rows((i) => (i % 2 ? 1e308 : -1e308))), 'f.csv', { standardizeTarget: false });
    const s = columnStats(d.x, d.n, d.p, 0);
    expect(Math.abs(s.mean)).toBeLessThan(1e-12);
    expect(s.std).toBeCloseTo(1, 12);
    expect([...d.x].every(Number.isFinite)).toBe(true);
  });

  it('names the file, line and column of a non-finite or overflowing value, and a constant column', () => {
    for (const bad of ['1e309', 'Infinity', 'NaN', '-inf']) {
      expect(() => parseAdmissionCsv(csv(rows((i) => (i === 3 ? bad : 300))), 'f.csv', { standardizeTarget: false })).toThrow(new RegExp(`line 5, column "GRE Score": "${bad}" is not a number`));
    }
    expect(() => parseAdmissionCsv(csv(rows(() => 300)), 'f.csv', { standardizeTarget: false })).toThrow(/column "GRE Score" is constant/);
  });
});
