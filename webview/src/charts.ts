/**
 * One uPlot chart per metric, one series per selected run. Colors come from VS Code's theme variables
 * (--vscode-charts-*), read again whenever the theme changes. Each chart carries `data-points` (points of the
 * first run's series) and a caption with the point count and last value, for people and for the e2e test.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatBytes } from '../../protocol/format';
import type { SeriesKey, Store } from './store';

export interface ChartSpec {
  key: SeriesKey;
  title: string;
  format: (v: number) => string;
  log?: boolean;
}

const palette = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const fallback = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

function cssVar(name: string, fallbackValue: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallbackValue;
}
/** The theme's chart colors, made opaque: some themes define them with alpha, which washes a line out. */
function opaque(color: string): string {
  const probe = document.createElement('i');
  probe.style.color = color;
  document.body.append(probe);
  const computed = getComputedStyle(probe).color;
  probe.remove();
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(computed);
  return m ? `rgb(${m[1]}, ${m[2]}, ${m[3]})` : color;
}
export const runColor = (i: number): string => opaque(cssVar(palette[i % palette.length]!, fallback[i % fallback.length]!));

export class Chart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly caption: HTMLElement;
  private plot: uPlot | null = null;
  private shapeKey = '';
  private width = 400;

  constructor(readonly spec: ChartSpec) {
    this.element = document.createElement('section');
    this.element.className = 'chart';
    this.element.dataset.metric = spec.key;
    const h = document.createElement('h3');
    h.textContent = spec.title;
    this.plotHost = document.createElement('div');
    this.plotHost.className = 'plot';
    this.caption = document.createElement('div');
    this.caption.className = 'caption';
    this.element.append(h, this.plotHost, this.caption);
    new ResizeObserver(() => {
      const w = Math.max(200, Math.floor(this.plotHost.clientWidth));
      if (w !== this.width) {
        this.width = w;
        this.plot?.setSize({ width: w, height: 180 });
      }
    }).observe(this.plotHost);
  }

  /** Redraws from the store for these runs; rebuilds the plot when the set of runs or the theme changed. */
  update(store: Store, runIds: readonly string[], themeKey: string): void {
    const tables: uPlot.AlignedData[] = [];
    const counts: number[] = [];
    for (const id of runIds) {
      const [xs, ys] = store.series(id, this.spec.key);
      tables.push([xs, ys]);
      counts.push(xs.length);
    }
    const first = counts[0] ?? 0;
    this.element.dataset.points = String(first);
    this.element.dataset.series = JSON.stringify(runIds.map((id, i) => ({ runId: id, points: counts[i] })));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) {
      this.plot?.destroy();
      this.plot = null;
      this.shapeKey = '';
      this.plotHost.replaceChildren(emptyNote(this.spec.key === 'gpuMemoryBytes' ? 'No GPU memory: the run trains on the CPU (or has not logged a step yet).' : 'No points yet.'));
      this.caption.textContent = '';
      return;
    }
    const data = tables.length === 1 ? tables[0]! : uPlot.join(tables);
    const shape = `${runIds.join('|')}#${themeKey}`;
    if (!this.plot || shape !== this.shapeKey) {
      this.plot?.destroy();
      this.plotHost.replaceChildren();
      this.plot = new uPlot(this.options(runIds), data, this.plotHost);
      this.shapeKey = shape;
    } else {
      this.plot.setData(data);
    }
    this.caption.replaceChildren(
      ...runIds.map((id, i) => {
        const [, ys] = tables[i]! as [number[], number[]];
        const span = document.createElement('span');
        span.className = 'legend';
        const swatch = document.createElement('i');
        swatch.style.background = runColor(i);
        const last = ys.length ? this.spec.format(ys[ys.length - 1]!) : '—';
        span.append(swatch, `${runIds.length > 1 ? `${shortId(id)}: ` : ''}${counts[i]} point${counts[i] === 1 ? '' : 's'} · last ${last}`);
        return span;
      }),
    );
  }

  private options(runIds: readonly string[]): uPlot.Options {
    const fg = cssVar('--vscode-descriptionForeground', '#999');
    const grid = cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', '#8884'));
    const font = `11px ${cssVar('--vscode-font-family', 'sans-serif')}`;
    const fmt = this.spec.format;
    const axis = (): uPlot.Axis => ({ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font });
    return {
      width: this.width,
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: this.spec.log ? { distr: 3 } : {} },
      axes: [
        // Steps are whole numbers: only integer tick spacings.
        { ...axis(), label: 'step', labelFont: font, labelSize: 16, incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000] },
        { ...axis(), size: 64, values: (_u, splits) => splits.map((v) => (v === null ? '' : fmt(v))) },
      ],
      series: [
        { label: 'step' },
        ...runIds.map((id, i) => ({
          label: id,
          stroke: runColor(i),
          width: 2,
          spanGaps: true,
          points: { show: true, size: 4, fill: runColor(i) },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : fmt(v)),
        })),
      ],
    };
  }

  destroy(): void {
    this.plot?.destroy();
  }
}

function emptyNote(text: string): HTMLElement {
  const p = document.createElement('p');
  p.className = 'empty';
  p.textContent = text;
  return p;
}

export function shortId(runId: string): string {
  return runId.length > 24 ? `…${runId.slice(-23)}` : runId;
}

export const num = (digits: number) => (v: number): string => {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return v.toFixed(a >= 100 ? 0 : digits);
};

export const chartSpecs: ChartSpec[] = [
  { key: 'loss', title: 'Train loss', format: num(3) },
  { key: 'evalLoss', title: 'Eval loss', format: num(3) },
  { key: 'learningRate', title: 'Learning rate', format: (v) => v.toExponential(1) },
  { key: 'gradNorm', title: 'Grad norm', format: num(2) },
  { key: 'tokensPerSecond', title: 'Tokens / s', format: num(0) },
  { key: 'gpuMemoryBytes', title: 'GPU memory (peak)', format: formatBytes },
];
