// @ts-check
/**
 * The labeler's document: shapes and classification labels of one image, with undo and redo.
 * Every change goes through `commit`, which records the previous state and announces
 * `change`; the saver and the panels listen for it.
 */

/**
 * @typedef {{id?: number, label: number, kind: string, geometry: any, occluded?: boolean,
 *   keypoints?: any[], attributes?: object, source?: string, score?: number|null, _key?: number, _hidden?: boolean}} Shape
 * @typedef {{label: number, default: boolean, name?: string}} Classification
 */

let nextKey = 1;

export class Store extends EventTarget {
  /** @param {{revision: number, shapes: Shape[], classifications: Classification[]}} document */
  constructor(document) {
    super();
    this.revision = document.revision;
    /** @type {Shape[]} */
    this.shapes = document.shapes.map((s) => ({ ...s, _key: nextKey++ }));
    /** @type {Classification[]} */
    this.classifications = document.classifications.map((c) => ({ label: c.label, default: c.default }));
    /** @type {{shapes: Shape[], classifications: Classification[]}[]} */
    this.undoStack = [];
    /** @type {{shapes: Shape[], classifications: Classification[]}[]} */
    this.redoStack = [];
    this.version = 0;
  }

  /**
   * The state before a change, for undo. Shallow copies are enough: edits replace a shape's
   * geometry object instead of changing it, so a copy still points at the old one.
   * @returns {{shapes: Shape[], classifications: Classification[]}}
   */
  snapshot() {
    return { shapes: this.shapes.map((s) => ({ ...s })), classifications: this.classifications.map((c) => ({ ...c })) };
  }

  /** @param {{shapes: Shape[], classifications: Classification[]}} state */
  restore(state) {
    this.shapes = state.shapes;
    this.classifications = state.classifications;
  }

  /**
   * Apply a change as one undoable step.
   * @param {() => void} mutate
   */
  commit(mutate) {
    this.undoStack.push(this.snapshot());
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
    mutate();
    this.changed();
  }

  changed() {
    this.version += 1;
    this.dispatchEvent(new Event("change"));
  }

  undo() {
    const state = this.undoStack.pop();
    if (state === undefined) return;
    this.redoStack.push(this.snapshot());
    this.restore(state);
    this.changed();
  }

  redo() {
    const state = this.redoStack.pop();
    if (state === undefined) return;
    this.undoStack.push(this.snapshot());
    this.restore(state);
    this.changed();
  }

  /** @param {Shape} shape */
  add(shape) {
    const added = { occluded: false, keypoints: [], attributes: {}, source: "manual", score: null, ...shape, _key: nextKey++ };
    this.commit(() => this.shapes.push(added));
    return added;
  }

  /** @param {number|undefined} key */
  find(key) {
    return this.shapes.find((s) => s._key === key);
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
   * After a save, take the server's ids (it keeps the order it was sent in).
   * @param {{revision: number, shapes: Shape[]}} saved
   * @param {Shape[]} sent the shapes as they were when the save started
   */
  acknowledge(saved, sent) {
    this.revision = saved.revision;
    sent.forEach((shape, index) => {
      const local = this.shapes.find((s) => s._key === shape._key);
      if (local && saved.shapes[index]) local.id = saved.shapes[index].id;
    });
  }
}
