/** CodeLens titles: dataset statistics, and the memory estimate of a config (from the engine's `train/plan`). */
import type { TrainPlanResult } from '../../../protocol/engine';
import { formatBytes } from '../../../protocol/format';
import type { DatasetStats } from './jsonl/driver';

const n = (x: number): string => x.toLocaleString('en-US');

/** `chat`: the chat format of chat data (read off the first training record when `detected`). */
export function datasetLensTitle(stats: DatasetStats, hasContext: boolean, chat: { format: string; detected: boolean } | null = null): string {
  const parts = [`${n(stats.records)} record${stats.records === 1 ? '' : 's'}`];
  if (chat) parts.push(`${chat.format} chat format${chat.detected ? ' (detected)' : ''}`);
  if (stats.tokenized > 0 && stats.medianTokens !== null && stats.p95Tokens !== null) {
    parts.push(`median ${n(stats.medianTokens)} tokens`, `p95 ${n(stats.p95Tokens)}`);
    parts.push(`${n(stats.overLimit)} over max_length${stats.maxLength !== null ? ` ${n(stats.maxLength)}` : ''}`);
  } else if (!hasContext) parts.push('no config names this file (token statistics need one)');
  else parts.push('tokens not counted');
  parts.push(`${n(stats.duplicates)} duplicate${stats.duplicates === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

export function planLensTitle(plan: TrainPlanResult): string {
  const fits = plan.fits === null ? 'no GPU here to compare' : plan.fits ? `fits ${plan.device?.name ?? 'the GPU'} (${formatBytes(plan.device?.freeMemory ?? 0)} free)` : `does NOT fit ${plan.device?.name ?? 'the GPU'} (${formatBytes(plan.device?.freeMemory ?? 0)} free)`;
  const top = plan.terms.slice(0, 2).map((t) => `${t.name} ${formatBytes(t.bytes)}`).join(', ');
  return `Memory estimate: ${formatBytes(plan.peakBytes)} peak (${top}) · ${fits}`;
}
