/**
 * One uPlot chart per metric, one series per selected run (per GPU of each run for the per-device memory chart).
 * Colors come from VS Code's theme variables (--vscode-charts-*), read again whenever the theme changes. Each chart
 * carries `data-points` (points of the first series) and a caption with the point count and last value, for people
 * and for the e2e test.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatBytes, formatCount } from '../../protocol/format';
import type { SeriesKey, Store } from './store';

/** A metric of every run, or each GPU's peak memory of runs on several GPUs. */
export type ChartKey = SeriesKey | 'gpuMemoryPerDevice';

export interface ChartSpec {
  key: ChartKey;
  title: string;
  /** The title when a selected run trains on more than one device (the highest count among them). */
  multiDeviceTitle?: (devices: number) => string;
  format: (v: number) => string;
  log?: boolean;
  /** Hidden while no selected run has a point of it (the per-GPU chart of single-device runs). */
  onlyWithPoints?: boolean;
}

/** One series of a chart: a run's metric, or one GPU of a run. */
interface Line {
  runId: string;
  /** How the caption names it beside the others ('' when it is the only run's only series). */
  name: string;
  xs: number[];
  ys: number[];
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
  private readonly heading: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly caption: HTMLElement;
  private plot: uPlot | null = null;
  private shapeKey = '';
  private width = 400;

  constructor(readonly spec: ChartSpec) {
    this.element = document.createElement('section');
    this.element.className = 'chart';
    this.element.dataset.metric = spec.key;
    this.heading = document.createElement('h3');
    this.heading.textContent = spec.title;
    this.plotHost = document.createElement('div');
    this.plotHost.className = 'plot';
    this.caption = document.createElement('div');
    this.caption.className = 'caption';
    this.element.append(this.heading, this.plotHost, this.caption);
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
    const lines = this.lines(store, runIds);
    const tables: uPlot.AlignedData[] = lines.map((l) => [l.xs, l.ys]);
    const counts = lines.map((l) => l.xs.length);
    const devices = Math.max(1, ...runIds.map((id) => store.devices(id)));
    this.heading.textContent = devices > 1 && this.spec.multiDeviceTitle ? this.spec.multiDeviceTitle(devices) : this.spec.title;
    const first = counts[0] ?? 0;
    this.element.dataset.points = String(first);
    this.element.dataset.series = JSON.stringify(lines.map((l, i) => ({ runId: l.runId, ...(this.spec.key === 'gpuMemoryPerDevice' ? { gpu: l.name } : {}), points: counts[i] })));
    const total = counts.reduce((a, b) => a + b, 0);
    this.element.hidden = total === 0 && this.spec.onlyWithPoints === true;
    if (total === 0) {
      this.plot?.destroy();
      this.plot = null;
      this.shapeKey = '';
      this.plotHost.replaceChildren(emptyNote(this.spec.key === 'gpuMemoryBytes' ? 'No GPU memory: the run trains on the CPU (or has not logged a step yet).' : 'No points yet.'));
      this.caption.textContent = '';
      return;
    }
    const data = tables.length === 1 ? tables[0]! : uPlot.join(tables);
    const shape = `${lines.map((l) => `${l.runId}/${l.name}`).join('|')}#${themeKey}`;
    if (!this.plot || shape !== this.shapeKey) {
      this.plot?.destroy();
      this.plotHost.replaceChildren();
      this.plot = new uPlot(this.options(lines), data, this.plotHost);
      this.shapeKey = shape;
    } else {
      this.plot.setData(data);
    }
    this.caption.replaceChildren(
      ...lines.map(({ name, ys }, i) => {
        const span = document.createElement('span');
        span.className = 'legend';
        const swatch = document.createElement('i');
        swatch.style.background = runColor(i);
        const last = ys.length ? this.spec.format(ys[ys.length - 1]!) : '—';
        span.append(swatch, `${name ? `${name}: ` : ''}${counts[i]} point${counts[i] === 1 ? '' : 's'} · last ${last}`);
        return span;
      }),
    );
  }

  /** The chart's series: one per run, or for the per-GPU chart one per GPU of each run. */
  private lines(store: Store, runIds: readonly string[]): Line[] {
    const several = runIds.length > 1;
    if (this.spec.key === 'gpuMemoryPerDevice') {
      return runIds.flatMap((runId) =>
        store.deviceSeries(runId).map(([xs, ys], gpu) => ({ runId, name: `${several ? `${shortId(runId)} ` : ''}GPU ${gpu}`, xs, ys })),
      );
    }
    const key = this.spec.key;
    return runIds.map((runId) => {
      const [xs, ys] = store.series(runId, key);
      return { runId, name: several ? shortId(runId) : '', xs, ys };
    });
  }

  private options(lines: readonly Line[]): uPlot.Options {
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
        ...lines.map((l, i) => ({
          label: l.name || l.runId,
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
  // A total over several GPUs runs to hundreds of thousands: 120.4k, not 1.2e+5.
  { key: 'tokensPerSecond', title: 'Tokens / s', multiDeviceTitle: (n) => `Tokens / s (total of ${n} devices)`, format: (v) => (Math.abs(v) >= 1e3 ? formatCount(v) : num(0)(v)) },
  { key: 'gpuMemoryBytes', title: 'GPU memory (peak)', multiDeviceTitle: () => 'GPU memory (peak, busiest GPU)', format: formatBytes },
  { key: 'gpuMemoryPerDevice', title: 'GPU memory per GPU (peak)', format: formatBytes, onlyWithPoints: true },
];
