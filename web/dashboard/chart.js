// A small time-series chart on <canvas>, for the dashboard: one line per
// series (the first also filled as an area), over a rolling window of time,
// with a y axis from 0 to a rounded maximum and a time axis in seconds ago.
// Drawn at the device's pixel ratio, redrawn when the canvas is resized.

const AXIS_FONT = '11px system-ui, sans-serif';
const PAD = { left: 44, right: 10, top: 10, bottom: 20 };
/** Points kept per series at most, whatever the window. */
const MAX_POINTS = 2000;

/** The smallest 1, 2 or 5 × 10^k at least `v / ticks`, so `ticks` steps cover `v`. */
export function niceStep(v, ticks = 4) {
  if (!(v > 0)) return 1;
  const raw = v / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    if (m * mag >= raw) return m * mag;
  }
  return 10 * mag;
}

/** `n` written short: 950, 1.2k, 3.4M. */
export function shortNumber(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(a < 10 ? 1 : 0)}`;
}

export class Chart {
  /**
   * `series`: [{label, color}]; `windowMs`: how much time the x axis shows.
   * Colors are CSS colors (the dashboard reads them from its stylesheet).
   */
  constructor(canvas, { series, windowMs = 120_000 }) {
    this.canvas = canvas;
    this.series = series;
    this.windowMs = windowMs;
    /** [time ms, [value per series]] oldest first. */
    this.points = [];
    this.size = { w: 0, h: 0, dpr: 1 };
    if (typeof ResizeObserver !== 'undefined') {
      this.observer = new ResizeObserver(() => this.draw());
      this.observer.observe(canvas);
    }
  }

  /** Adds the values at `timeMs` (one per series) and redraws. */
  push(timeMs, values) {
    const last = this.points[this.points.length - 1];
    if (last && timeMs < last[0]) this.points = []; // the clock went back: start over
    this.points.push([timeMs, values.map((v) => (Number.isFinite(v) ? v : 0))]);
    const oldest = timeMs - this.windowMs;
    let drop = 0;
    while (drop < this.points.length - 1 && this.points[drop + 1][0] <= oldest) drop += 1;
    if (this.points.length - drop > MAX_POINTS) drop = this.points.length - MAX_POINTS;
    if (drop > 0) this.points.splice(0, drop);
    this.draw();
  }

  /** Sizes the backing store to the element's size × devicePixelRatio. */
  #fit() {
    const dpr = globalThis.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (w !== this.size.w || h !== this.size.h || dpr !== this.size.dpr) {
      this.canvas.width = Math.max(1, Math.round(w * dpr));
      this.canvas.height = Math.max(1, Math.round(h * dpr));
      this.size = { w, h, dpr };
    }
    return this.size;
  }

  draw() {
    const { w, h, dpr } = this.#fit();
    const g = this.canvas.getContext('2d');
    if (!g || w === 0 || h === 0) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(this.canvas);
    const ink = style.color || '#555';
    const grid = style.getPropertyValue('--grid').trim() || 'rgba(128,128,128,0.25)';
    const plot = { x: PAD.left, y: PAD.top, w: w - PAD.left - PAD.right, h: h - PAD.top - PAD.bottom };
    if (plot.w <= 0 || plot.h <= 0) return;

    const now = this.points.length ? this.points[this.points.length - 1][0] : Date.now();
    const start = now - this.windowMs;
    let max = 0;
    for (const [, vs] of this.points) for (const v of vs) max = Math.max(max, v);
    const step = niceStep(max || 1);
    const top = Math.max(step, Math.ceil((max || 1) / step) * step);
    const x = (t) => plot.x + ((t - start) / this.windowMs) * plot.w;
    const y = (v) => plot.y + plot.h - (v / top) * plot.h;

    // Grid and axis labels.
    g.font = AXIS_FONT;
    g.lineWidth = 1;
    g.strokeStyle = grid;
    g.fillStyle = ink;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(plot.x, yy);
      g.lineTo(plot.x + plot.w, yy);
      g.stroke();
      g.fillText(shortNumber(v), plot.x - 6, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const secs = this.windowMs / 1000;
    const tick = niceStep(secs, 4);
    for (let s = 0; s <= secs; s += tick) {
      const xx = Math.round(x(now - s * 1000)) + 0.5;
      // "now" ends at the plot's right edge instead of overflowing it.
      g.textAlign = s === 0 ? 'right' : 'center';
      g.fillText(s === 0 ? 'now' : `-${s}s`, xx, plot.y + plot.h + 5);
    }

    // Series: clipped to the plot, the first one filled.
    g.save();
    g.beginPath();
    g.rect(plot.x, plot.y, plot.w, plot.h);
    g.clip();
    this.series.forEach((s, i) => {
      if (this.points.length === 0) return;
      g.beginPath();
      this.points.forEach(([t, vs], j) => {
        if (j === 0) g.moveTo(x(t), y(vs[i]));
        else g.lineTo(x(t), y(vs[i]));
      });
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.stroke();
      if (i === 0) {
        const last = this.points[this.points.length - 1][0];
        g.lineTo(x(last), y(0));
        g.lineTo(x(this.points[0][0]), y(0));
        g.closePath();
        g.globalAlpha = 0.15;
        g.fillStyle = s.color;
        g.fill();
        g.globalAlpha = 1;
      }
    });
    g.restore();
  }

  /** Stops watching the canvas's size. */
  dispose() {
    this.observer?.disconnect();
  }
}
