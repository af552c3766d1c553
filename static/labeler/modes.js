// @ts-check
/**
 * One handler object per mode: what a pointer does in it, what Enter and Esc do, what it draws
 * over the image. Handlers keep no state of their own; they work on the `Tools` they are given
 * and change the document only through the store's methods. `TRANSITIONS` is the one place that
 * says which mode may be entered, and what it needs.
 */
import { addRing, edgeNear, insertVertex, keepAspect, moveVertex, removeVertex, translate } from "./geometry.js";
import { shapeAt } from "./hit.js";
import { handles } from "./renderer.js";

/** @typedef {import("./tools.js").Tools} Tools */
/** @typedef {import("./store.js").Shape} Shape */
/**
 * @typedef {{
 *   down?: (tools: Tools, point: number[], e: PointerEvent) => void,
 *   move?: (tools: Tools, point: number[], e: PointerEvent) => void,
 *   up?: (tools: Tools, e: PointerEvent) => void,
 *   finish?: (tools: Tools) => void,
 *   cancel?: (tools: Tools) => boolean,
 *   leave?: (tools: Tools) => void,
 *   overlay?: (tools: Tools, ctx: CanvasRenderingContext2D, scale: number) => void,
 * }} Mode
 */

const HANDLE_PX = 8;

/**
 * Which modes exist and what entering one needs: `edits` modes need the right to annotate;
 * a `target` sub-mode adds to an object of that kind (G adds a polygon part, H a hole, K extends
 * a polyline), the one the person selected or else the last one drawn.
 */
export const TRANSITIONS = {
  select: { edits: false },
  box: { edits: true },
  polygon: { edits: true, sub: { part: "polygon", hole: "polygon" } },
  polyline: { edits: true, sub: { extend: "polyline" } },
  points: { edits: true },
  mask: { edits: true },
  smart: { edits: true },
};

/**
 * Why `tool` (with `sub`) may not be entered now, or "" when it may.
 * @param {string} tool @param {string} sub @param {{canEdit: boolean, target: Shape|undefined}} state
 */
export function refusal(tool, sub, { canEdit, target }) {
  const rule = /** @type {any} */ (TRANSITIONS)[tool];
  if (!rule) return `There is no ${tool} tool.`;
  if (rule.edits && !canEdit) return "Your role in this project may look, not label.";
  const kind = sub === "new" ? undefined : rule.sub?.[sub];
  if (sub !== "new" && !kind) return `The ${tool} tool has no ${sub} mode.`;
  if (kind && target?.kind !== kind) return `Select a ${kind} first.`;
  return "";
}

/** @type {Mode} */
const select = {
  down(tools, point, e) {
    const tolerance = HANDLE_PX / tools.renderer.view.scale;
    if (tools.vertexMode === "remove" && tools.canEdit && tools.selected === undefined) {
      // R then a click on any object's vertex: the object is picked and the vertex goes at once.
      tools.select(shapeAt(tools.store.shapes, point, tolerance)?._key, { byUser: true });
    }
    const selected = tools.store.find(tools.selected);
    if (selected && tools.canEdit) {
      const near = (/** @type {number} */ hx, /** @type {number} */ hy) => Math.abs(hx - point[0]) <= tolerance && Math.abs(hy - point[1]) <= tolerance;
      const keypoint = (selected.keypoints || []).findIndex((/** @type {any} */ k) => near(k.x, k.y));
      if (keypoint >= 0) {
        if (e.altKey) {
          const keypoints = (selected.keypoints || []).map((k, i) => (i === keypoint ? { ...k, visible: !k.visible } : k));
          return tools.store.update(selected._key, { keypoints });
        }
        tools.store.begin();
        tools.drag = { kind: "keypoint", key: selected._key, index: keypoint };
        return;
      }
      const index = handles(selected).findIndex(([hx, hy]) => near(hx, hy));
      if (index >= 0 && tools.vertexMode === "remove") {
        const geometry = removeVertex(selected, index);
        if (!geometry) return tools.notice(`A ${selected.kind} needs more points than that.`);
        return tools.store.update(selected._key, { geometry });
      }
      if (index >= 0) {
        tools.store.begin();
        tools.drag = { kind: "vertex", key: selected._key, index };
        return;
      }
      const edge = selected.kind === "polygon" ? edgeNear(selected, point, tolerance) : null;
      if (edge) {
        // A click on an edge's projection adds a vertex there, ready to drag (spec 000, "Edit").
        tools.store.begin();
        tools.store.preview(selected._key, { geometry: insertVertex(selected, edge) });
        tools.drag = { kind: "vertex", key: selected._key, index: edge.handle, moved: true };
        return;
      }
    }
    const hit = shapeAt(tools.store.shapes, point, 6 / tools.renderer.view.scale);
    tools.select(hit?._key, { byUser: true });
    if (hit && tools.canEdit) {
      tools.store.begin();
      tools.drag = { kind: "move", key: hit._key, from: point, original: hit };
    }
  },
  move(tools, point) {
    const drag = tools.drag;
    const shape = tools.store.find(drag?.key);
    if (!drag || !shape) return;
    if (drag.kind === "move") {
      // The object moves with its keypoints.
      const dx = point[0] - drag.from[0], dy = point[1] - drag.from[1], original = drag.original;
      tools.store.preview(drag.key, {
        geometry: translate(shape.kind, original.geometry, dx, dy),
        keypoints: (original.keypoints || []).map((/** @type {any} */ k) => ({ ...k, x: k.x + dx, y: k.y + dy })),
      });
    } else if (drag.kind === "vertex") {
      tools.store.preview(drag.key, { geometry: moveVertex(shape, drag.index, point) });
    } else if (drag.kind === "keypoint") {
      const [x, y] = point;
      tools.store.preview(drag.key, {
        keypoints: (shape.keypoints || []).map((k, i) => (i === drag.index ? { ...k, x, y } : k)),
      });
    }
    drag.moved = true;
  },
  up(tools) {
    const drag = tools.drag;
    tools.drag = null;
    if (drag?.moved) tools.store.settle(drag.key); // the whole drag is one undoable step
  },
  cancel(tools) {
    if (tools.vertexMode === "remove") {
      tools.vertexMode = "move";
      return true;
    }
    return false;
  },
};

/** @type {Mode} */
const box = {
  down(tools, point) {
    tools.drag = { kind: "box", from: point, to: point };
  },
  move(tools, point) {
    if (tools.drag) tools.drag.to = tools.aspect ? keepAspect(tools.drag.from, point, tools.aspect) : point;
  },
  up(tools) {
    const drag = tools.drag;
    tools.drag = null;
    if (!drag) return;
    const [x0, y0] = drag.from, [x1, y1] = drag.to;
    const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0), scale = tools.renderer.view.scale;
    if (width * scale > 3 && height * scale > 3) tools.create("box", { x: Math.min(x0, x1), y: Math.min(y0, y1), width, height });
  },
  overlay(tools, ctx) {
    if (tools.drag?.kind !== "box") return;
    const [x0, y0] = tools.drag.from, [x1, y1] = tools.drag.to;
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  },
};

/** Polygons and polylines: click vertices, Enter (or a click on a polygon's first vertex) ends. @param {"polygon"|"polyline"} kind @returns {Mode} */
function vertices(kind) {
  return {
    down(tools, point) {
      const target = tools.ringTarget();
      if (kind === "polyline" && tools.ringMode === "extend" && target) {
        // K: each click adds a point joined to the previous one.
        tools.store.update(target._key, { geometry: { points: [...target.geometry.points, point] } });
        return;
      }
      const first = tools.draft[0];
      const closeEnough = first && Math.hypot(point[0] - first[0], point[1] - first[1]) * tools.renderer.view.scale <= HANDLE_PX;
      if (kind === "polygon" && tools.draft.length >= 3 && closeEnough) return this.finish?.(tools);
      tools.draft.push(point);
    },
    finish(tools) {
      const draft = tools.draft;
      tools.draft = [];
      const target = tools.ringTarget();
      if (kind === "polygon" && draft.length >= 3 && tools.ringMode !== "new" && target) {
        tools.store.update(target._key, { geometry: addRing(target, draft, /** @type {"part"|"hole"} */ (tools.ringMode)) });
        tools.ringMode = "new";
      } else if (kind === "polygon" && draft.length >= 3) {
        tools.create("polygon", { parts: [{ outer: draft, holes: [] }] });
      } else if (kind === "polyline" && draft.length >= 2) {
        tools.create("polyline", { points: draft });
      }
    },
    cancel(tools) {
      if (!tools.draft.length) return false;
      tools.draft = [];
      return true;
    },
    overlay(tools, ctx) {
      if (!tools.draft.length) return;
      ctx.beginPath();
      tools.draft.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.lineTo(tools.pointer[0], tools.pointer[1]);
      ctx.stroke();
    },
  };
}

/** @type {Mode} */
const points = {
  down(tools, point) {
    tools.create("points", { points: [point] });
  },
};

/** The bitmap tool: brush or eraser strokes on the mask being edited (or a new one), or a fill. @type {Mode} */
const mask = {
  down(tools, point) {
    const bitmap = tools.bitmap;
    // A mask the person selected is the one to paint; else the one being edited; else a new one.
    const selected = tools.store.find(tools.selected);
    const target = selected?.kind === "mask" ? selected : tools.store.find(bitmap.key);
    if (bitmap.canvas && target?._key !== bitmap.key) tools.closeBitmap();
    const label = target ? target.label : /** @type {number} */ (tools.label);
    bitmap.begin(target, tools.renderer.labels.get(label)?.color || "#ffffff");
    bitmap.label = label;
    tools.renderer.editingKey = bitmap.key;
    if (bitmap.mode === "fill") {
      bitmap.fill(point);
      finishStroke(tools);
    } else {
      bitmap.stroke(point);
      tools.drag = { kind: "paint" };
    }
  },
  move(tools, point) {
    if (tools.drag?.kind === "paint") tools.bitmap.stroke(point);
  },
  up(tools) {
    if (tools.drag?.kind === "paint") finishStroke(tools);
    tools.drag = null;
  },
  leave(tools) {
    tools.closeBitmap();
  },
  overlay(tools, ctx) {
    if (!tools.bitmap.canvas) return;
    ctx.globalAlpha = 0.5;
    ctx.drawImage(tools.bitmap.canvas, 0, 0);
    ctx.globalAlpha = 1;
  },
};

/** A stroke or fill ended: save the mask (a new object the first time), or drop it when erased away. @param {Tools} tools */
function finishStroke(tools) {
  const bitmap = tools.bitmap;
  const geometry = bitmap.finish();
  const shape = tools.store.find(bitmap.key);
  tools.painting = true; // these changes come from the brush: it need not reload from them
  if (shape && geometry) tools.store.update(shape._key, { geometry });
  else if (shape) {
    tools.store.remove(shape._key);
    tools.closeBitmap();
  } else if (geometry) {
    const created = tools.store.add({ label: /** @type {number} */ (bitmap.label), kind: "mask", geometry, source: "manual" });
    bitmap.key = created._key; // the next strokes go on this mask until N starts another
    tools.renderer.editingKey = created._key;
    tools.created(created);
  }
  tools.painting = false;
}

/** The smart tool's work area and marks (smart.js asks the server; nothing is stored before Done). @type {Mode} */
const smart = {
  down(tools, point, e) {
    tools.smart.down(point, e);
    tools.drag = { kind: "smart" };
  },
  move(tools, point) {
    if (tools.drag?.kind === "smart") tools.smart.move(point, tools.renderer.view.scale);
  },
  up(tools) {
    if (tools.drag?.kind === "smart") tools.smart.up(tools.renderer.view.scale);
    tools.drag = null;
  },
  cancel(tools) {
    tools.smart.reset();
    return true;
  },
  leave(tools) {
    tools.smart.reset(); // nothing is kept until Done
  },
  overlay(tools, ctx, scale) {
    tools.smart.draw(ctx, scale);
  },
};

/** @type {Record<string, Mode>} */
export const MODES = { select, box, polygon: vertices("polygon"), polyline: vertices("polyline"), points, mask, smart };
