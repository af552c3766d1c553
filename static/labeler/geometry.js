// @ts-check
/**
 * Geometry edits the labeler's tools make, as pure functions of a shape's geometry: each
 * returns a new geometry object, so undo snapshots keep the old one.
 */
import { handles } from "./renderer.js";

/** @typedef {import("./store.js").Shape} Shape */

/** @param {string} kind @param {any} g @param {number} dx @param {number} dy */
export function translate(kind, g, dx, dy) {
  /** @param {number[][]} ring */
  const shift = (ring) => ring.map(([x, y]) => [x + dx, y + dy]);
  if (kind === "box") return { ...g, x: g.x + dx, y: g.y + dy };
  if (kind === "polygon") return { parts: g.parts.map((/** @type {any} */ p) => ({ outer: shift(p.outer), holes: p.holes.map(shift) })) };
  if (kind === "polyline" || kind === "points") return { points: shift(g.points) };
  return g;
}

/** A new geometry with one handle moved. @param {Shape} shape @param {number} index @param {number[]} to */
export function moveVertex(shape, index, [x, y]) {
  const g = shape.geometry;
  if (shape.kind === "box") {
    const corners = handles(shape), [ox, oy] = corners[(index + 2) % 4];
    return { x: Math.min(ox, x), y: Math.min(oy, y), width: Math.abs(x - ox), height: Math.abs(y - oy) };
  }
  if (shape.kind === "polyline" || shape.kind === "points") {
    return { points: g.points.map((/** @type {number[]} */ p, /** @type {number} */ i) => (i === index ? [x, y] : p)) };
  }
  let n = 0;
  /** @param {number[][]} ring */
  const edit = (ring) => ring.map((p) => (n++ === index ? [x, y] : p));
  return { parts: g.parts.map((/** @type {any} */ p) => ({ outer: edit(p.outer), holes: p.holes.map(edit) })) };
}

/** The corner that keeps width / height = aspect, following the pointer's larger side. */
export function keepAspect(/** @type {number[]} */ [x0, y0], /** @type {number[]} */ [x1, y1], /** @type {number} */ aspect) {
  const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0);
  const w = Math.max(width, height * aspect), h = w / aspect;
  return [x0 + Math.sign(x1 - x0 || 1) * w, y0 + Math.sign(y1 - y0 || 1) * h];
}

/**
 * The polygon edge nearest a point, if within `tolerance`: where to insert a vertex.
 * @param {Shape} shape @param {number[]} point @param {number} tolerance
 * @returns {{part: number, ring: number, after: number, at: number[], handle: number} | null}
 */
export function edgeNear(shape, [px, py], tolerance) {
  let handle = 0, best = null, bestDistance = tolerance;
  shape.geometry.parts.forEach((/** @type {any} */ part, /** @type {number} */ p) => {
    [part.outer, ...part.holes].forEach((/** @type {number[][]} */ ring, /** @type {number} */ r) => {
      ring.forEach(([ax, ay], i) => {
        const [bx, by] = ring[(i + 1) % ring.length];
        const dx = bx - ax, dy = by - ay, length = dx * dx + dy * dy || 1;
        const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / length));
        const x = ax + t * dx, y = ay + t * dy, distance = Math.hypot(px - x, py - y);
        if (distance < bestDistance) {
          bestDistance = distance;
          best = { part: p, ring: r, after: i, at: [x, y], handle: handle + i + 1 };
        }
      });
      handle += ring.length;
    });
  });
  return best;
}

/** @param {Shape} shape @param {{part: number, ring: number, after: number, at: number[]}} edge */
export function insertVertex(shape, edge) {
  return {
    parts: shape.geometry.parts.map((/** @type {any} */ part, /** @type {number} */ p) => {
      const rings = [part.outer, ...part.holes].map((/** @type {number[][]} */ ring, /** @type {number} */ r) =>
        p === edge.part && r === edge.ring ? [...ring.slice(0, edge.after + 1), edge.at, ...ring.slice(edge.after + 1)] : ring);
      return { outer: rings[0], holes: rings.slice(1) };
    }),
  };
}


/**
 * A geometry with one vertex removed, or null when the shape would keep too few (polygon rings
 * keep 3, polylines 2, points 1). @param {Shape} shape @param {number} index
 */
export function removeVertex(shape, index) {
  const minimum = { polygon: 3, polyline: 2, points: 1 }[/** @type {"polygon"} */ (shape.kind)];
  if (!minimum) return null;
  let n = 0, tooFew = false;
  /** @param {number[][]} ring */
  const drop = (ring) => {
    const kept = ring.filter(() => n++ !== index);
    if (kept.length < minimum) tooFew = true;
    return kept;
  };
  const g = shape.geometry;
  const geometry = shape.kind === "polygon"
    ? { parts: g.parts.map((/** @type {any} */ p) => ({ outer: drop(p.outer), holes: p.holes.map(drop) })) }
    : { points: drop(g.points) };
  return tooFew ? null : geometry;
}

/** The polygon's geometry with `ring` added as a new part, or as a hole of the part it starts in.
 * @param {Shape} target @param {number[][]} ring @param {"part"|"hole"} as */
export function addRing(target, ring, as) {
  const parts = target.geometry.parts.map((/** @type {any} */ p) => ({ outer: p.outer, holes: p.holes.slice() }));
  if (as === "part") parts.push({ outer: ring, holes: [] });
  else {
    const index = Math.max(0, parts.findIndex((/** @type {any} */ p) => insideRing(ring[0], p.outer)));
    parts[index].holes.push(ring);
  }
  return { parts };
}

/** Even-odd point in polygon. @param {number[]} point @param {number[][]} ring */
export function insideRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Shoelace area of a ring. @param {number[][]} ring */
export function ringArea(ring) {
  let sum = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) sum += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
  return Math.abs(sum) / 2;
}
