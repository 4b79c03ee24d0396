/** The status bar item: engine state, GPU name, and the running run's step and ETA. Click opens the dashboard. */
import * as vscode from 'vscode';
import type { Ctx } from './context';
import { formatDuration } from '../../protocol/format';

export function createStatusBar(ctx: Ctx): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('qloraStudio.status', vscode.StatusBarAlignment.Left, 10);
  item.name = 'QLoRA Studio';
  item.command = 'qloraStudio.openDashboard';

  const render = (): void => {
    const engine = ctx.live.engine;
    const run = ctx.live.active[0];
    const gpu = engine.gpu?.name ?? null;
    const tip = new vscode.MarkdownString(undefined, true);
    tip.appendMarkdown('**QLoRA Studio**\n\n');
    tip.appendMarkdown(`Engine: ${engine.state}${engine.message ? ` — ${engine.message}` : ''}\n\n`);
    tip.appendMarkdown(`Device: ${gpu ?? (engine.state === 'ready' || engine.state === 'busy' ? 'CPU (no CUDA GPU)' : 'not detected yet')}\n\n`);
    if (engine.python) tip.appendMarkdown(`Python: \`${engine.python}\`\n\n`);
    if (run) {
      const p = run.progress;
      const steps = p ? `step ${p.step}/${p.totalSteps}` : run.stage ?? 'starting';
      const eta = p ? ` · ETA ${formatDuration(p.etaSeconds)}` : '';
      item.text = `$(sync~spin) ${run.runId.length > 28 ? '…' + run.runId.slice(-27) : run.runId}: ${steps}${eta}`;
      tip.appendMarkdown(`Training \`${run.runId}\`: ${steps}${eta}\n\n`);
      if (p) tip.appendMarkdown(`loss ${p.loss.toFixed(4)} · ${Math.round(p.tokensPerSecond)} tokens/s\n\n`);
      item.backgroundColor = undefined;
    } else {
      const icon = engine.state === 'crashed' || engine.state === 'unavailable' ? '$(warning)' : engine.state === 'starting' ? '$(loading~spin)' : '$(beaker)';
      item.text = `${icon} QLoRA${gpu ? ` · ${gpu}` : engine.state === 'ready' ? ' · CPU' : ''}`;
      item.backgroundColor = engine.state === 'crashed' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    }
    tip.appendMarkdown('Click to open the dashboard.');
    item.tooltip = tip;
    item.accessibilityInformation = { label: item.text.replace(/\$\([^)]*\)\s*/g, '') };
    item.show();
  };

  render();
  const sub = ctx.live.onDidChange(render);
  return vscode.Disposable.from(item, sub);
}
