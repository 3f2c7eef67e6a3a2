/** Per-epoch mean of the across-run gradient variance (what Figs. 1(a) and 4(a) plot). */
import { epochMean } from '@sgd-lab/core';

/** grad_variance_epoch: the mean over an epoch's recorded steps of Var(g_t|F0). */
export const epochMeanVariance = epochMean({ id: 'mnist-epoch-mean-variance', metric: 'grad_variance', as: 'grad_variance_epoch' });
