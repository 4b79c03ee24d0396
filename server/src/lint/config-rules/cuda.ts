import type { ConfigRule } from './types';

/** config/no-cuda (warning): 4-bit or 8-bit quantization (bitsandbytes) requested where no CUDA GPU is found. */
export const cuda: ConfigRule = {
  id: 'cuda',
  codes: ['config/no-cuda'],
  check({ config, cuda, rangeOf }, report) {
    if (config.quantization === 'none' || cuda.available) return;
    const bits = config.quantization === 'int8' ? '8-bit' : '4-bit';
    report({
      range: rangeOf(['quantization']),
      severity: 'warning',
      code: 'config/no-cuda',
      message: `${bits} quantization (${config.quantization}) needs a CUDA GPU, and none was found (${cuda.how}); on this machine use \`quantization: none\``,
    });
  },
};
