// @ts-check
/**
 * The mode state machine: which mode is active, and the pointer routed to its handler (modes.js).
 * Space-drag or the middle button pans in every mode; the wheel zooms at the cursor.
 *
 * Selection has an owner. A shape the person picked (a click in Select, the object list) is
 * `userSelected`, and only then does a label hotkey relabel it; a new object is not selected,
 * so "press 2, draw the next box" labels the next box, never the last one.
 */
import { BitmapEditor } from "./bitmap.js";
import { MODES, refusal } from "./modes.js";
import { geometryOf } from "./renderer.js";
import { SmartTool } from "./smart.js";

/** @typedef {import("./store.js").Shape} Shape */

export class Tools extends EventTarget {
  /**
   * @param {HTMLCanvasElement} canvas @param {import("./renderer.js").Renderer} renderer
   * @param {import("./store.js").Store} store @param {{id: number, width: number, height: number}} image
   * @param {{canEdit: boolean}} options
   */
  constructor(canvas, renderer, store, image, { canEdit }) {
    super();
    this.canvas = canvas;
    this.renderer = renderer;
    this.store = store;
    this.image = image;
    this.canEdit = canEdit;
    this.tool = "select";
    /** "new", or "part" / "hole" (G, H) to add the drawn ring to a polygon, "extend" (K) a polyline. */
    this.ringMode = "new";
    /** In select mode, "remove" makes a click on a vertex delete it (R). */
    this.vertexMode = "move";
    /** Width / height a new box keeps, or 0 for any (settings: fixed aspect ratio). */
    this.aspect = 0;
    /** @type {number|null} the label the next object gets */
    this.label = null;
    /** @type {number|undefined} */
    this.selected = undefined;
    this.userSelected = false;
    /** @type {number|undefined} the last object drawn: what G, H and K add to when nothing is selected */
    this.lastCreated = undefined;
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
    /** True while the bitmap tool writes its own stroke to the store. */
    this.painting = false;
    store.addEventListener("change", (event) => {
      const { cause, keys } = /** @type {CustomEvent} */ (event).detail;
      const whole = cause === "undo" || cause === "redo" || cause === "loaded" || cause === "replaced";
      const underBrush = !this.painting && this.bitmap.key !== undefined && keys.includes(this.bitmap.key);
      if (whole || underBrush || (cause === "removed" && keys.includes(this.selected))) this.documentReplaced();
    });
  }

  get mode() {
    return MODES[this.tool];
  }

  /** Enter a mode, if TRANSITIONS allows it now; returns whether it did. @param {string} tool @param {string} [ringMode] */
  setTool(tool, ringMode = "new") {
    const why = refusal(tool, ringMode, { canEdit: this.canEdit, target: this.ringTarget(tool === "polygon" ? "polygon" : "polyline") });
    if (why) {
      this.notice(why);
      return false;
    }
    if (tool !== this.tool) this.mode.leave?.(this);
    this.tool = tool;
    this.ringMode = ringMode;
    this.vertexMode = "move";
    this.draft = [];
    this.drag = null;
    this.dispatchEvent(new Event("tool"));
    this.renderer.requestDraw();
    return true;
  }

  /**
   * Esc: the innermost thing first. A draft or a sub-mode is cancelled; else the selection is
   * cleared; else the mode returns to Select.
   */
  escape() {
    if (this.mode.cancel?.(this)) {
      this.dispatchEvent(new Event("tool"));
    } else if (this.selected !== undefined) {
      this.select(undefined);
    } else if (this.tool !== "select") {
      this.setTool("select");
    }
    this.renderer.requestDraw();
  }

  /** @param {number|undefined} key @param {{byUser?: boolean}} [options] */
  select(key, { byUser = false } = {}) {
    this.selected = key;
    this.userSelected = key !== undefined && byUser;
    this.renderer.selected = key;
    this.dispatchEvent(new Event("select"));
    this.renderer.requestDraw();
  }

  /** The polygon or polyline that G, H or K add to: the one selected, else the last one drawn. @param {string} [kind] */
  ringTarget(kind = this.tool) {
    const selected = this.store.find(this.selected);
    if (selected) return selected.kind === kind ? selected : undefined;
    const last = this.store.find(this.lastCreated);
    return last?.kind === kind ? last : undefined;
  }

  /** @param {string} text */
  notice(text) {
    this.dispatchEvent(new CustomEvent("notice", { detail: text }));
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
    if (e.button !== 0 && !(this.tool === "smart" && e.button === 2)) return;
    if (this.tool !== "select" && this.label === null) return this.notice("Create a label first.");
    this.mode.down?.(this, this.at(e), e);
    this.renderer.requestDraw();
  }

  /** @param {PointerEvent} e */
  move(e) {
    this.pointer = this.at(e);
    if (this.drag?.kind === "pan") {
      this.renderer.pan(e.offsetX - this.drag.x, e.offsetY - this.drag.y);
      this.drag.x = e.offsetX;
      this.drag.y = e.offsetY;
      return;
    }
    if (!this.drag && !this.draft.length) return;
    this.mode.move?.(this, this.pointer, e);
    this.renderer.requestDraw();
  }

  /** @param {PointerEvent} e */
  up(e) {
    if (this.drag?.kind === "pan") {
      this.drag = null;
      return;
    }
    this.mode.up?.(this, e);
    this.renderer.requestDraw();
  }

  /** Enter: finish the polygon or polyline being drawn. */
  finish() {
    this.mode.finish?.(this);
    this.renderer.requestDraw();
  }

  /** @param {string} kind @param {any} geometry */
  create(kind, geometry) {
    const label = /** @type {number} */ (this.label);
    this.created(this.store.add({ label, kind, geometry, keypoints: this.templateKeypoints(label, kind, geometry) }));
  }

  /** A new object exists: the tool stays ready for the next one, nothing is selected. @param {Shape} shape */
  created(shape) {
    this.lastCreated = shape._key;
    if (this.selected !== undefined) this.select(undefined);
    this.dispatchEvent(new CustomEvent("created", { detail: shape }));
  }

  /** Stop editing a mask: the next stroke starts a new mask object (N), or another tool took over. */
  closeBitmap() {
    this.bitmap.close();
    this.renderer.editingKey = undefined;
    this.renderer.requestDraw();
  }

  /** Undo, redo or another version replaced the document: tools holding a copy of it take the new one. */
  documentReplaced() {
    if (this.bitmap.canvas) {
      this.bitmap.reload(this.store.find(this.bitmap.key));
      this.renderer.editingKey = this.bitmap.key;
    }
    if (this.selected !== undefined && !this.store.find(this.selected)) this.select(undefined);
    this.drag = null;
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
    ctx.strokeStyle = "#ffff00";
    ctx.lineWidth = 1.5 / scale;
    this.mode.overlay?.(this, ctx, scale);
  }
}
