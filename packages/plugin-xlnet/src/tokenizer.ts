/**
 * A byte-pair-encoding tokenizer trained on the training split only: deterministic (ties broken by
 * symbol ids, which follow first-seen frequency order), no downloads. Words are runs of letters,
 * runs of digits, or single other characters; the first symbol of a word carries "▁" (as in
 * SentencePiece, so pieces know where words start). Saved as JSON with the results, and loadable
 * so a study re-runs with the very same vocabulary.
 */
export const PAD = 0;
export const UNK = 1;
export const SEP = 2;
export const CLS = 3;
const SPECIALS = ['<pad>', '<unk>', '<sep>', '<cls>'];
const WORD = /\p{L}+|\p{N}+|[^\s\p{L}\p{N}]/gu;
const MARK = '\u2581';

export interface TokenizerJson {
  type: 'bpe';
  version: 1;
  lowercase: boolean;
  /** Symbol strings by id: specials, then characters, then merges in order. */
  symbols: string[];
  /** Merge k makes symbol (first merged id + k) from the pair [a, b]. */
  merges: [number, number][];
}

function words(text: string, lowercase: boolean): string[] {
  return (lowercase ? text.toLowerCase() : text).match(WORD) ?? [];
}

/** Min-heap on (-count, key) with lazy deletion: the most frequent pair, smallest key on ties. */
class PairHeap {
  private readonly items: [number, number][] = [];
  push(count: number, key: number): void {
    const a = this.items;
    a.push([count, key]);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): [number, number] | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  private before(x: [number, number], y: [number, number]): boolean {
    return x[0] > y[0] || (x[0] === y[0] && x[1] < y[1]);
  }
}

export class Tokenizer {
  private readonly ids = new Map<string, number>();
  private readonly rank = new Map<number, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly firstMerged: number;

  constructor(readonly json: TokenizerJson) {
    if (json.type !== 'bpe' || json.version !== 1 || !Array.isArray(json.symbols) || !Array.isArray(json.merges)) {
      throw new Error('not an sgd-lab BPE tokenizer (type "bpe", version 1)');
    }
    json.symbols.forEach((s, i) => this.ids.set(s, i));
    this.firstMerged = json.symbols.length - json.merges.length;
    json.merges.forEach(([a, b], k) => this.rank.set(a * 0x200000 + b, k));
  }

  get vocabSize(): number {
    return this.json.symbols.length;
  }

  /**
   * Learns merges on `texts` until the vocabulary has `vocabSize` symbols or no pair occurs at
   * least `minCount` times.
   */
  static train(texts: readonly string[], vocabSize: number, o: { lowercase?: boolean; minCount?: number } = {}): Tokenizer {
    const lowercase = o.lowercase ?? true;
    const minCount = o.minCount ?? 2;
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of words(t, lowercase)) counts.set(w, (counts.get(w) ?? 0) + 1);
    // Characters by frequency (then code point): ids in a fixed order.
    const charCount = new Map<string, number>();
    const split = (w: string) => [...w].map((c, i) => (i === 0 ? MARK + c : c));
    for (const [w, c] of counts) for (const s of split(w)) charCount.set(s, (charCount.get(s) ?? 0) + c);
    const chars = [...charCount.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([s]) => s);
    const symbols = [...SPECIALS, ...chars];
    const id = new Map(symbols.map((s, i) => [s, i]));
    // Unique words in a fixed order, as symbol-id sequences with their counts.
    const vocabWords = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const seqs = vocabWords.map(([w]) => split(w).map((s) => id.get(s)!));
    const freq = vocabWords.map(([, c]) => c);
    const K = 0x200000;
    const pairCount = new Map<number, number>();
    const where = new Map<number, Set<number>>();
    const heap = new PairHeap();
    const add = (key: number, c: number, w: number) => {
      const n = (pairCount.get(key) ?? 0) + c;
      pairCount.set(key, n);
      let set = where.get(key);
      if (!set) where.set(key, (set = new Set()));
      set.add(w);
      heap.push(n, key);
    };
    const remove = (key: number, c: number) => {
      const n = (pairCount.get(key) ?? 0) - c;
      if (n <= 0) pairCount.delete(key);
      else {
        pairCount.set(key, n);
        heap.push(n, key);
      }
    };
    seqs.forEach((s, w) => {
      for (let i = 0; i + 1 < s.length; i++) add(s[i] * K + s[i + 1], freq[w], w);
    });
    const merges: [number, number][] = [];
    while (symbols.length < vocabSize) {
      let best: [number, number] | undefined;
      while ((best = heap.pop())) if (pairCount.get(best[1]) === best[0]) break;
      if (!best || best[0] < minCount) break;
      const key = best[1];
      const a = Math.floor(key / K);
      const b = key % K;
      const next = symbols.length;
      symbols.push(symbols[a] + symbols[b]);
      merges.push([a, b]);
      const affected = [...(where.get(key) ?? [])].sort((x, y) => x - y);
      where.delete(key);
      for (const w of affected) {
        const s = seqs[w];
        for (let i = 0; i + 1 < s.length; i++) remove(s[i] * K + s[i + 1], freq[w]);
        const out: number[] = [];
        for (let i = 0; i < s.length; i++) {
          if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
            out.push(next);
            i++;
          } else out.push(s[i]);
        }
        seqs[w] = out;
        for (let i = 0; i + 1 < out.length; i++) add(out[i] * K + out[i + 1], freq[w], w);
      }
    }
    return new Tokenizer({ type: 'bpe', version: 1, lowercase, symbols, merges });
  }

  /** Token ids of one word (merges applied in the order they were learned). */
  private encodeWord(w: string): number[] {
    const hit = this.cache.get(w);
    if (hit) return hit;
    let seq = [...w].map((c, i) => this.ids.get(i === 0 ? MARK + c : c) ?? UNK);
    while (seq.length > 1) {
      let bestRank = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < seq.length; i++) {
        const r = this.rank.get(seq[i] * 0x200000 + seq[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          at = i;
        }
      }
      if (at < 0) break;
      const merged = this.firstMerged + bestRank;
      const [a, b] = this.json.merges[bestRank];
      const out: number[] = [];
      for (let i = 0; i < seq.length; i++) {
        if (i + 1 < seq.length && seq[i] === a && seq[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(seq[i]);
      }
      seq = out;
    }
    if (this.cache.size < 200_000) this.cache.set(w, seq);
    return seq;
  }

  encode(text: string): number[] {
    return words(text, this.json.lowercase).flatMap((w) => this.encodeWord(w));
  }

  decode(ids: readonly number[]): string {
    return ids
      .filter((i) => i > CLS)
      .map((i) => this.json.symbols[i] ?? '')
      .join('')
      .replaceAll(MARK, ' ')
      .trim();
  }

  /**
   * XLNet's classification input: the text's tokens (cut to length - 2), <sep>, <cls>, padded on
   * the left with <pad> to `length` (so <cls> is always last). Writes into `out` at `offset`.
   */
  encodeForClassification(text: string, length: number, out: Float32Array, offset: number): number {
    const ids = this.encode(text).slice(0, length - 2);
    const pad = length - ids.length - 2;
    out.fill(PAD, offset, offset + pad);
    for (let i = 0; i < ids.length; i++) out[offset + pad + i] = ids[i];
    out[offset + length - 2] = SEP;
    out[offset + length - 1] = CLS;
    return ids.length;
  }

  toJSON(): TokenizerJson {
    return this.json;
  }
}
