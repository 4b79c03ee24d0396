/**
 * `qlora-studio plan` for several devices: the strategy among the settings, and with fsdp the sharded peak per GPU
 * and what loading the whole base model needs before it is sharded (docs/distributed.md).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { GpuInfo, TrainPlanResult } from '../../protocol/engine';
import type { ResolvedConfig } from '../../protocol/config';
import { formatPlan } from '../../server/src/cli/plan';

const GiB = 1024 ** 3;
const gpu: GpuInfo = { index: 0, name: 'NVIDIA H200', totalMemory: 80 * GiB, freeMemory: 79 * GiB, capability: [9, 0], bf16: true };
const config = { model: 'm', quantization: 'nf4', lora: { r: 16 }, max_length: 2048, train: { micro_batch_size: 1, gradient_checkpointing: true, strategy: 'auto' } } as ResolvedConfig;
const plan = (strategy: 'ddp' | 'fsdp', extra: Partial<TrainPlanResult> = {}): TrainPlanResult => ({
  baseParameters: 7e10,
  loraParameters: 2e8,
  peakBytes: 40 * GiB,
  peakBytesWithCheckpointing: 40 * GiB,
  peakBytesWithoutCheckpointing: 90 * GiB,
  terms: [{ name: 'linear weights (sharded)', bytes: 20 * GiB, detail: 'd' }],
  device: gpu,
  fits: true,
  picks: { microBatchSize: 1, gradientCheckpointing: true, tokensPerPass: 2048, compile: false, cudaGraphs: false, denseBase: false, strategy, reason: 'r' },
  devices: 2,
  ...extra,
});

it('plan over two devices: the strategy picked, the FSDP line, and the load that must fit too', () => {
  const fsdp = formatPlan(plan('fsdp', { loadBytes: 38 * GiB }), config, 'x');
  assert.match(fsdp, /compile false, cuda_graphs false, dense_base false, strategy auto → fsdp \(r\)/);
  assert.match(fsdp, /FSDP over 2 devices \(train\.strategy fsdp\): the base model's weights are sharded 2 ways, so the peak is per GPU/);
  assert.match(fsdp, /loading: each GPU holds the whole base model \(38\.0 GiB\) before sharding it/);
  assert.match(fsdp, /GPU 0 NVIDIA H200: 79\.0 GiB free of 80\.0 GiB → fits \(39\.0 GiB to spare\)/);
  assert.doesNotMatch(fsdp, /data parallel/);
  const unloadable = formatPlan(plan('fsdp', { loadBytes: 80 * GiB, fits: false }), config, 'x');
  assert.match(unloadable, /does NOT fit: loading the whole base model is 1\.00 GiB short/);
  const ddp = formatPlan(plan('ddp'), config, 'x');
  assert.match(ddp, /strategy auto → ddp \(r\)/);
  assert.match(ddp, /data parallel over 2 devices \(train\.devices\): each holds the whole model/);
  assert.doesNotMatch(ddp, /FSDP|loading:/);
});
