import winston from 'winston';

/**
 * Replaces the password of every URL in a text (`redis://:secret@host`, `redis://user:secret@host`)
 * by `***`: logs, error messages and manifests never carry credentials.
 */
export function redactSecrets(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@/\s]+)@/gi, '$1$2:***@');
}

/** A winston format that redacts every message before any transport sees it. */
const redact = winston.format((info) => {
  if (typeof info.message === 'string') info.message = redactSecrets(info.message);
  return info;
});

/** Logger options. */
export interface LoggerOptions {
  /** Also write every message to this file. */
  file?: string;
  /** Only warnings and errors on stderr. */
  quiet?: boolean;
  level?: string;
}

/** A winston logger that writes to stderr (never stdout: results go there) and optionally a file. */
export function createLogger(opts: LoggerOptions = {}): winston.Logger {
  const transports: winston.transport[] = [
    new winston.transports.Console({
      level: opts.quiet ? 'warn' : (opts.level ?? 'info'),
      stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      format: winston.format.printf(({ level, message }) => (level === 'info' ? `${message}` : `${level}: ${message}`)),
    }),
  ];
  if (opts.file) {
    transports.push(
      new winston.transports.File({
        filename: opts.file,
        level: 'debug',
        format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      }),
    );
  }
  return winston.createLogger({ level: 'debug', format: redact(), transports });
}

/** Closes a logger's transports and waits until files are flushed. */
export async function closeLogger(logger: winston.Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    logger.on('finish', () => resolve());
    logger.end();
    setTimeout(resolve, 2000).unref();
  });
}
