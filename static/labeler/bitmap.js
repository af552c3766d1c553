// @ts-check
/**
 * The bitmap tool of spec 000: a brush, an eraser and a fill on one object's mask. The mask
 * being edited lives in a canvas the size of the image (its alpha is the mask), so strokes
 * cost a circle each; when a stroke ends it is encoded to COCO RLE and saved like any edit.
 */
import { encodeMask, maskCanvas } from "./rle.js";

export class BitmapEditor {
  /** @param {{width: number, height: number}} image */
  constructor(image) {
    this.image = image;
    this.mode = "brush"; // brush, eraser or fill
    this.size = 12;
    /** @type {OffscreenCanvas|null} */
    this.canvas = null;
    /** @type {number|undefined} */
    this.key = undefined; // the shape being edited, or undefined for a new one
    /** @type {number[]|null} */
    this.last = null;
    /** @type {number|null} */
    this.label = null;
    this.color = "#ffffff";
  }

  /** Start editing a mask shape (or a new mask when `shape` is undefined). @param {any} shape @param {string} color */
  begin(shape, color) {
    if (this.canvas && this.key === shape?._key) return;
    this.key = shape?._key;
    this.canvas = shape?.kind === "mask" ? maskCanvas(shape.geometry.rle, color, 255) : new OffscreenCanvas(this.image.width, this.image.height);
    this.color = color;
  }

  /**
   * Undo or redo changed the document under the brush: show and keep exactly what it holds now,
   * so an undone stroke is neither drawn nor saved again. `shape` is the edited mask as it is
   * now, or undefined when the undo took it away.
   * @param {any} shape
   */
  reload(shape) {
    if (!this.canvas) return;
    if (shape?.kind !== "mask") {
      this.close();
      return;
    }
    this.canvas = maskCanvas(shape.geometry.rle, this.color, 255);
    this.last = null;
  }

  /** @param {number[]} point */
  stroke(point) {
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (/** @type {OffscreenCanvas} */ (this.canvas).getContext("2d"));
    ctx.globalCompositeOperation = this.mode === "eraser" ? "destination-out" : "source-over";
    ctx.fillStyle = this.color || "#ffffff";
    ctx.strokeStyle = ctx.fillStyle;
    ctx.lineWidth = this.size;
    ctx.lineCap = "round";
    ctx.beginPath();
    const [fx, fy] = this.last || point;
    ctx.moveTo(fx, fy);
    ctx.lineTo(point[0], point[1] + (this.last ? 0 : 0.01));
    ctx.stroke();
    this.last = point;
  }

  /** Fill the closed region around a point (spec 000: "click inside the closed bitmap shape"). @param {number[]} point */
  fill([px, py]) {
    const canvas = /** @type {OffscreenCanvas} */ (this.canvas);
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d"));
    const { width, height } = canvas;
    const data = ctx.getImageData(0, 0, width, height);
    const alpha = (/** @type {number} */ i) => data.data[i * 4 + 3];
    const start = Math.floor(py) * width + Math.floor(px);
    if (alpha(start) > 127) return;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt((this.color || "#ffffff").slice(i, i + 2), 16));
    const stack = [start], seen = new Uint8Array(width * height);
    while (stack.length) {
      const i = /** @type {number} */ (stack.pop());
      if (seen[i] || alpha(i) > 127) continue;
      seen[i] = 1;
      data.data.set([r, g, b, 255], i * 4);
      const x = i % width;
      if (x > 0) stack.push(i - 1);
      if (x < width - 1) stack.push(i + 1);
      if (i >= width) stack.push(i - width);
      if (i < width * (height - 1)) stack.push(i + width);
    }
    ctx.putImageData(data, 0, 0);
  }

  /** The edited mask as RLE (or null when nothing is left), ready to save. */
  finish() {
    this.last = null;
    const canvas = /** @type {OffscreenCanvas} */ (this.canvas);
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d"));
    const { size, counts, area } = encodeMask(ctx.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
    return area ? { rle: { size, counts } } : null;
  }

  close() {
    this.canvas = null;
    this.key = undefined;
    this.last = null;
  }
}
