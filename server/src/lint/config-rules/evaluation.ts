import type { BestMetric } from '../../../../protocol/config';
import type { ConfigRule } from './types';

/**
 * config/evaluation (error): evaluation settings the engine refuses before training starts — a best_metric or an
 * early_stopping metric with no evaluation that measures it (a ROUGE type without train.rouge_every, eval_loss
 * without any evaluation), and ROUGE, a best checkpoint or early stopping without validation records (no
 * data.validation and validation_split 0). The engine's plan_evaluation checks the same.
 */
export const evaluation: ConfigRule = {
  id: 'evaluation',
  codes: ['config/evaluation'],
  check({ config, rangeOf }, report) {
    const t = config.train;
    const error = (segments: (string | number)[], message: string): void => {
      report({ range: rangeOf(segments), severity: 'error', code: 'config/evaluation', message });
    };
    const wanted: [BestMetric | null, string[], string][] = [[t.best_metric, ['train', 'best_metric'], 'best_metric']];
    if (t.early_stopping) wanted.push([t.early_stopping.metric, ['train', 'early_stopping', 'metric'], 'early_stopping.metric']);
    for (const [metric, at, name] of wanted) {
      if (metric === 'eval_loss' && !t.eval_every && !t.rouge_every) {
        error(at, `${name} eval_loss needs evaluations: set train.eval_every > 0`);
      } else if (metric !== null && metric !== 'eval_loss' && !t.rouge_every) {
        error(at, `${name} ${metric} needs ROUGE evaluations: set train.rouge_every > 0`);
      }
    }
    const needing = wanted.filter(([metric]) => metric !== null);
    if ((t.rouge_every || needing.length) && config.data.validation === null && config.data.validation_split === 0) {
      const [at, name] = t.rouge_every ? [['train', 'rouge_every'], 'rouge_every'] : [needing[0]![1], needing[0]![2]];
      error(at, `${name} needs validation records: set data.validation, or data.validation_split > 0`);
    }
  },
};
