/**
 * DI tokens. Plugins register providers for them in the study's child container; the engine
 * resolves them. Symbols, so two packages can never collide on a string.
 */
export const Tokens = {
  /** The resolved StudyConfig (value). */
  Study: Symbol.for('sgd-lab.Study'),
  /** The PluginContext of the study (value). */
  Context: Symbol.for('sgd-lab.Context'),
  /** The winston logger (value). */
  Logger: Symbol.for('sgd-lab.Logger'),
  /** The Model of the setting; when absent the study runs its oracles only (no Monte Carlo). */
  Model: Symbol.for('sgd-lab.Model'),
  /** Provides θ0 when no Model is registered (oracle-only studies): `{ initialParameters(rng, initPoint) }`. */
  Initializer: Symbol.for('sgd-lab.Initializer'),
  /** The SamplerFactory chosen for the study. */
  SamplerFactory: Symbol.for('sgd-lab.SamplerFactory'),
  /** The Optimizer chosen for the study. */
  Optimizer: Symbol.for('sgd-lab.Optimizer'),
  /** Exact oracles (register several; resolved with resolveAll). */
  Oracle: Symbol.for('sgd-lab.Oracle'),
  /** Analyses run on the records before the claims (register several). */
  Analysis: Symbol.for('sgd-lab.Analysis'),
  /** Claims (register several; resolved with resolveAll). */
  Claim: Symbol.for('sgd-lab.Claim'),
  /** MetricObservers attached to every study (register several). */
  MetricObserver: Symbol.for('sgd-lab.MetricObserver'),
} as const;
