// @ts-check
/**
 * The smart labeling tool of spec 000: drag a rectangular work area, mark foreground (left button)
 * and background (right button, Shift, or the Background toggle) with clicks or strokes, Extract
 * (Enter) as often as needed, and Done (Shift+Enter) turns the last result into a mask object with
 * source "smart". Until Done nothing is stored: the marks and the result live here only.
 * The server runs SAM or GrabCut (`POST /api/images/{id}/smart/`); this module only draws and asks.
 * With SAM, an image's embedding is computed by a worker: until it is ready the server answers 202
 * with the job, and this module says "Preparing the smart tool… n s" and asks again once it finishes.
 */
import { errorText, loadJob, smartSegment } from "./api.js";

const POLL_MS = 1000;
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
import { maskCanvas } from "./rle.js";

/** @typedef {{kind: "area", from: number[], to: number[]} | {kind: "foreground"|"background", points: number[][]}} Drawing */

export class SmartTool extends EventTarget {
  /** @param {{id: number, width: number, height: number}} image */
  constructor(image) {
    super();
    this.image = image;
    /** "foreground" or "background": what a left-button mark means (X toggles). */
    this.mode = "foreground";
    /** How many Extracts have answered on this page (tests and the status line wait on it). */
    this.extractions = 0;
    /** @type {{x: number, y: number, width: number, height: number} | null} */
    this.area = null;
    /** @type {(number[]|number[][])[]} */
    this.foreground = [];
    /** @type {(number[]|number[][])[]} */
    this.background = [];
    /** @type {any} the server's last answer */
    this.result = null;
    /** @type {OffscreenCanvas|null} */
    this.overlay = null;
    /** @type {Drawing|null} */
    this.drawing = null;
    this.busy = false;
    this.newArea = false;
    this.reset();
  }

  /** Forget the work area, the marks and the result (Esc, Done, or another tool). */
  reset() {
    this.area = null;
    this.foreground = [];
    this.background = [];
    this.result = null;
    this.overlay = null;
    this.drawing = null;
    this.busy = false;
    this.newArea = false;
    this.dispatchEvent(new CustomEvent("status", { detail: "Drag a work area around the object." }));
  }

  get marks() {
    return this.foreground.length + this.background.length;
  }

  /** @param {number[]} point @param {PointerEvent} e */
  down(point, e) {
    if (!this.area || this.newArea) {
      this.drawing = { kind: "area", from: point, to: point };
    } else {
      const background = e.button === 2 || e.shiftKey || this.mode === "background";
      this.drawing = { kind: background ? "background" : "foreground", points: [point] };
    }
  }

  /** @param {number[]} point @param {number} scale canvas pixels per image pixel */
  move(point, scale) {
    const drawing = this.drawing;
    if (!drawing) return;
    if (drawing.kind === "area") {
      drawing.to = point;
      return;
    }
    const last = drawing.points[drawing.points.length - 1];
    if (Math.hypot(point[0] - last[0], point[1] - last[1]) * scale >= 3) drawing.points.push(point);
  }

  /** @param {number} scale */
  up(scale) {
    const drawing = this.drawing;
    this.drawing = null;
    if (!drawing) return;
    if (drawing.kind === "area") {
      const [x0, y0] = drawing.from, [x1, y1] = drawing.to;
      const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0);
      if (width * scale < 6 || height * scale < 6) return;
      this.area = { x: Math.min(x0, x1), y: Math.min(y0, y1), width, height };
      this.newArea = false;
      this.foreground = [];
      this.background = [];
      this.result = null;
      this.overlay = null;
      this.dispatchEvent(new CustomEvent("status", { detail: "Mark the foreground, then the background; Extract (Enter)." }));
    } else {
      // A click is a point; a drag is a stroke (the server takes both).
      const mark = drawing.points.length === 1 ? drawing.points[0] : drawing.points;
      (drawing.kind === "background" ? this.background : this.foreground).push(mark);
      this.dispatchEvent(new CustomEvent("status", { detail: `${this.foreground.length} foreground, ${this.background.length} background marks. Extract (Enter).` }));
    }
  }

  /** Ask the server for a mask; the marks stay, so more marks and another Extract refine it. @param {string} color */
  async extract(color) {
    if (!this.area) return this.dispatchEvent(new CustomEvent("status", { detail: "Drag a work area first." }));
    if (this.busy) return;
    this.busy = true;
    const started = performance.now();
    let doing = "Extracting…";
    const tick = setInterval(() => this.dispatchEvent(new CustomEvent("status", {
      detail: `${doing} ${((performance.now() - started) / 1000).toFixed(1)} s`,
    })), 250);
    this.dispatchEvent(new CustomEvent("status", { detail: doing }));
    try {
      const prompt = { box: this.area, foreground: this.foreground, background: this.background };
      let answer = await smartSegment(this.image.id, prompt);
      while (answer.status === 202) {
        doing = "Preparing the smart tool…";
        const failure = await this.waitFor(answer.body.job);
        if (failure) return this.dispatchEvent(new CustomEvent("status", { detail: failure }));
        doing = "Extracting…";
        answer = await smartSegment(this.image.id, prompt);
      }
      const body = answer.body;
      if (!answer.ok) {
        this.dispatchEvent(new CustomEvent("status", { detail: errorText(answer) }));
        return;
      }
      this.result = body;
      this.extractions += 1;
      this.overlay = body.area ? maskCanvas(body.rle, color, 130) : null;
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      this.dispatchEvent(new CustomEvent("status", {
        detail: body.area ? `Extracted ${body.area.toLocaleString()} px in ${seconds} s. Refine and Extract again, or Done (Shift+Enter).`
          : "Nothing found: mark more foreground and Extract again.",
      }));
      this.dispatchEvent(new Event("extracted"));
    } catch {
      this.dispatchEvent(new CustomEvent("status", { detail: "The server could not be reached; try Extract again." }));
    } finally {
      clearInterval(tick);
      this.busy = false;
    }
  }

  /** Wait until the job that computes this image's embedding ends; what went wrong, or "" when it finished.
   * @param {number|null} jobId */
  async waitFor(jobId) {
    if (jobId === null) return "";
    for (;;) {
      await sleep(POLL_MS);
      const job = await loadJob(jobId);
      if (!job.ok) return errorText(job);
      if (job.body.status === "finished") return "";
      if (job.body.status === "failed") return `The smart tool could not be prepared: ${job.body.error}`;
      if (job.body.status === "cancelled") return "Preparing the smart tool was cancelled; Extract again to retry.";
    }
  }

  /** The mask to save, if the last Extract found one. */
  geometry() {
    return this.result?.area ? { rle: this.result.rle } : null;
  }

  /** @param {CanvasRenderingContext2D} ctx @param {number} scale */
  draw(ctx, scale) {
    if (this.overlay) ctx.drawImage(this.overlay, 0, 0);
    const area = this.drawing?.kind === "area"
      ? { x: Math.min(this.drawing.from[0], this.drawing.to[0]), y: Math.min(this.drawing.from[1], this.drawing.to[1]),
          width: Math.abs(this.drawing.to[0] - this.drawing.from[0]), height: Math.abs(this.drawing.to[1] - this.drawing.from[1]) }
      : this.area;
    if (area) {
      ctx.setLineDash([6 / scale, 4 / scale]);
      ctx.strokeStyle = "#ffff00";
      ctx.lineWidth = 1.5 / scale;
      ctx.strokeRect(area.x, area.y, area.width, area.height);
      ctx.setLineDash([]);
    }
    const pending = this.drawing && this.drawing.kind !== "area" ? [[this.drawing.kind, this.drawing.points]] : [];
    /** @type {[string, any][]} */
    const all = [...this.foreground.map((m) => ["foreground", m]), ...this.background.map((m) => ["background", m]), .../** @type {any} */ (pending)];
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const [kind, mark] of all) {
      ctx.strokeStyle = ctx.fillStyle = kind === "foreground" ? "#22dd55" : "#ff3b3b";
      ctx.lineWidth = 4 / scale;
      const points = typeof mark[0] === "number" ? [mark] : mark;
      if (points.length === 1) {
        ctx.beginPath();
        ctx.arc(points[0][0], points[0][1], 4 / scale, 0, Math.PI * 2);
        ctx.fill();
      } else {
        ctx.beginPath();
        points.forEach(([x, y], /** @type {number} */ i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.stroke();
      }
    }
  }
}
