// Small time-series line charts on <canvas> for the dashboard: no library, crisp on any pixel
// ratio, colors from the page's CSS variables (light and dark), gaps where a value is null.

/**
 * @typedef {{label: string, color: string, fill?: boolean}} Series
 * @typedef {{series: Series[], format?: (v: number) => string, nice?: (v: number) => number, windowSecs?: number, minMax?: number}} ChartOptions
 */

export class LineChart {
  /** @type {{t: number, values: (number | null)[]}[]} */
  points = [];

  /**
   * @param {HTMLCanvasElement} canvas
   * @param {ChartOptions} options
   */
  constructor(canvas, options) {
    this.canvas = canvas;
    this.series = options.series;
    this.format = options.format ?? formatNumber;
    this.windowMs = (options.windowSecs ?? 120) * 1000;
    this.nice = options.nice ?? niceCeiling;
    this.minMax = options.minMax ?? 1;
    new ResizeObserver(() => this.draw()).observe(canvas);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.draw());
  }

  /**
   * Adds a point (one value per series; null leaves a gap) and redraws.
   * @param {number} t Unix milliseconds
   * @param {(number | null | undefined)[]} values
   */
  push(t, values) {
    this.points.push({ t, values: values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null)) });
    while (this.points.length > 2 && this.points[1].t < t - this.windowMs) this.points.shift();
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const css = getComputedStyle(document.documentElement);
    const gridColor = css.getPropertyValue('--line').trim() || '#ddd';
    const textColor = css.getPropertyValue('--muted').trim() || '#666';
    const font = `11px ${css.getPropertyValue('--font').trim() || 'sans-serif'}`;

    // The time axis grows with the data, from 30 s up to the whole window.
    const now = this.points.at(-1)?.t ?? Date.now();
    const span = now - (this.points[0]?.t ?? now);
    const windowMs = Math.min(this.windowMs, Math.max(30_000, Math.ceil(span / 10_000) * 10_000));
    const from = now - windowMs;
    let max = 0;
    for (const p of this.points) for (const v of p.values) if (v !== null && v > max) max = v;
    const top = this.nice(Math.max(max, this.minMax));

    ctx.font = font;
    const labels = [top, top / 2, 0].map((v) => this.format(v));
    const left = Math.ceil(Math.max(...labels.map((l) => ctx.measureText(l).width))) + 10;
    const plot = { x: left, y: 8, w: width - left - 8, h: height - 8 - 20 };
    const x = (/** @type {number} */ t) => plot.x + ((t - from) / windowMs) * plot.w;
    const y = (/** @type {number} */ v) => plot.y + plot.h - (v / top) * plot.h;

    // Grid and labels: 0, half, top; time at both ends.
    ctx.lineWidth = 1;
    ctx.strokeStyle = gridColor;
    ctx.fillStyle = textColor;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    [top, top / 2, 0].forEach((v, i) => {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.x, yy);
      ctx.lineTo(plot.x + plot.w, yy);
      ctx.stroke();
      ctx.fillText(labels[i], plot.x - 6, yy);
    });
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(windowMs >= 60_000 && windowMs % 60_000 === 0 ? `${windowMs / 60_000} min ago` : `${Math.round(windowMs / 1000)} s ago`, plot.x, height - 4);
    ctx.textAlign = 'right';
    ctx.fillText('now', plot.x + plot.w, height - 4);

    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y - 2, plot.w, plot.h + 4);
    ctx.clip();
    this.series.forEach((s, i) => {
      const runs = this.#runs(i);
      ctx.lineJoin = 'round';
      ctx.lineWidth = 2;
      ctx.strokeStyle = s.color;
      for (const run of runs) {
        if (s.fill !== false && i === 0) {
          ctx.beginPath();
          ctx.moveTo(x(run[0].t), y(0));
          for (const p of run) ctx.lineTo(x(p.t), y(p.v));
          ctx.lineTo(x(run.at(-1).t), y(0));
          ctx.closePath();
          ctx.globalAlpha = 0.12;
          ctx.fillStyle = s.color;
          ctx.fill();
          ctx.globalAlpha = 1;
        }
        ctx.beginPath();
        run.forEach((p, j) => (j ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
        if (run.length === 1) ctx.arc(x(run[0].t), y(run[0].v), 1.5, 0, Math.PI * 2);
        ctx.stroke();
      }
    });
    ctx.restore();
  }

  /** The runs of consecutive non-null values of series `i`. */
  #runs(/** @type {number} */ i) {
    /** @type {{t: number, v: number}[][]} */
    const runs = [];
    /** @type {{t: number, v: number}[]} */
    let run = [];
    for (const p of this.points) {
      const v = p.values[i];
      if (v === null) {
        if (run.length) runs.push(run);
        run = [];
      } else {
        run.push({ t: p.t, v });
      }
    }
    if (run.length) runs.push(run);
    return runs;
  }
}

/** The smallest of 1, 2, 2.5, 5 × 10^n at or above `v`. */
export function niceCeiling(/** @type {number} */ v) {
  if (v <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= v) return step * magnitude;
  return 10 * magnitude;
}

/** Like niceCeiling, in KiB, MiB, GiB once past 1024. */
export function niceBytes(/** @type {number} */ v) {
  let unit = 1;
  while (v >= unit * 1024 && unit < 1 << 30) unit *= 1024;
  return unit * niceCeiling(v / unit);
}

/** 1234 → "1.2k". */
export function formatNumber(/** @type {number} */ v) {
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${trim(v / 1e9)}G`;
  if (abs >= 1e6) return `${trim(v / 1e6)}M`;
  if (abs >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

/** Bytes per second. */
export function formatBytes(/** @type {number} */ v) {
  if (v >= 1 << 30) return `${trim(v / (1 << 30))} GiB`;
  if (v >= 1 << 20) return `${trim(v / (1 << 20))} MiB`;
  if (v >= 1 << 10) return `${trim(v / (1 << 10))} KiB`;
  return `${trim(v)} B`;
}

/** Microseconds. */
export function formatMicros(/** @type {number} */ v) {
  if (v >= 1e6) return `${trim(v / 1e6)} s`;
  if (v >= 1e3) return `${trim(v / 1e3)} ms`;
  return `${trim(v)} µs`;
}

function trim(/** @type {number} */ v) {
  const abs = Math.abs(v);
  const digits = abs >= 10 || Number.isInteger(v) ? 0 : abs >= 1 ? 1 : 2;
  return String(Number(v.toFixed(digits)));
}
