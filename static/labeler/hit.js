// @ts-check
/**
 * Which object is under the pointer. Masks answer by their pixels, not their image-sized box,
 * and where objects overlap the smallest one wins: a box inside a big mask stays clickable.
 */
import { ringArea } from "./geometry.js";
import { decodeCounts } from "./rle.js";
import { geometryOf } from "./renderer.js";

/** @typedef {import("./store.js").Shape} Shape */

const scratch = /** @type {CanvasRenderingContext2D} */ (document.createElement("canvas").getContext("2d"));

/** @type {WeakMap<object, {pixels: Uint8Array, area: number}>} decoded masks, per geometry object */
const masks = new WeakMap();

/** A mask's pixels (column-major, as COCO stores them) and its area, decoded once. @param {any} geometry */
function maskPixels(geometry) {
  let entry = masks.get(geometry);
  if (!entry) {
    const [height, width] = geometry.rle.size;
    const pixels = new Uint8Array(width * height);
    let position = 0, value = 0, area = 0;
    for (const run of decodeCounts(geometry.rle.counts)) {
      if (value) {
        pixels.fill(1, position, position + run);
        area += run;
      }
      position += run;
      value = 1 - value;
    }
    entry = { pixels, area };
    masks.set(geometry, entry);
  }
  return entry;
}

/** @param {Shape} shape */
export function shapeArea(shape) {
  const g = shape.geometry;
  if (shape.kind === "box") return g.width * g.height;
  if (shape.kind === "mask") return maskPixels(g).area;
  if (shape.kind === "polygon") {
    return g.parts.reduce((/** @type {number} */ sum, /** @type {any} */ p) =>
      sum + ringArea(p.outer) - p.holes.reduce((/** @type {number} */ h, /** @type {number[][]} */ r) => h + ringArea(r), 0), 0);
  }
  return 0; // lines and points are thin: under the pointer they win over any area
}

/**
 * @param {Shape} shape @param {number[]} point in image pixels @param {number} tolerance in image pixels
 */
export function shapeContains(shape, [x, y], tolerance) {
  const { box, path } = geometryOf(shape);
  if (x < box[0] - tolerance || x > box[2] + tolerance || y < box[1] - tolerance || y > box[3] + tolerance) return false;
  if (shape.kind === "mask") {
    const [height, width] = shape.geometry.rle.size;
    const px = Math.floor(x), py = Math.floor(y);
    return px >= 0 && py >= 0 && px < width && py < height && maskPixels(shape.geometry).pixels[px * height + py] === 1;
  }
  scratch.lineWidth = tolerance * 2;
  if (shape.kind === "polyline") return scratch.isPointInStroke(path, x, y);
  return scratch.isPointInPath(path, x, y, "evenodd") || scratch.isPointInStroke(path, x, y);
}

/**
 * The smallest visible shape under a point (the topmost among equals).
 * @param {Shape[]} shapes @param {number[]} point @param {number} tolerance
 */
export function shapeAt(shapes, point, tolerance) {
  let best, bestArea = Infinity;
  for (let i = shapes.length - 1; i >= 0; i--) {
    const shape = shapes[i];
    if (shape._hidden || !shapeContains(shape, point, tolerance)) continue;
    const area = shapeArea(shape);
    if (area < bestArea) {
      best = shape;
      bestArea = area;
    }
  }
  return best;
}
