// @ts-check
/**
 * Draws the image and its shapes on one 2D canvas. Shapes off screen are skipped (culled by
 * their cached bounding boxes) and each geometry's Path2D is built once, so a frame with
 * thousands of polygons costs little more than the ones in view.
 */
import { maskCanvas } from "./rle.js";

/** @typedef {import("./store.js").Shape} Shape */

/** @type {WeakMap<object, {box: number[], path: Path2D}>} */
const cache = new WeakMap();

/** @param {Shape} shape */
export function geometryOf(shape) {
  let entry = cache.get(shape.geometry);
  if (!entry) {
    entry = { box: bounds(shape), path: pathOf(shape) };
    cache.set(shape.geometry, entry);
  }
  return entry;
}

/** @param {Shape} shape @returns {number[]} [x0, y0, x1, y1] */
function bounds(shape) {
  const g = shape.geometry;
  if (shape.kind === "box") return [g.x, g.y, g.x + g.width, g.y + g.height];
  if (shape.kind === "mask") return [0, 0, g.rle.size[1], g.rle.size[0]];
  const points = shape.kind === "polygon" ? g.parts.flatMap((/** @type {any} */ p) => p.outer) : g.points;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of points) {
    if (x < x0) x0 = x; if (y < y0) y0 = y; if (x > x1) x1 = x; if (y > y1) y1 = y;
  }
  return [x0, y0, x1, y1];
}

/** @param {Shape} shape */
function pathOf(shape) {
  const g = shape.geometry, path = new Path2D();
  /** @param {number[][]} ring @param {boolean} close */
  const trace = (ring, close) => {
    ring.forEach(([x, y], i) => (i ? path.lineTo(x, y) : path.moveTo(x, y)));
    if (close) path.closePath();
  };
  if (shape.kind === "box") path.rect(g.x, g.y, g.width, g.height);
  else if (shape.kind === "polygon") {
    for (const part of g.parts) {
      trace(part.outer, true);
      for (const hole of part.holes) trace(hole, true);
    }
  } else if (shape.kind === "polyline") trace(g.points, false);
  else if (shape.kind === "points") {
    for (const [x, y] of g.points) {
      path.moveTo(x + 3, y); // each point its own circle, not joined to the last
      path.arc(x, y, 3, 0, Math.PI * 2);
    }
  }
  return path;
}

export class Renderer {
  /**
   * @param {HTMLCanvasElement} canvas @param {HTMLImageElement} image
   * @param {import("./store.js").Store} store @param {Map<number, any>} labels
   */
  constructor(canvas, image, store, labels) {
    this.canvas = canvas;
    this.context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
    this.image = image;
    this.store = store;
    this.labels = labels;
    this.view = { scale: 1, x: 0, y: 0 };
    /** @type {number|undefined} */
    this.selected = undefined;
    /** @type {number|undefined} the mask the bitmap tool is editing, drawn by the tool instead */
    this.editingKey = undefined;
    /** @type {Shape[]|null} the server's version during a conflict, drawn dashed over ours */
    this.ghost = null;
    /** @type {((context: CanvasRenderingContext2D, scale: number) => void) | null} */
    this.overlay = null;
    /** @type {((context: CanvasRenderingContext2D, scale: number) => void) | null} Model Assist's suggestions */
    this.suggestions = null;
    /** @type {WeakMap<object, OffscreenCanvas>} */
    this.masks = new WeakMap();
    this.frame = 0;
    /** Whether the person zoomed or panned since the last fit: then a resize keeps their view. */
    this.moved = false;
    this.lastDrawMs = 0;
    this.drawn = 0;
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  /** The stage changed size (window, toolbar, side panel): refit unless the person zoomed or panned. */
  resize() {
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(this.canvas.clientWidth * ratio);
    this.canvas.height = Math.round(this.canvas.clientHeight * ratio);
    if (!this.moved) this.fit();
    this.draw();
  }

  fit() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    if (!w || !h) return;
    const scale = Math.min(w / this.image.naturalWidth, h / this.image.naturalHeight) * 0.95;
    this.view = { scale, x: (w - this.image.naturalWidth * scale) / 2, y: (h - this.image.naturalHeight * scale) / 2 };
    this.moved = false;
    this.requestDraw();
  }

  /** @param {number} px @param {number} py */
  toImage(px, py) {
    return [(px - this.view.x) / this.view.scale, (py - this.view.y) / this.view.scale];
  }

  /** @param {number} px @param {number} py @param {number} factor */
  zoomAt(px, py, factor) {
    const [ix, iy] = this.toImage(px, py);
    this.view.scale = Math.min(64, Math.max(0.01, this.view.scale * factor));
    this.view.x = px - ix * this.view.scale;
    this.view.y = py - iy * this.view.scale;
    this.moved = true;
    this.requestDraw();
  }

  /** @param {number} dx @param {number} dy */
  pan(dx, dy) {
    this.view.x += dx;
    this.view.y += dy;
    this.moved = true;
    this.requestDraw();
  }

  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const start = performance.now();
    const ctx = this.context, ratio = window.devicePixelRatio || 1, { scale, x, y } = this.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * x, ratio * y);
    if (this.image.complete) ctx.drawImage(this.image, 0, 0);
    const [vx0, vy0] = this.toImage(0, 0);
    const [vx1, vy1] = this.toImage(this.canvas.clientWidth, this.canvas.clientHeight);
    ctx.lineWidth = 2 / scale;
    let drawn = 0;
    for (const shape of this.store.shapes) {
      if (shape._hidden || shape._key === this.editingKey) continue;
      const { box, path } = geometryOf(shape);
      if (box[2] < vx0 || box[0] > vx1 || box[3] < vy0 || box[1] > vy1) continue;
      drawn += 1;
      const color = this.labels.get(shape.label)?.color || "#ffffff";
      const selected = shape._key === this.selected;
      if (shape.kind === "mask") {
        let bitmap = this.masks.get(shape.geometry);
        if (!bitmap) this.masks.set(shape.geometry, (bitmap = outlinedMask(shape.geometry.rle, color)));
        ctx.drawImage(bitmap, 0, 0);
        if (selected) ctx.drawImage(bitmap, 0, 0); // twice as strong when selected
        continue;
      }
      if (shape.kind === "points") {
        // Points keep their size on screen, in the label's colour inside a white ring and a dark
        // halo: visible on any image at any zoom.
        const radius = (selected ? 6 : 5) / scale;
        for (const [px, py] of shape.geometry.points) {
          ctx.beginPath();
          ctx.arc(px, py, radius, 0, Math.PI * 2);
          ctx.fillStyle = color;
          ctx.fill();
          ctx.lineWidth = 2 / scale;
          ctx.strokeStyle = "#ffffff";
          ctx.stroke();
          ctx.beginPath();
          ctx.arc(px, py, radius + 1.5 / scale, 0, Math.PI * 2);
          ctx.lineWidth = 1 / scale;
          ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
          ctx.stroke();
        }
        continue;
      }
      ctx.strokeStyle = color;
      ctx.setLineDash(shape.occluded ? [6 / scale, 4 / scale] : []);
      if (shape.kind === "polygon" || shape.kind === "box" || shape.kind === "points") {
        ctx.fillStyle = color + (selected ? "66" : "22");
        ctx.fill(path, "evenodd");
      }
      ctx.lineWidth = (selected ? 3 : 1.5) / scale;
      ctx.stroke(path);
      if (selected) this.drawHandles(shape);
    }
    if (this.ghost) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2 / scale;
      ctx.setLineDash([8 / scale, 6 / scale]);
      for (const shape of this.ghost) if (shape.kind !== "mask") ctx.stroke(geometryOf(shape).path);
    }
    ctx.setLineDash([]);
    if (this.suggestions) this.suggestions(ctx, scale);
    if (this.overlay) this.overlay(ctx, scale);
    this.drawn = drawn;
    this.lastDrawMs = performance.now() - start;
  }

  /** @param {Shape} shape */
  drawHandles(shape) {
    const ctx = this.context, size = 6 / this.view.scale;
    ctx.fillStyle = "#ffffff";
    for (const [hx, hy] of handles(shape)) ctx.fillRect(hx - size / 2, hy - size / 2, size, size);
    for (const k of shape.keypoints || []) {
      ctx.beginPath();
      ctx.arc(k.x, k.y, 4 / this.view.scale, 0, Math.PI * 2);
      ctx.fillStyle = k.visible ? "#ffeb3b" : "#9e9e9e";
      ctx.fill();
    }
  }
}

/**
 * A mask in its label's colour with a two-pixel outline, white outside and dark inside, so it
 * shows on light and dark images alike. Built once per geometry.
 * @param {{size: number[], counts: string}} rle @param {string} color
 */
function outlinedMask(rle, color) {
  const fill = maskCanvas(rle, color, 110);
  const solid = maskCanvas(rle, "#ffffff", 255);
  const [height, width] = rle.size;
  const out = new OffscreenCanvas(width, height);
  const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (out.getContext("2d"));
  for (const [dx, dy] of [[-1, 0], [1, 0], [0, -1], [0, 1], [-1, -1], [1, 1], [-1, 1], [1, -1]]) ctx.drawImage(solid, dx, dy);
  ctx.globalCompositeOperation = "destination-out";
  ctx.drawImage(solid, 0, 0); // only the ring just outside the mask stays white
  ctx.globalCompositeOperation = "source-over";
  ctx.drawImage(fill, 0, 0);
  return out;
}

/** The draggable vertices of a shape (box corners, polygon and polyline vertices). @param {Shape} shape */
export function handles(shape) {
  const g = shape.geometry;
  if (shape.kind === "box") return [[g.x, g.y], [g.x + g.width, g.y], [g.x + g.width, g.y + g.height], [g.x, g.y + g.height]];
  if (shape.kind === "polygon") return g.parts.flatMap((/** @type {any} */ p) => [...p.outer, ...p.holes.flat()]);
  if (shape.kind === "polyline" || shape.kind === "points") return g.points;
  return [];
}
