import type { ConfigRule } from './types';

/**
 * config/range (warning): values the schema allows but that rarely make sense — a learning rate outside
 * [1e-6, 1e-2], alpha/r far from 1–4, max_length beyond the model's context, evaluation or checkpoints that never
 * happen before max_steps, warmup longer than training.
 */
export const ranges: ConfigRule = {
  id: 'ranges',
  codes: ['config/range'],
  check({ config, modelConfig, rangeOf }, report) {
    const warn = (segments: (string | number)[], message: string): void => {
      report({ range: rangeOf(segments), severity: 'warning', code: 'config/range', message });
    };
    const t = config.train;
    if (t.learning_rate > 1e-2) warn(['train', 'learning_rate'], `learning_rate ${t.learning_rate} is very high for LoRA (typical: 1e-5 to 2e-3); training will likely diverge`);
    if (t.learning_rate < 1e-6) warn(['train', 'learning_rate'], `learning_rate ${t.learning_rate} is so low that the adapter will barely change (typical: 1e-5 to 2e-3)`);
    const ratio = config.lora.alpha / config.lora.r;
    if (ratio > 16 || ratio < 1 / 16) warn(['lora', 'alpha'], `alpha/r = ${config.lora.alpha}/${config.lora.r} = ${+ratio.toFixed(3)} scales the update far from the usual 1-4`);
    if (t.warmup_steps >= t.max_steps) warn(['train', 'warmup_steps'], `warmup_steps (${t.warmup_steps}) >= max_steps (${t.max_steps}): the learning rate never reaches its peak`);
    if (t.eval_every > t.max_steps) warn(['train', 'eval_every'], `eval_every (${t.eval_every}) > max_steps (${t.max_steps}): no evaluation happens during training`);
    if (t.save_every > t.max_steps) warn(['train', 'save_every'], `save_every (${t.save_every}) > max_steps (${t.max_steps}): only the final checkpoint is written`);
    if (!('reason' in modelConfig)) {
      const j = modelConfig.json;
      const context = [j.max_position_embeddings, j.n_positions, j.seq_length].find((v): v is number => typeof v === 'number');
      if (context !== undefined && config.max_length > context) {
        warn(['max_length'], `max_length ${config.max_length} exceeds the model's context of ${context} tokens (config.json)`);
      }
    }
  },
};
