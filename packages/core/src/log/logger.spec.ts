import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closeLogger, createLogger, redactSecrets } from './logger.js';

describe('redactSecrets', () => {
  it('replaces the password of every URL, and nothing else', () => {
    expect(redactSecrets('worker on redis://:S3cr3t@host:6379/0 and rediss://user:p%40ss@h2')).toBe('worker on redis://:***@host:6379/0 and rediss://user:***@h2');
    expect(redactSecrets('redis://127.0.0.1:6379 has no password')).toBe('redis://127.0.0.1:6379 has no password');
    expect(redactSecrets('ratio 3:4@noon')).toBe('ratio 3:4@noon');
  });

  it('is applied to every message a logger writes, in the log file too', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sgd-lab-log-')), 'x.log');
    const logger = createLogger({ file, quiet: true });
    logger.error('Redis at redis://:S3cr3t@10.0.0.5:6379 did not answer');
    await closeLogger(logger);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('redis://:***@10.0.0.5:6379');
    expect(text).not.toContain('S3cr3t');
  });
});
