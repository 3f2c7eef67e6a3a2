/**
 * Components by id: samplers and optimizers that any installed package offers, so a study can put
 * one setting's model together with another package's sampler or optimizer without code changes
 * (`"components": { "optimizer": "adam" }`). Unknown ids are an error that lists the known ones.
 */
import type { DependencyContainer } from 'tsyringe';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError } from '../errors.js';
import type { Model, Optimizer, SamplerFactory } from './contracts.js';

/** What a component factory can use: the study, its model, and the study's container. */
export interface ComponentContext {
  study: StudyConfig;
  model: Model;
  container: DependencyContainer;
}

export interface ComponentFactories {
  samplers?: Record<string, { description: string; create(ctx: ComponentContext): SamplerFactory }>;
  optimizers?: Record<string, { description: string; create(ctx: ComponentContext): Optimizer }>;
}

export type ComponentKind = keyof ComponentFactories;

/** All component factories found, keyed by kind and id. */
export class ComponentRegistry {
  private readonly entries: { [K in ComponentKind]: Map<string, { from: string; factory: NonNullable<ComponentFactories[K]>[string] }> } = {
    samplers: new Map(),
    optimizers: new Map(),
  };

  /** Adds a package's factories; `from` names the package for messages. */
  add(from: string, factories: ComponentFactories): this {
    for (const kind of ['samplers', 'optimizers'] as const) {
      for (const [id, factory] of Object.entries(factories[kind] ?? {})) {
        const existing = this.entries[kind].get(id);
        if (existing && existing.factory !== factory) throw new Error(`component ${kind}/${id} is offered by both ${existing.from} and ${from}`);
        (this.entries[kind] as Map<string, unknown>).set(id, { from, factory });
      }
    }
    return this;
  }

  ids(kind: ComponentKind): string[] {
    return [...this.entries[kind].keys()].sort();
  }

  describe(): { kind: ComponentKind; id: string; from: string; description: string }[] {
    return (['samplers', 'optimizers'] as const).flatMap((kind) =>
      [...this.entries[kind]].map(([id, e]) => ({ kind, id, from: e.from, description: e.factory.description })),
    );
  }

  sampler(id: string, ctx: ComponentContext): SamplerFactory {
    const e = this.entries.samplers.get(id);
    if (!e) throw new ConfigError(ctx.study.name, [`/components/sampler: unknown sampler "${id}"; known: ${this.ids('samplers').join(', ') || '(none)'}`]);
    return e.factory.create(ctx);
  }

  optimizer(id: string, ctx: ComponentContext): Optimizer {
    const e = this.entries.optimizers.get(id);
    if (!e) throw new ConfigError(ctx.study.name, [`/components/optimizer: unknown optimizer "${id}"; known: ${this.ids('optimizers').join(', ') || '(none)'}`]);
    return e.factory.create(ctx);
  }
}
