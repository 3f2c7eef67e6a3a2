import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataError } from '@sgd-lab/core';
import { testDataFile } from '@sgd-lab/core/testing';
import { loadUci, parsePolarityCsv, parseUci, splitSet } from './data.js';
import { Tokenizer, CLS, PAD, SEP } from './tokenizer.js';

const uci = testDataFile('yelp_labelled_uci/yelp_labelled.txt');

describe('UCI Yelp sentences', () => {
  it.skipIf(!uci)('reads the 1,000 sentences, 500 per label, and splits them stratified and keyed by seed', () => {
    const d = loadUci(uci!, 0.2, 7);
    expect(d.train.texts.length + d.validation.texts.length).toBe(1000);
    expect(d.validation.texts.length).toBe(200);
    expect(d.validation.labels.reduce((s, v) => s + v, 0)).toBe(100);
    expect([...d.train.texts, ...d.validation.texts]).toContain('Wow... Loved this place.');
    expect(d.files[0].sha256).toBe('c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea');
    expect(loadUci(uci!, 0.2, 7).validation.texts).toEqual(d.validation.texts);
    expect(loadUci(uci!, 0.2, 8).validation.texts).not.toEqual(d.validation.texts);
  });

  it('names the line of a malformed row', () => {
    expect(() => parseUci('good food\t1\nno tab here\n', 'f.txt')).toThrow(DataError);
    expect(() => parseUci('good food\t1\nno tab here\n', 'f.txt')).toThrow(/f\.txt: line 2: expected "sentence<TAB>label", found no tab/);
    expect(() => parseUci('a\t1\nb\t3\n', 'f.txt')).toThrow(/line 2: label must be 0 or 1, got "3"/);
    expect(parseUci('tab\tinside\t0\n', 'f.txt').texts).toEqual(['tab\tinside']);
  });

  it('says where to get a missing file', () => {
    expect(() => loadUci('/nonexistent/yelp_labelled.txt', 0.2, 1)).toThrow(/yelp_labelled\.txt: missing; run `sgd-lab data fetch yelp`/);
  });
});

describe('Yelp Review Polarity CSV', () => {
  it('reads quoted fields with "" and \\n escapes and maps labels 1/2 to 0/1', () => {
    const csv = '"2","Great ""pho"", really.\\nWould go again"\n"1","Bad,\nslow service"\n';
    const s = parsePolarityCsv(csv, 'train.csv');
    expect(s.texts).toEqual(['Great "pho", really.\nWould go again', 'Bad,\nslow service']);
    expect(Array.from(s.labels)).toEqual([1, 0]);
    expect(parsePolarityCsv(csv, 'train.csv', 1).texts).toHaveLength(1);
  });

  it('names the line of a malformed row', () => {
    expect(() => parsePolarityCsv('"1","ok"\n"3","bad label"\n', 'test.csv')).toThrow(/test\.csv: line 2: label must be 1 or 2, got "3"/);
    expect(() => parsePolarityCsv('"1","ok"\n"2","a","b"\n', 'test.csv')).toThrow(/line 2: expected 2 fields/);
    expect(() => parsePolarityCsv('"1","ok"\n"2","never closed\n', 'test.csv')).toThrow(/line 2: unterminated quoted field/);
  });

  it('splits without losing or repeating a row', () => {
    const set = parsePolarityCsv(Array.from({ length: 50 }, (_, i) => `"${1 + (i % 2)}","review ${i}"`).join('\n'), 'x.csv');
    const { train, validation } = splitSet(set, 0.3, 3);
    expect(new Set([...train.texts, ...validation.texts]).size).toBe(50);
    expect(validation.texts.length).toBe(16);
  });
});

describe('BPE tokenizer', () => {
  const texts = ['the food was great', 'the service was slow', 'great food, great service!', 'slow slow slow'];

  it('is deterministic, learns frequent pieces, and round-trips text', () => {
    const a = Tokenizer.train(texts, 60);
    const b = Tokenizer.train([...texts], 60);
    expect(a.toJSON()).toEqual(b.toJSON());
    expect(a.vocabSize).toBeLessThanOrEqual(60);
    expect(a.json.symbols).toContain('\u2581great');
    expect(a.encode('great').length).toBe(1);
    expect(a.decode(a.encode('Great food, slow service!'))).toBe('great food , slow service !');
    expect(a.encode('zebra')).toContain(1); // unseen characters are <unk>
  });

  it('stops merging when no pair occurs twice', () => {
    const t = Tokenizer.train(['abc'], 1000);
    expect(t.json.merges).toHaveLength(0);
  });

  it('lays out XLNet classification inputs: left padding, <sep>, <cls> last', () => {
    const t = Tokenizer.train(texts, 60);
    const out = new Float32Array(8);
    t.encodeForClassification('great food', 8, out, 0);
    expect(Array.from(out.slice(0, 4))).toEqual([PAD, PAD, PAD, PAD]);
    expect(out[6]).toBe(SEP);
    expect(out[7]).toBe(CLS);
    t.encodeForClassification(texts.join(' '), 8, out, 0);
    expect(out[0]).not.toBe(PAD);
    expect(out[7]).toBe(CLS);
  });

  it('saves and loads to the same encodings; rejects a foreign file', () => {
    const t = Tokenizer.train(texts, 60);
    const dir = mkdtempSync(join(tmpdir(), 'tok-'));
    writeFileSync(join(dir, 't.json'), JSON.stringify(t.toJSON()));
    const u = new Tokenizer(JSON.parse(JSON.stringify(t.toJSON())));
    expect(u.encode('great slow service')).toEqual(t.encode('great slow service'));
    expect(() => new Tokenizer({ type: 'wordpiece' } as never)).toThrow(/not an sgd-lab BPE tokenizer/);
  });
});
