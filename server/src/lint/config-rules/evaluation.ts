import type { ConfigRule } from './types';

/**
 * config/evaluation (error): evaluation settings the engine refuses before training starts — a best_metric with no
 * evaluation that measures it (a ROUGE type without train.rouge_every, eval_loss without any evaluation), and
 * ROUGE or a best checkpoint without validation records (no data.validation and validation_split 0).
 */
export const evaluation: ConfigRule = {
  id: 'evaluation',
  codes: ['config/evaluation'],
  check({ config, rangeOf }, report) {
    const t = config.train;
    const error = (segments: (string | number)[], message: string): void => {
      report({ range: rangeOf(segments), severity: 'error', code: 'config/evaluation', message });
    };
    if (t.best_metric === 'eval_loss' && !t.eval_every && !t.rouge_every) {
      error(['train', 'best_metric'], 'best_metric eval_loss needs evaluations: set train.eval_every > 0');
    } else if (t.best_metric !== null && t.best_metric !== 'eval_loss' && !t.rouge_every) {
      error(['train', 'best_metric'], `best_metric ${t.best_metric} needs ROUGE evaluations: set train.rouge_every > 0`);
    }
    if ((t.rouge_every || t.best_metric !== null) && config.data.validation === null && config.data.validation_split === 0) {
      const at = t.rouge_every ? 'rouge_every' : 'best_metric';
      error(['train', at], `${at} needs validation records: set data.validation, or data.validation_split > 0`);
    }
  },
};
