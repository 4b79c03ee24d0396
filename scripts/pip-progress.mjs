// Set-up progress read from pip's own output (issue 15): the step, the package, the bytes downloaded of the total a
// dry run announced, then the unpacking. Plain ESM without dependencies (setup-engine.mjs runs before anything is
// installed); types in pip-progress.d.mts. The extension shows these events in its progress notification.

/** The steps of a set-up and their share of the bar (torch's download and unpacking dominate). */
export const STEPS = [
  { id: 'environment', title: 'Creating the Python environment', weight: 4 },
  { id: 'torch', title: 'Installing torch', weight: 50 },
  { id: 'packages', title: "Installing the engine's packages", weight: 36 },
  { id: 'models', title: 'Preparing the demo models', weight: 10 },
];

/** Share of a package step that is downloading; the rest is pip unpacking what it downloaded. */
const DOWNLOAD_SHARE = 0.7;

/** What `pip install --dry-run --report` says it would install: one entry per distribution. */
export function plannedInstalls(report) {
  return (report?.install ?? []).map((item) => {
    const url = item.download_info?.url ?? '';
    return { name: item.metadata?.name ?? '?', version: item.metadata?.version ?? '', url, file: fileOf(url), local: !/^https?:/.test(url) };
  });
}

function fileOf(url) {
  try {
    return decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    return '';
  }
}

const UNITS = { bytes: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9 };

/** "1.2 GB", "830 kB": pip's units (powers of 1000), so the numbers match the lines pip prints. */
export function formatBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} bytes`;
}

/**
 * One pip install, followed line by line (`--progress-bar raw`: "Progress N of M" per file). `sizes` maps a file
 * name to its size (HEAD of the dry run's URLs); a file pip announces with its own size counts with that.
 */
export class PipProgress {
  constructor(planned, sizes = new Map()) {
    this.planned = planned;
    this.sizes = new Map(sizes);
    this.total = planned.reduce((sum, p) => sum + (this.sizes.get(p.file) ?? 0), 0);
    this.counted = new Set(planned.filter((p) => this.sizes.has(p.file)).map((p) => p.file));
    this.done = 0;
    this.current = null; // { file, bytes, size }
    this.finished = new Set();
    this.phase = 'resolving';
    this.pkg = null;
    this.installing = 0;
  }

  /** Takes one line of pip's output; true when what the bar shows changed. */
  feed(raw) {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, '').trimEnd();
    let m;
    if ((m = /^Progress (\d+) of (\d+)/.exec(line))) {
      if (!this.current) return false;
      this.current.bytes = Number(m[1]);
      if (Number(m[2]) > 0) this.current.size = Number(m[2]);
      if (this.current.bytes >= this.current.size) this.finishCurrent();
      return true;
    }
    if ((m = /^Collecting (\S+)/.exec(line))) {
      this.finishCurrent();
      this.pkg = m[1].replace(/[<>=!~;\[].*$/, '');
      this.phase = 'downloading';
      return true;
    }
    if ((m = /^\s*Downloading (\S+) \(([\d.]+) (bytes|kB|KB|MB|GB)\)/.exec(line))) {
      this.finishCurrent();
      const file = fileOf(m[1].includes('://') ? m[1] : `file:///${m[1]}`);
      const size = this.sizes.get(file) ?? Math.round(Number(m[2]) * UNITS[m[3]]);
      this.adopt(file, size);
      this.current = { file, bytes: 0, size };
      this.phase = 'downloading';
      return true;
    }
    if ((m = /^\s*(?:Using cached|File was already downloaded) (\S+)/.exec(line))) {
      this.finishCurrent();
      const file = fileOf(m[1].includes('://') ? m[1] : `file:///${m[1]}`);
      const size = this.sizes.get(file) ?? 0;
      this.adopt(file, size);
      this.current = { file, bytes: size, size };
      this.finishCurrent();
      return true;
    }
    if ((m = /^\s*Building wheel for (\S+)/.exec(line))) {
      this.finishCurrent();
      this.phase = 'building';
      this.pkg = m[1];
      return true;
    }
    if ((m = /^Installing collected packages: (.*)$/.exec(line))) {
      this.finishCurrent();
      this.phase = 'installing';
      this.installing = m[1].split(',').filter((s) => s.trim()).length;
      return true;
    }
    if (/^Successfully installed/.test(line)) {
      this.phase = 'done';
      return true;
    }
    return false;
  }

  /** A file without a HEAD size, or one the dry run did not list (pip picked another): its size joins the total. */
  adopt(file, size) {
    if (this.counted.has(file)) return;
    this.counted.add(file);
    this.total += size;
    if (!this.planned.some((p) => p.file === file)) this.planned.push({ name: this.pkg ?? file, version: '', url: '', file, local: false });
  }

  finishCurrent() {
    const c = this.current;
    this.current = null;
    if (!c || this.finished.has(c.file)) return;
    this.finished.add(c.file);
    this.done += c.size;
  }

  get downloaded() {
    return Math.min(this.total, this.done + (this.current ? this.current.bytes : 0));
  }

  /** 0–1 of this install: downloads by bytes, then the unpacking as one block. */
  fraction() {
    if (this.phase === 'done') return 1;
    if (this.phase === 'installing') return DOWNLOAD_SHARE;
    return this.total > 0 ? DOWNLOAD_SHARE * (this.downloaded / this.total) : 0;
  }

  message() {
    const sizes = `${formatBytes(this.downloaded)} of ${formatBytes(this.total)}`;
    switch (this.phase) {
      case 'downloading':
        return `downloading ${this.pkg ?? ''} (${sizes})`.replace('  ', ' ');
      case 'building':
        return `building ${this.pkg}`;
      case 'installing':
        return `unpacking ${this.installing} package${this.installing === 1 ? '' : 's'} (${formatBytes(this.total)} downloaded)`;
      case 'done':
        return `installed ${this.planned.length} package${this.planned.length === 1 ? '' : 's'}`;
      default:
        return 'resolving';
    }
  }
}

/** Overall percent (0–100) with step `index` (0-based) at `fraction` of its own work. */
export function overallPercent(index, fraction) {
  const all = STEPS.reduce((sum, s) => sum + s.weight, 0);
  const before = STEPS.slice(0, index).reduce((sum, s) => sum + s.weight, 0);
  return Math.round((1000 * (before + STEPS[index].weight * Math.max(0, Math.min(1, fraction)))) / all) / 10;
}

/** The line setup-engine.mjs prints for the extension (`--progress json`), and its reader. */
export const PROGRESS_PREFIX = '::qlora-setup::';
export function progressLine(event) {
  return PROGRESS_PREFIX + JSON.stringify(event);
}
export function parseProgressLine(line) {
  if (!line.startsWith(PROGRESS_PREFIX)) return null;
  try {
    return JSON.parse(line.slice(PROGRESS_PREFIX.length));
  } catch {
    return null;
  }
}

/**
 * The `dependencies = [...]` strings of engine/pyproject.toml (and an optional extra's), read without a TOML
 * library: Python 3.9 and 3.10 have none, and the file is ours.
 */
export function pyprojectDependencies(text, extra = null) {
  const block = (re) => {
    const m = re.exec(text);
    if (!m) return [];
    return [...m[1].replace(/#[^\n]*/g, '').matchAll(/"([^"]+)"/g)].map((x) => x[1]);
  };
  const deps = block(/^dependencies\s*=\s*\[([\s\S]*?)\]/m);
  return extra ? [...deps, ...block(new RegExp(`^${extra}\\s*=\\s*\\[([\\s\\S]*?)\\]`, 'm'))] : deps;
}
