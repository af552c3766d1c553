// @ts-check
/**
 * The labeler's document: shapes and classification labels of one image, with undo and redo.
 * It is changed only through its own methods. Each one that changes the document records the
 * previous state (so undo holds for every tool) and announces `change` with what happened:
 * `{cause: "created"|"changed"|"removed"|"classifications"|"undo"|"redo"|"replaced", keys}`.
 * A drag in progress announces `preview` (drawn, not saved); hiding a shape announces `view`.
 */

/**
 * @typedef {{id?: number, label: number, kind: string, geometry: any, occluded?: boolean,
 *   keypoints?: any[], attributes?: object, source?: string, score?: number|null, _key?: number, _hidden?: boolean}} Shape
 * @typedef {{label: number, default: boolean, name?: string}} Classification
 * @typedef {{shapes: Shape[], classifications: Classification[]}} State
 * @typedef {{cause: string, keys: number[]}} Change
 */

let nextKey = 1;
const UNDO_DEPTH = 200;

export class Store extends EventTarget {
  /** @param {{revision: number, shapes: Shape[], classifications: Classification[]}} document */
  constructor(document) {
    super();
    this.revision = document.revision;
    /** @type {Shape[]} */
    this.shapes = document.shapes.map((s) => ({ ...s, _key: nextKey++ }));
    /** @type {Classification[]} */
    this.classifications = document.classifications.map((c) => ({ label: c.label, default: c.default }));
    /** @type {State[]} */
    this.undoStack = [];
    /** @type {State[]} */
    this.redoStack = [];
    /** @type {State|null} the state a drag in progress began from (see `begin`) */
    this.dragBefore = null;
    this.version = 0;
  }

  /**
   * The state before a change, for undo. Shallow copies are enough: every method replaces a
   * shape object instead of changing it, so a copy still points at the old geometry.
   * @returns {State}
   */
  snapshot() {
    return { shapes: this.shapes.slice(), classifications: this.classifications.map((c) => ({ ...c })) };
  }

  /** @param {State} before @param {string} cause @param {number[]} keys */
  record(before, cause, keys) {
    this.undoStack.push(before);
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
    this.redoStack = [];
    this.announce(cause, keys);
  }

  /** @param {string} cause @param {number[]} keys */
  announce(cause, keys) {
    this.version += 1;
    this.dispatchEvent(new CustomEvent("change", { detail: /** @type {Change} */ ({ cause, keys }) }));
  }

  /** @param {Shape} shape @returns {Shape} the stored shape, with its page key */
  add(shape) {
    const before = this.snapshot();
    const added = { occluded: false, keypoints: [], attributes: {}, source: "manual", score: null, ...shape, _key: nextKey++ };
    this.shapes = [...this.shapes, added];
    this.record(before, "created", [/** @type {number} */ (added._key)]);
    return added;
  }

  /** Change some fields of one shape, as one undoable step. @param {number|undefined} key @param {Partial<Shape>} changes */
  update(key, changes) {
    if (!this.find(key)) return;
    const before = this.snapshot();
    this.shapes = this.shapes.map((s) => (s._key === key ? { ...s, ...changes } : s));
    this.record(before, "changed", [/** @type {number} */ (key)]);
  }

  /** @param {number|undefined} key */
  remove(key) {
    if (!this.find(key)) return;
    const before = this.snapshot();
    this.shapes = this.shapes.filter((s) => s._key !== key);
    this.record(before, "removed", [/** @type {number} */ (key)]);
  }

  /** The image's classification labels, as one undoable step. @param {Classification[]} classifications */
  setClassifications(classifications) {
    const before = this.snapshot();
    this.classifications = classifications.map((c) => ({ label: c.label, default: c.default }));
    if (this.classifications.length && !this.classifications.some((c) => c.default)) this.classifications[0].default = true;
    this.record(before, "classifications", []);
  }

  /** A drag begins: remember the state it began from, for `settle` (and `acknowledge`, which names it too). */
  begin() {
    this.dragBefore = this.snapshot();
  }

  /**
   * Show a shape changing while a pointer drags it, without an undo step or a save; `settle`
   * then records the whole drag as one step.
   * @param {number|undefined} key @param {Partial<Shape>} changes
   */
  preview(key, changes) {
    this.shapes = this.shapes.map((s) => (s._key === key ? { ...s, ...changes } : s));
    this.dispatchEvent(new Event("preview"));
  }

  /** The drag `begin` started ended and moved something: one undoable step. @param {number|undefined} key */
  settle(key) {
    const before = this.dragBefore || this.snapshot();
    this.dragBefore = null;
    this.record(before, "changed", key === undefined ? [] : [key]);
  }

  /**
   * Take another document whole: `undoable` for a merge the person chose, not for the server's
   * version replacing ours. @param {{revision?: number, shapes: Shape[], classifications: Classification[]}} document
   * @param {{undoable: boolean}} options
   */
  replace(document, { undoable }) {
    const before = this.snapshot();
    this.shapes = document.shapes.map((s) => (s._key === undefined ? { ...s, _key: nextKey++ } : s));
    this.classifications = document.classifications.map((c) => ({ label: c.label, default: c.default }));
    if (document.revision !== undefined) this.revision = document.revision;
    if (undoable) this.record(before, "replaced", []);
    else {
      this.undoStack = [];
      this.redoStack = [];
      this.dispatchEvent(new CustomEvent("change", { detail: { cause: "loaded", keys: [] } }));
    }
  }

  /** Hide or show shapes on the canvas; the page's own state, never saved. @param {number[]} keys @param {boolean} hidden */
  setHidden(keys, hidden) {
    const wanted = new Set(keys);
    for (const shape of this.shapes) if (wanted.has(/** @type {number} */ (shape._key))) shape._hidden = hidden;
    this.dispatchEvent(new Event("view"));
  }

  undo() {
    const state = this.undoStack.pop();
    if (state === undefined) return;
    this.redoStack.push(this.snapshot());
    this.shapes = state.shapes;
    this.classifications = state.classifications;
    this.announce("undo", []);
  }

  redo() {
    const state = this.redoStack.pop();
    if (state === undefined) return;
    this.undoStack.push(this.snapshot());
    this.shapes = state.shapes;
    this.classifications = state.classifications;
    this.announce("redo", []);
  }

  /** @param {number|undefined} key */
  find(key) {
    return key === undefined ? undefined : this.shapes.find((s) => s._key === key);
  }

  /** What the server stores: the shapes without the page's own fields. */
  document() {
    return {
      revision: this.revision,
      classifications: this.classifications.map((c) => ({ label: c.label, default: c.default })),
      shapes: this.shapes.map((shape) =>
        Object.fromEntries(Object.entries(shape).filter(([key]) => !key.startsWith("_")))),
    };
  }

  /**
   * After a save, take the server's ids (it keeps the order it was sent in). The ids are the
   * server's names for shapes, not a change to them: no undo step, no new save.
   * @param {{revision: number, shapes: Shape[]}} saved
   * @param {Shape[]} sent the shapes as they were when the save started
   */
  acknowledge(saved, sent) {
    this.revision = saved.revision;
    const ids = new Map(sent.map((shape, index) => [shape._key, saved.shapes[index]?.id]));
    const name = (/** @type {Shape} */ s) => (s.id === undefined && ids.get(s._key) !== undefined ? { ...s, id: ids.get(s._key) } : s);
    this.shapes = this.shapes.map(name);
    this.undoStack = this.undoStack.map((state) => ({ ...state, shapes: state.shapes.map(name) }));
    this.redoStack = this.redoStack.map((state) => ({ ...state, shapes: state.shapes.map(name) }));
    if (this.dragBefore) this.dragBefore = { ...this.dragBefore, shapes: this.dragBefore.shapes.map(name) };
  }
}
