/**
 * The command tree of the sgd-lab CLI on commander: core's commands and the ones packages add,
 * each with `--help`, typed options and usage errors (exit 2) that say what was wrong and, for a
 * mistyped command or option, what was probably meant.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { CliCommand, CliOption } from '../plugin.js';

/** Exit code of every usage error. */
export const USAGE_EXIT = 2;

/** Parses an option value of a declared type, or says what was expected. */
export function typedParser(type: NonNullable<CliOption['type']>): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    const integer = type === 'integer' || type === 'positive-integer';
    const positive = type === 'positive-integer' || type === 'positive-number';
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || (positive && n <= 0)) {
      throw new InvalidArgumentError(`expected ${positive ? 'a positive ' : 'an '}${integer ? 'integer' : 'number'}, got "${value}".`);
    }
    return n;
  };
}

/** An option of a package command as a commander Option. */
export function toOption(o: CliOption): Option {
  const opt = new Option(o.flags, o.description);
  if (o.choices) opt.choices(o.choices);
  if (o.type) opt.argParser(typedParser(o.type));
  if (o.repeatable) opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), o.type ? String(typedParser(o.type)(v)) : v]);
  if (o.default !== undefined) opt.default(o.default);
  return opt;
}

/** Settings every command of the tree shares: errors labelled and a pointer to its help. */
export function configure(cmd: Command, path: string, err: (s: string) => void, out: (s: string) => void): Command {
  return cmd
    .exitOverride()
    .configureOutput({
      writeOut: out,
      writeErr: err,
      outputError: (text, write) => write(text.replace(/^error: /, 'usage error: ')),
    })
    .showHelpAfterError(`(see \`sgd-lab ${path ? `${path} ` : ''}--help\`)`)
    .showSuggestionAfterError(true);
}

/**
 * Adds a package's command under its path (`"data fetch mnist"` nests under `data` and `fetch`,
 * which list their children when called without one). `onResult` receives the exit code.
 */
export function addPackageCommand(
  program: Command,
  path: string,
  cmd: CliCommand,
  from: string,
  io: { err: (s: string) => void; out: (s: string) => void; setCode: (code: number) => void },
): void {
  const words = path.trim().split(/\s+/);
  let parent = program;
  for (const [i, word] of words.entries()) {
    const sub = words.slice(0, i + 1).join(' ');
    let next = parent.commands.find((c) => c.name() === word);
    const leaf = i === words.length - 1;
    if (next && leaf) {
      io.err(`warning: ${from} adds \`sgd-lab ${sub}\`, which another package already adds; the first one is kept\n`);
      return;
    }
    if (!next) {
      next = configure(new Command(word), sub, io.err, io.out);
      if (!leaf) next.description(`commands: see \`sgd-lab ${sub} --help\``);
      parent.addCommand(next);
    }
    parent = next;
  }
  const leaf = parent;
  leaf.description(`${cmd.description}  (${from})`);
  if (cmd.arguments) for (const a of cmd.arguments.split(/\s+/).filter(Boolean)) leaf.argument(a);
  for (const o of cmd.options ?? []) leaf.addOption(toOption(o));
  if (cmd.help) leaf.addHelpText('after', `\n${cmd.help}`);
  leaf.action(async (...args: unknown[]) => {
    // commander passes the declared arguments, then the options object, then the command.
    const command = args[args.length - 1] as Command;
    const positionals = command.processedArgs.flat().filter((a): a is string => typeof a === 'string');
    io.setCode(await cmd.run(positionals, command.opts()));
  });
}

/**
 * Group commands (`data`, `data fetch`) describe themselves by their commands. Called bare they
 * print their help on stderr (a usage error); an unknown word is an unknown command with the
 * closest known one suggested.
 */
export function finishGroups(cmd: Command): void {
  for (const c of cmd.commands) {
    if (c.commands.length === 0) continue;
    c.description(`commands: ${c.commands.map((x) => x.name()).join(', ')}`);
    // A wrong word under a group prints the group's help: the list of what it has.
    c.showHelpAfterError(true);
    finishGroups(c);
  }
}

/** Exit code of a commander error: 0 for help and version, else a usage error. */
export function commanderExit(e: CommanderError): number {
  return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : USAGE_EXIT;
}
