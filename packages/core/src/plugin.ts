import type { JSONSchemaType } from 'ajv';
import type { DependencyContainer } from 'tsyringe';
import type { Logger } from 'winston';
import type { StudyConfig } from './config/study-config.js';
import type { MetricObserver } from './engine/records.js';
import type { ComponentFactories } from './engine/components.js';
import type { RemoteConnection } from './engine/run-study.js';
import type { FigureSpec } from './engine/figures.js';
import type { ResourceNeeds } from './engine/resources.js';
import { confinedPath } from './io/files.js';

/** A partial study a preset contributes; the file's own fields override it. */
export type PresetConfig<Options> = Partial<Omit<StudyConfig<Options>, 'options' | 'setting'>> & {
  options?: Partial<Options>;
  /** One line saying what the preset is for. */
  description?: string;
};

/** What a plugin learns about the study it is registered for. */
export interface PluginContext {
  /** Directory laid out like `shared/data`: one folder per dataset with the original file names. */
  dataDir: string;
  logger: Logger;
  /** Records a data file (path and sha256) in the manifest. */
  recordDataFile(path: string, sha256: string, description?: string): void;
  /** Adds free-form facts to the manifest (dataset sizes, parameter counts, ...). */
  recordFact(key: string, value: unknown): void;
  /**
   * Saves a file with the results (a trained tokenizer, say), written into the results folder
   * when it is created and listed in the manifest's outputs with its sha256. Optional for hosts.
   */
  writeArtifact?(name: string, content: string): void;
  /**
   * Resolves a path the study names (an option such as `data` or `tokenizer`; `field` is its JSON
   * path, for errors). Hosts that run studies from others (workers) confine it to their data
   * folder; absent: the path as given. Plugins call `studyPath(context, path, field)`.
   */
  dataPath?(path: string, field: string): string;
}

/** A path named in a study's options, as the host allows it (PluginContext.dataPath). */
export function studyPath(context: Pick<PluginContext, 'dataPath'>, path: string, field: string): string {
  return context.dataPath ? context.dataPath(path, field) : path;
}

/** A `dataPath` that resolves paths inside `root` only (relative ones against it), for workers. */
export function confinedDataPath(root: string): (path: string, field: string) => string {
  return (path, field) => confinedPath(root, path, field);
}

/**
 * A setting of the study: a model with its data, samplers, oracles and claims.
 * Made with `definePlugin` and exported as the package's default export.
 */
export interface Plugin<Options = Record<string, unknown>> {
  /** Setting id, `<dataset>-<model>`, e.g. `admission-linreg`. */
  name: string;
  /** One line for `sgd-lab list`. */
  description: string;
  /** JSON Schema of `options`, with defaults; the compiled validator is the type guard. */
  configSchema: JSONSchemaType<Options>;
  /** Named partial studies: at least `smoke` (tests), `cpu` (minutes) and `paper`. */
  presets: Record<string, PresetConfig<Options>>;
  /**
   * Several studies one preset stands for (a paper figure made of two runs, say): preset name ->
   * the presets to run, each into its own sub-folder.
   */
  presetGroups?: Record<string, string[]>;
  /** Metrics the setting can emit. */
  metrics: readonly string[];
  /**
   * How its metrics are drawn (engine/figures.ts): reporters render these specs, with the
   * setting's own paper figure and caption, and know no metric by name. Core's metrics have
   * CORE_FIGURES; a metric with no spec gets a plain default figure.
   */
  figures?: readonly FigureSpec[];
  /** Samplers and optimizers this package offers to studies of any setting, by id. */
  components?: ComponentFactories;
  /** Extra checks across fields that a schema cannot express; call `fail(jsonPath, message)`. */
  checkStudy?(study: StudyConfig<Options>, fail: (path: string, message: string) => never): void;
  /**
   * What a study will hold and compute, from its options and the sizes of its files alone (no data
   * loaded, nothing allocated), for the resource check before any work (engine/resources.ts).
   * Absent: only what core knows (records, shards, replica-steps) is checked.
   */
  resources?(study: StudyConfig<Options>, context: { dataDir: string }): ResourceNeeds;
  /**
   * Registers the setting's providers (Tokens.Model, Tokens.SamplerFactory, Oracles, Claims) in the
   * study's child container. Loads data here, so errors name the file before any run starts.
   */
  register(container: DependencyContainer, study: StudyConfig<Options>, context: PluginContext): void | Promise<void>;
}

// Plugins are stored and looked up without knowing their option types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPlugin = Plugin<any>;

/** Identity helper that gives a plugin literal its types. */
export function definePlugin<Options>(plugin: Plugin<Options>): Plugin<Options> {
  if (!/^[a-z0-9]+(-[a-z0-9]+)+$/.test(plugin.name)) {
    throw new Error(`plugin name "${plugin.name}" must be <dataset>-<model> in kebab-case`);
  }
  return plugin;
}

/** What a reporter knows: where to write, and the study. */
export interface ReporterContext {
  outDir: string;
  study: StudyConfig;
  logger: Logger;
}

/** A consumer of the metric stream, looked up by `name` from `study.reporters`. */
export interface Reporter {
  name: string;
  description: string;
  /** Attached to studies that do not list their reporters. @default false */
  enabledByDefault?: boolean;
  create(context: ReporterContext): MetricObserver;
}

/** An option of a package's CLI command. */
export interface CliOption {
  /** Commander-style flags: `--data-dir <dir>`, `--force`, `-n, --concurrency <n>`. */
  flags: string;
  /** One line for `--help`. */
  description: string;
  /** Default value, shown in `--help`. */
  default?: string | number | boolean;
  /** Allowed values; anything else is a usage error (exit 2) naming them. */
  choices?: readonly string[];
  /** Parse and check the value: a usage error names the option when it is not one. */
  type?: 'integer' | 'positive-integer' | 'number' | 'positive-number';
  /** The option may be given several times; its values arrive as an array. */
  repeatable?: boolean;
}

/**
 * A command a package adds to the sgd-lab CLI (`"sgd-lab": { "commands": "<module>" }`): the
 * module's default export maps command paths to commands. A path of several words nests
 * (`"data fetch mnist"` becomes `sgd-lab data fetch mnist`), so several packages can add
 * leaves under one group and `sgd-lab data fetch --help` lists them all. The CLI parses the
 * arguments and options it declares: `--help` works for every command, and unknown options,
 * missing or extra arguments are usage errors (exit 2) before `run` is called.
 */
export interface CliCommand {
  /** One line for the command list and the top of the command's `--help`. */
  description: string;
  /** Positional arguments, commander-style: `<results-dir>`, `<dirs...>`, `[name]`. */
  arguments?: string;
  options?: readonly CliOption[];
  /** Printed after the options in `--help` (examples, notes). */
  help?: string;
  /**
   * Runs with the positional arguments and the parsed options (camelCase keys: `--data-dir`
   * gives `dataDir`); resolves to the exit code.
   */
  run(args: string[], options: Record<string, unknown>): Promise<number>;
}

/**
 * Remote shard execution (`"sgd-lab": { "remote": "<module>" }`, default export): the CLI hands
 * every unfinished shard of a study to the first installed executor that takes the URL's scheme
 * (`sgd-lab run ... --redis redis://host`), and merges what comes back in plan order. Workers
 * compute a shard with `runShard` (engine/shard.ts), exactly as this process would.
 */
export interface RemoteExecutor {
  /** URL schemes it takes, without the colon: ['redis', 'rediss']. */
  schemes: readonly string[];
  /**
   * `insecure`: the user accepts a connection the executor would refuse as unsafe (no password,
   * no TLS off loopback), with a warning through `warn` instead.
   */
  connect(o: { url: string; study: StudyConfig; unreachableMs: number; insecure?: boolean; warn?: (message: string) => void }): Promise<RemoteConnection>;
}

export function defineReporter(reporter: Reporter): Reporter {
  return reporter;
}
