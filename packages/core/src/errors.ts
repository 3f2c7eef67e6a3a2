/**
 * Errors a user can act on. The CLI prints their message (never a stack trace) and exits with
 * `exitCode`; anything else reaching the top level is a bug and is reported as one.
 */
export class UserError extends Error {
  /** Process exit code the CLI uses for this kind of error. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** A study config (or CLI argument) that does not validate. Exit code 2. */
export class ConfigError extends UserError {
  /** One line per problem, each naming the JSON path. */
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, 2);
    this.problems = problems;
  }
}

/**
 * A command line the CLI cannot take: an unknown command or option, a missing or malformed
 * argument. Exit code 2, printed as `usage error: ...` with a pointer to `--help`.
 */
export class UsageError extends UserError {
  /** The command whose usage was wrong (`run`, `data fetch`), for the `--help` hint. */
  readonly command?: string;
  constructor(message: string, command?: string) {
    super(message, 2);
    this.command = command;
  }
}

/** A data file that is missing, unreadable or malformed. Exit code 3. */
export class DataError extends UserError {
  /** The offending file. */
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`, 3);
    this.file = file;
  }
}

/** A run whose iterates or loss stopped being finite. Exit code 4. */
export class DivergenceError extends UserError {
  constructor(message: string) {
    super(message, 4);
  }
}

/** The user interrupted the study (Ctrl-C); what was computed has been written. */
export class CancelledError extends UserError {
  constructor() {
    super('cancelled: results computed so far were written', 130);
  }
}
