import { ALL_LINEAR, LINEAR_LAYERS } from './architectures';
import type { ConfigRule } from './types';

/**
 * config/target-module: a LoRA target the model's architecture does not have (the message lists the valid
 * names, from the architecture table for config.json's model_type); config/model-unchecked (information): the
 * model's config.json is not available locally or its model_type is not in the table, so targets are unchecked.
 */
export const targetModules: ConfigRule = {
  id: 'target-modules',
  codes: ['config/target-module', 'config/model-unchecked'],
  check({ config, modelConfig, rangeOf }, report) {
    const targets = config.lora.target_modules;
    if ('reason' in modelConfig) {
      report({ range: rangeOf(['model']), severity: 'information', code: 'config/model-unchecked', message: `target modules not checked: ${modelConfig.reason}` });
      return;
    }
    const modelType = String(modelConfig.json.model_type ?? '');
    const valid = LINEAR_LAYERS[modelType];
    if (!valid) {
      report({
        range: rangeOf(['model']),
        severity: 'information',
        code: 'config/model-unchecked',
        message: `target modules not checked: model_type "${modelType}" is not in the architecture table (known: ${Object.keys(LINEAR_LAYERS).join(', ')})`,
      });
      return;
    }
    targets.forEach((target, i) => {
      if (target === ALL_LINEAR) {
        // peft takes "all-linear" as the whole target list, not as one name among others (the engine agrees).
        if (targets.length > 1) {
          report({ range: rangeOf(['lora', 'target_modules', i]), severity: 'error', code: 'config/target-module', message: `"${ALL_LINEAR}" targets every linear layer but the output head; use it alone: target_modules: [${ALL_LINEAR}]` });
        }
        return;
      }
      const last = target.split('.').at(-1) ?? target;
      if (valid.includes(last)) return;
      report({
        range: rangeOf(['lora', 'target_modules', i]),
        severity: 'error',
        code: 'config/target-module',
        message: `"${target}" is not a linear layer of a ${modelType} model; valid names (from the ${modelType} architecture): ${valid.join(', ')}`,
      });
    });
  },
};
