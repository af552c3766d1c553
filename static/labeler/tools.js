// @ts-check
/**
 * The mode state machine: which tool is active and what a pointer does with it.
 * select: pick, move, drag vertices. box: drag a rectangle. polygon / polyline: click vertices,
 * Enter (or a click on the first vertex) finishes. points: each click is a point.
 * smart: a work area and foreground/background marks for the server's SAM or GrabCut (smart.js).
 * Space-drag or the middle button pans in every mode; the wheel zooms at the cursor.
 */
import { BitmapEditor } from "./bitmap.js";
import { geometryOf, handles } from "./renderer.js";
import { SmartTool } from "./smart.js";

/** @typedef {import("./store.js").Shape} Shape */

const HANDLE_PX = 8;
const scratch = /** @type {CanvasRenderingContext2D} */ (document.createElement("canvas").getContext("2d"));

export class Tools extends EventTarget {
  /**
   * @param {HTMLCanvasElement} canvas @param {import("./renderer.js").Renderer} renderer
   * @param {import("./store.js").Store} store @param {{id: number, width: number, height: number}} image
   */
  constructor(canvas, renderer, store, image) {
    super();
    this.canvas = canvas;
    this.renderer = renderer;
    this.store = store;
    this.image = image;
    this.tool = "select";
    /** "new", or "part" / "hole" to add the drawn ring to the selected polygon (G and H). */
    this.ringMode = "new";
    /** In select mode, "remove" makes a click on a vertex delete it (R). */
    this.vertexMode = "move";
    /** Width / height a new box keeps, or 0 for any (settings: fixed aspect ratio). */
    this.aspect = 0;
    /** @type {number|null} */
    this.label = null;
    /** @type {number[][]} */
    this.draft = [];
    /** @type {any} */
    this.drag = null;
    this.spaceDown = false;
    this.bitmap = new BitmapEditor(image);
    this.smart = new SmartTool(image);
    /** @type {number[]} */
    this.pointer = [0, 0];
    renderer.overlay = (ctx, scale) => this.drawOverlay(ctx, scale);
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    // The right button marks background in the smart tool.
    canvas.addEventListener("contextmenu", (e) => { if (this.tool === "smart") e.preventDefault(); });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.renderer.zoomAt(e.offsetX, e.offsetY, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
  }

  /** @param {string} tool @param {string} [ringMode] */
  setTool(tool, ringMode = "new") {
    if (tool !== "mask") this.closeBitmap();
    if (tool !== "smart" && this.tool === "smart") this.smart.reset(); // nothing is kept until Done
    this.tool = tool;
    this.ringMode = ringMode;
    this.vertexMode = "move";
    this.draft = [];
    this.dispatchEvent(new Event("tool"));
    this.renderer.requestDraw();
  }

  /** @param {number|undefined} key */
  select(key) {
    this.renderer.selected = key;
    this.dispatchEvent(new Event("select"));
    this.renderer.requestDraw();
  }

  /** @param {PointerEvent} e */
  at(e) {
    const [x, y] = this.renderer.toImage(e.offsetX, e.offsetY);
    return [Math.min(Math.max(x, 0), this.image.width), Math.min(Math.max(y, 0), this.image.height)];
  }

  /** @param {PointerEvent} e */
  down(e) {
    this.canvas.setPointerCapture(e.pointerId);
    if (this.spaceDown || e.button === 1) {
      this.drag = { kind: "pan", x: e.offsetX, y: e.offsetY };
      return;
    }
    const point = this.at(e);
    if (this.tool === "smart" && (e.button === 0 || e.button === 2)) {
      if (this.label === null) return this.dispatchEvent(new CustomEvent("need-label"));
      this.smart.down(point, e);
      this.drag = { kind: "smart" };
      this.renderer.requestDraw();
      return;
    }
    if (e.button !== 0) return;
    if (this.tool === "select") return this.pick(e, point);
    if (this.label === null) return this.dispatchEvent(new CustomEvent("need-label"));
    if (this.tool === "mask") return this.paint(point);
    if (this.tool === "box") this.drag = { kind: "box", from: point, to: point };
    else if (this.tool === "points") this.create("points", { points: [point] });
    else if (this.tool === "polygon" || this.tool === "polyline") this.addVertex(point);
  }

  /** @param {PointerEvent} e @param {number[]} point */
  pick(e, point) {
    const selected = this.store.find(this.renderer.selected);
    const tolerance = HANDLE_PX / this.renderer.view.scale;
    if (selected) {
      const near = (/** @type {number} */ hx, /** @type {number} */ hy) => Math.abs(hx - point[0]) <= tolerance && Math.abs(hy - point[1]) <= tolerance;
      const keypoint = (selected.keypoints || []).findIndex((/** @type {any} */ k) => near(k.x, k.y));
      if (keypoint >= 0) {
        if (e.altKey) return this.toggleKeypoint(selected, keypoint);
        this.drag = { kind: "keypoint", shape: selected, index: keypoint, before: this.store.snapshot() };
        return;
      }
      const index = handles(selected).findIndex(([hx, hy]) => near(hx, hy));
      if (index >= 0 && this.vertexMode === "remove") return this.removeVertex(selected, index);
      if (index >= 0) {
        this.drag = { kind: "vertex", shape: selected, index, before: this.store.snapshot() };
        return;
      }
      const edge = selected.kind === "polygon" ? edgeNear(selected, point, tolerance) : null;
      if (edge) {
        // A click on an edge's projection adds a vertex there, ready to drag (spec 000, "Edit").
        const before = this.store.snapshot();
        selected.geometry = insertVertex(selected, edge);
        this.drag = { kind: "vertex", shape: selected, index: edge.handle, before, moved: true };
        this.renderer.requestDraw();
        return;
      }
    }
    const hit = this.hitTest(point);
    this.select(hit?._key);
    if (hit) this.drag = { kind: "move", shape: hit, from: point, original: hit.geometry, before: this.store.snapshot() };
  }

  /** The topmost visible shape under a point. @param {number[]} point */
  hitTest([x, y]) {
    const tolerance = 6 / this.renderer.view.scale;
    for (let i = this.store.shapes.length - 1; i >= 0; i--) {
      const shape = this.store.shapes[i];
      if (shape._hidden) continue;
      const { box, path } = geometryOf(shape);
      if (x < box[0] - tolerance || x > box[2] + tolerance || y < box[1] - tolerance || y > box[3] + tolerance) continue;
      if (shape.kind === "mask") return shape;
      scratch.lineWidth = tolerance * 2;
      if (shape.kind === "polyline" ? scratch.isPointInStroke(path, x, y) : scratch.isPointInPath(path, x, y, "evenodd") || scratch.isPointInStroke(path, x, y)) return shape;
    }
    return undefined;
  }

  /** @param {PointerEvent} e */
  move(e) {
    this.pointer = this.at(e);
    const drag = this.drag;
    if (!drag) {
      if (this.draft.length) this.renderer.requestDraw();
      return;
    }
    if (drag.kind === "pan") {
      this.renderer.pan(e.offsetX - drag.x, e.offsetY - drag.y);
      drag.x = e.offsetX;
      drag.y = e.offsetY;
    } else if (drag.kind === "box") {
      drag.to = this.aspect ? keepAspect(drag.from, this.pointer, this.aspect) : this.pointer;
    } else if (drag.kind === "move") {
      drag.shape.geometry = translate(drag.shape.kind, drag.original, this.pointer[0] - drag.from[0], this.pointer[1] - drag.from[1]);
      drag.moved = true;
    } else if (drag.kind === "vertex") {
      drag.shape.geometry = moveVertex(drag.shape, drag.index, this.pointer);
      drag.moved = true;
    } else if (drag.kind === "paint") {
      this.bitmap.stroke(this.pointer);
    } else if (drag.kind === "smart") {
      this.smart.move(this.pointer, this.renderer.view.scale);
    } else if (drag.kind === "keypoint") {
      const [x, y] = this.pointer;
      drag.shape.keypoints = drag.shape.keypoints.map((/** @type {any} */ k, /** @type {number} */ i) => (i === drag.index ? { ...k, x, y } : k));
      drag.moved = true;
    }
    this.renderer.requestDraw();
  }

  /** @param {PointerEvent} e */
  up(e) {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    if (drag.kind === "paint") return this.finishBitmap();
    if (drag.kind === "smart") {
      this.smart.up(this.renderer.view.scale);
      this.renderer.requestDraw();
      return;
    }
    if (drag.kind === "box") {
      const [x0, y0] = drag.from, [x1, y1] = drag.to;
      const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0);
      if (width * this.renderer.view.scale > 3 && height * this.renderer.view.scale > 3) {
        this.create("box", { x: Math.min(x0, x1), y: Math.min(y0, y1), width, height });
      }
      this.renderer.requestDraw();
    } else if ((drag.kind === "move" || drag.kind === "vertex" || drag.kind === "keypoint") && drag.moved) {
      // The drag changed the shape in place; record it as one undoable step.
      this.store.undoStack.push(drag.before);
      this.store.redoStack = [];
      this.store.changed();
    }
  }

  /** Bitmap tool: brush or eraser strokes on the selected mask (or a new one), or a fill. @param {number[]} point */
  paint(point) {
    const selected = this.store.find(this.renderer.selected);
    const target = selected?.kind === "mask" ? selected : undefined;
    const label = target ? target.label : /** @type {number} */ (this.label);
    this.bitmap.begin(target, this.renderer.labels.get(label)?.color || "#ffffff");
    this.bitmap.label = label;
    this.renderer.editingKey = this.bitmap.key;
    if (this.bitmap.mode === "fill") {
      this.bitmap.fill(point);
      this.finishBitmap();
    } else {
      this.bitmap.stroke(point);
      this.drag = { kind: "paint" };
    }
    this.renderer.requestDraw();
  }

  finishBitmap() {
    const geometry = this.bitmap.finish();
    const shape = this.store.find(this.bitmap.key);
    if (shape) {
      this.store.commit(() => {
        this.store.shapes = geometry
          ? this.store.shapes.map((s) => (s === shape ? { ...s, geometry } : s))
          : this.store.shapes.filter((s) => s !== shape);
      });
      if (!geometry) this.closeBitmap();
    } else if (geometry) {
      const created = this.store.add({ label: /** @type {number} */ (this.bitmap.label), kind: "mask", geometry, source: "manual" });
      this.bitmap.key = created._key;
      this.renderer.editingKey = created._key;
      this.select(created._key);
    }
    this.renderer.requestDraw();
  }

  /** Stop editing: the next stroke starts a new mask object (N), or another tool took over. */
  closeBitmap() {
    this.bitmap.close();
    this.renderer.editingKey = undefined;
    this.renderer.requestDraw();
  }

  /** R: remove a vertex; the shape redraws itself joined (rings keep 3, polylines 2, points 1). @param {Shape} shape @param {number} index */
  removeVertex(shape, index) {
    const minimum = { polygon: 3, polyline: 2, points: 1 }[/** @type {"polygon"} */ (shape.kind)];
    if (!minimum) return;
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
    if (tooFew) return this.dispatchEvent(new CustomEvent("notice", { detail: `A ${shape.kind} needs at least ${minimum} points.` }));
    this.store.commit(() => {
      this.store.shapes = this.store.shapes.map((s) => (s === shape ? { ...s, geometry } : s));
    });
  }

  /** Alt+click on a keypoint marks it (not) visible. @param {Shape} shape @param {number} index */
  toggleKeypoint(shape, index) {
    const keypoints = (shape.keypoints || []).map((k, i) => (i === index ? { ...k, visible: !k.visible } : k));
    this.store.commit(() => {
      this.store.shapes = this.store.shapes.map((s) => (s === shape ? { ...s, keypoints } : s));
    });
  }

  /** @param {number[]} point */
  addVertex(point) {
    const target = this.store.find(this.renderer.selected);
    if (this.tool === "polyline" && this.ringMode === "extend" && target?.kind === "polyline") {
      // K: each click adds a point joined to the previous one.
      this.store.commit(() => {
        this.store.shapes = this.store.shapes.map((s) =>
          s === target ? { ...s, geometry: { points: [...s.geometry.points, point] } } : s);
      });
      return;
    }
    const first = this.draft[0];
    const closeEnough = first && Math.hypot(point[0] - first[0], point[1] - first[1]) * this.renderer.view.scale <= HANDLE_PX;
    if (this.tool === "polygon" && this.draft.length >= 3 && closeEnough) return this.finish();
    this.draft.push(point);
    this.renderer.requestDraw();
  }

  /** Enter: finish the polygon or polyline being drawn. */
  finish() {
    const target = this.store.find(this.renderer.selected);
    if (this.tool === "polygon" && this.draft.length >= 3 && this.ringMode !== "new" && target?.kind === "polygon") {
      this.addRing(target, this.draft);
    } else if (this.tool === "polygon" && this.draft.length >= 3) {
      this.create("polygon", { parts: [{ outer: this.draft, holes: [] }] });
    } else if (this.tool === "polyline" && this.draft.length >= 2) {
      this.create("polyline", { points: this.draft });
    }
    this.draft = [];
    this.renderer.requestDraw();
  }

  /**
   * G adds a part to the selected polygon, H a hole in the part the hole starts in.
   * @param {Shape} target @param {number[][]} ring
   */
  addRing(target, ring) {
    const parts = target.geometry.parts.map((/** @type {any} */ p) => ({ outer: p.outer, holes: p.holes.slice() }));
    if (this.ringMode === "part") parts.push({ outer: ring, holes: [] });
    else {
      const [x, y] = ring[0];
      const index = Math.max(0, parts.findIndex((/** @type {any} */ p) => {
        const path = new Path2D();
        p.outer.forEach(([px, py], /** @type {number} */ i) => (i ? path.lineTo(px, py) : path.moveTo(px, py)));
        return scratch.isPointInPath(path, x, y);
      }));
      parts[index].holes.push(ring);
    }
    this.store.commit(() => {
      this.store.shapes = this.store.shapes.map((s) => (s === target ? { ...s, geometry: { parts } } : s));
    });
    this.ringMode = "new";
  }

  cancel() {
    this.draft = [];
    this.drag = null;
    this.renderer.requestDraw();
  }

  /** @param {string} kind @param {any} geometry */
  create(kind, geometry) {
    const label = /** @type {number} */ (this.label);
    const shape = this.store.add({ label, kind, geometry, keypoints: this.templateKeypoints(label, kind, geometry) });
    this.select(shape._key);
  }

  /** A new box or polygon gets its label's keypoint template, spread across it, to place. */
  templateKeypoints(/** @type {number} */ label, /** @type {string} */ kind, /** @type {any} */ geometry) {
    const template = this.renderer.labels.get(label)?.keypoint_template || [];
    if (!template.length || (kind !== "box" && kind !== "polygon")) return [];
    const [x0, y0, x1, y1] = geometryOf(/** @type {any} */ ({ kind, geometry })).box;
    return template.map((/** @type {string} */ name, /** @type {number} */ i) => ({
      name, x: x0 + ((i + 1) * (x1 - x0)) / (template.length + 1), y: (y0 + y1) / 2, visible: true,
    }));
  }

  /** @param {CanvasRenderingContext2D} ctx @param {number} scale */
  drawOverlay(ctx, scale) {
    if (this.tool === "smart") this.smart.draw(ctx, scale);
    if (this.bitmap.canvas) {
      ctx.globalAlpha = 0.5;
      ctx.drawImage(this.bitmap.canvas, 0, 0);
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = "#ffff00";
    ctx.lineWidth = 1.5 / scale;
    if (this.drag?.kind === "box") {
      const [x0, y0] = this.drag.from, [x1, y1] = this.drag.to;
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    }
    if (this.draft.length) {
      ctx.beginPath();
      this.draft.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.lineTo(this.pointer[0], this.pointer[1]);
      ctx.stroke();
    }
  }
}

/** @param {string} kind @param {any} g @param {number} dx @param {number} dy */
function translate(kind, g, dx, dy) {
  /** @param {number[][]} ring */
  const shift = (ring) => ring.map(([x, y]) => [x + dx, y + dy]);
  if (kind === "box") return { ...g, x: g.x + dx, y: g.y + dy };
  if (kind === "polygon") return { parts: g.parts.map((/** @type {any} */ p) => ({ outer: shift(p.outer), holes: p.holes.map(shift) })) };
  if (kind === "polyline" || kind === "points") return { points: shift(g.points) };
  return g;
}

/** A new geometry with one handle moved. @param {Shape} shape @param {number} index @param {number[]} to */
function moveVertex(shape, index, [x, y]) {
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
function keepAspect(/** @type {number[]} */ [x0, y0], /** @type {number[]} */ [x1, y1], /** @type {number} */ aspect) {
  const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0);
  const w = Math.max(width, height * aspect), h = w / aspect;
  return [x0 + Math.sign(x1 - x0 || 1) * w, y0 + Math.sign(y1 - y0 || 1) * h];
}

/**
 * The polygon edge nearest a point, if within `tolerance`: where to insert a vertex.
 * @param {Shape} shape @param {number[]} point @param {number} tolerance
 * @returns {{part: number, ring: number, after: number, at: number[], handle: number} | null}
 */
function edgeNear(shape, [px, py], tolerance) {
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
function insertVertex(shape, edge) {
  return {
    parts: shape.geometry.parts.map((/** @type {any} */ part, /** @type {number} */ p) => {
      const rings = [part.outer, ...part.holes].map((/** @type {number[][]} */ ring, /** @type {number} */ r) =>
        p === edge.part && r === edge.ring ? [...ring.slice(0, edge.after + 1), edge.at, ...ring.slice(edge.after + 1)] : ring);
      return { outer: rings[0], holes: rings.slice(1) };
    }),
  };
}
