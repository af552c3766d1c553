// @ts-check
/**
 * Model Assist (spec 002): a trained model's suggestions for this image, drawn greyed over it. A click selects a
 * suggestion (it takes its label's colour), Space commits the selected ones, S every one shown; the confidence
 * slider filters on this side, without asking the server again. A segmentation model's suggestions are masks, drawn
 * greyed the same way and hit by their pixels. A classifier's suggestions are image labels,
 * listed with their scores. Committing goes through the server (POST .../predictions/accept/) at the labeler's
 * revision, after any unsaved change is saved, so a suggestion becomes an annotation with its score and model.
 */
import * as api from "./api.js";
import { decodeCounts, maskCanvas } from "./rle.js";
import { pendingKey } from "./saver.js";

/** @typedef {{id: number, kind: string, label: number, label_name: string, geometry: any, score: number,
 *   model: number, checkpoint: string}} Suggestion */

export class Assist extends EventTarget {
  /**
   * @param {{imageId: number, store: import("./store.js").Store, saver: import("./saver.js").Saver|null,
   *   renderer: import("./renderer.js").Renderer, labels: Map<number, any>, canPredict: boolean,
   *   replaced: () => void}} parts
   */
  constructor({ imageId, store, saver, renderer, labels, canPredict, replaced }) {
    super();
    this.imageId = imageId;
    this.store = store;
    this.saver = saver;
    this.renderer = renderer;
    this.labels = labels;
    this.canPredict = canPredict;
    this.replaced = replaced;
    this.on = false;
    this.busy = false;
    /** How many loads have ended (tests and benchmarks wait on it). */
    this.loads = 0;
    /** When (performance.now) the last loaded suggestions were drawn, and the last commit began and ended: what
     * bench/assist.py measures the person's waiting with, on the page's own clock. */
    this.timing = { drawn: 0, commitStarted: 0, committed: 0 };
    this.threshold = 0.3;
    /** @type {Suggestion[]} */
    this.suggestions = [];
    /** @type {Set<number>} */
    this.selected = new Set();
    /** "modelId:checkpoint" */
    this.choice = "";
  }

  /** @param {string} text */
  say(text) {
    this.dispatchEvent(new CustomEvent("status", { detail: text }));
  }

  changed() {
    this.renderer.requestDraw();
    this.dispatchEvent(new Event("change"));
  }

  /** The suggestions the slider lets through. */
  shown() {
    return this.on ? this.suggestions.filter((s) => s.score >= this.threshold) : [];
  }

  /** M: on fetches this image's suggestions (predicting them when none are stored); off hides them. */
  async toggle() {
    this.on = !this.on;
    if (!this.on) {
      this.suggestions = [];
      this.selected.clear();
      this.say("Model Assist is off.");
      return this.changed();
    }
    this.changed();
    await this.load();
  }

  /**
   * The chosen model's suggestions: `predict` "auto" runs the model when this image has none of that model and
   * checkpoint stored, true always runs it (with `nms`), false never does.
   * @param {{predict?: boolean|"auto", nms?: number}} [options]
   */
  async load({ predict = "auto", nms } = {}) {
    if (!this.choice) return this.say("No trained model in this project yet: train one on the Models page.");
    const [model, checkpoint] = this.choice.split(":");
    this.busy = true;
    try {
      this.say("Loading suggestions…");
      let answer = takeOver(this.imageId, Number(model)) || (await api.loadPredictions(this.imageId, Number(model)));
      let rows = answer.ok ? answer.body.predictions.filter((/** @type {Suggestion} */ s) => s.checkpoint === checkpoint) : [];
      if ((predict === true || (predict === "auto" && !rows.length)) && answer.ok && this.canPredict) {
        this.say("Predicting…");
        answer = await api.predictImage(this.imageId, Number(model), checkpoint, nms);
        rows = answer.ok ? answer.body.predictions.filter((/** @type {Suggestion} */ s) => s.model === Number(model)) : [];
      }
      if (!answer.ok) return this.say(api.errorText(answer));
      this.suggestions = rows;
      this.selected.clear();
      const shown = this.shown().length;
      this.say(rows.length ? `${shown} of ${rows.length} suggestions at ${this.threshold.toFixed(2)} or more.`
        : this.canPredict ? "The model suggests nothing here." : "No suggestions stored for this image.");
    } finally {
      this.busy = false;
      this.loads += 1;
      this.changed();
      requestAnimationFrame(() => { this.timing.drawn = performance.now(); }); // after the frame that draws them
    }
  }

  /** @param {number} value */
  setThreshold(value) {
    this.threshold = value;
    for (const id of [...this.selected]) {
      const s = this.suggestions.find((x) => x.id === id);
      if (!s || s.score < value) this.selected.delete(id);
    }
    if (this.on && this.suggestions.length) {
      this.say(`${this.shown().length} of ${this.suggestions.length} suggestions at ${value.toFixed(2)} or more.`);
    }
    this.changed();
  }

  /** The smallest shown box or mask under an image point. @param {number} x @param {number} y */
  hit(x, y) {
    let best = null, area = Infinity;
    for (const s of this.shown()) {
      if (s.kind === "box") {
        const g = s.geometry;
        if (x >= g.x && x <= g.x + g.width && y >= g.y && y <= g.y + g.height && g.width * g.height < area) {
          best = s;
          area = g.width * g.height;
        }
      } else if (s.kind === "mask") {
        const mask = maskOf(s);
        if (mask.area < area && mask.covers(x, y)) {
          best = s;
          area = mask.area;
        }
      }
    }
    return best;
  }

  /** @param {number} id */
  toggleSelected(id) {
    if (this.selected.has(id)) this.selected.delete(id);
    else this.selected.add(id);
    this.changed();
  }

  /** Space: the selected suggestions become annotations. Whether there was something to commit. */
  commitSelected() {
    const ids = this.shown().filter((s) => this.selected.has(s.id)).map((s) => s.id);
    if (!this.on || !ids.length) return false;
    this.commit(ids);
    return true;
  }

  /** S: every suggestion shown becomes an annotation. */
  commitAll() {
    const ids = this.shown().map((s) => s.id);
    if (!ids.length) return this.say("No suggestion reaches the threshold.");
    this.commit(ids);
  }

  /** @param {number[]} ids */
  async commit(ids) {
    if (this.busy) return;
    this.busy = true;
    this.timing.commitStarted = performance.now();
    try {
      if (!(await this.flush())) {
        return this.say("Your last changes are not saved yet (see the save state): commit again once they are.");
      }
      this.say(`Committing ${ids.length}…`);
      const version = this.store.version;
      const answer = await api.acceptPredictions(this.imageId, { revision: this.store.revision, ids });
      if (answer.status === 409) {
        this.saver?.onConflict(answer.body.current);
        return this.say("Someone saved this image meanwhile: choose a version, then commit again.");
      }
      if (!answer.ok) return this.say(api.errorText(answer));
      const saved = answer.body.document; // the document as saved comes with the answer
      if (this.store.version === version) {
        this.store.replace(saved, { undoable: false });
      } else {
        // The person edited while the commit was on its way: keep their edits, add what was accepted (with its
        // ids), and let the saver send it all at the new revision.
        this.store.revision = saved.revision;
        const known = new Set(this.store.shapes.map((shape) => shape.id).filter((id) => id !== undefined));
        for (const shape of saved.shapes) if (!known.has(shape.id)) this.store.add(shape);
        const labels = new Set(this.store.classifications.map((c) => c.label));
        const added = saved.classifications.filter((/** @type {any} */ c) => !labels.has(c.label));
        if (added.length) this.store.setClassifications([...this.store.classifications, ...added.map((/** @type {any} */ c) => ({ label: c.label, default: false }))]);
      }
      this.replaced();
      const done = new Set(ids);
      this.suggestions = this.suggestions.filter((s) => !done.has(s.id));
      for (const id of ids) this.selected.delete(id);
      this.say(`Committed ${ids.length} suggestion${ids.length === 1 ? "" : "s"}.`);
      this.timing.committed = performance.now();
      this.dispatchEvent(new CustomEvent("committed", { detail: { ids, revision: answer.body.revision } }));
    } finally {
      this.busy = false;
      this.changed();
    }
  }

  /** Unsaved changes go to the server first: committing is a save at the labeler's revision. Whether nothing is
   * left unsaved (a save the server could not take yet stays pending, and the commit waits for it). */
  async flush() {
    const saver = this.saver;
    if (!saver) return true;
    const pending = () => saver.dirty || !!localStorage.getItem(pendingKey(this.imageId));
    if (pending() && !saver.saving) {
      clearTimeout(saver.timer);
      await saver.save();
    }
    while (saver.saving) await new Promise((resolve) => setTimeout(resolve, 30));
    return !pending();
  }

  /** The chosen model's suggestions on this image are deleted. */
  async clear() {
    if (!this.choice) return;
    const answer = await api.clearPredictions(this.imageId, Number(this.choice.split(":")[0]));
    if (!answer.ok) return this.say(api.errorText(answer));
    this.suggestions = [];
    this.selected.clear();
    this.say(`Cleared ${answer.body.cleared} suggestion${answer.body.cleared === 1 ? "" : "s"}.`);
    this.changed();
  }

  /** Greyed boxes and masks; a selected one in its label's colour.
   * @param {CanvasRenderingContext2D} ctx @param {number} scale */
  draw(ctx, scale) {
    ctx.font = `${12 / scale}px sans-serif`;
    for (const s of this.shown()) {
      if (s.kind === "mask") {
        const selected = this.selected.has(s.id);
        const color = selected ? this.labels.get(s.label)?.color || "#ffffff" : "#b0b0b0";
        const mask = maskOf(s);
        ctx.drawImage(mask.canvas(color, selected ? 120 : 90), 0, 0);
        ctx.fillStyle = color;
        ctx.fillText(`${s.label_name} ${s.score.toFixed(2)}`, mask.left + 2 / scale, mask.top - 3 / scale);
        continue;
      }
      if (s.kind !== "box") continue;
      const { x, y, width, height } = s.geometry;
      const selected = this.selected.has(s.id);
      const color = selected ? this.labels.get(s.label)?.color || "#ffffff" : "#b0b0b0";
      ctx.setLineDash(selected ? [] : [5 / scale, 4 / scale]);
      ctx.lineWidth = (selected ? 2.5 : 1.5) / scale;
      ctx.strokeStyle = color;
      ctx.fillStyle = selected ? `${color}44` : "rgba(160, 160, 160, 0.18)";
      ctx.fillRect(x, y, width, height);
      ctx.strokeRect(x, y, width, height);
      ctx.fillStyle = color;
      ctx.fillText(`${s.label_name} ${s.score.toFixed(2)}`, x + 2 / scale, y - 3 / scale);
    }
    ctx.setLineDash([]);
  }
}

/** Suggestions fetched by the page before (main.js fetchAhead) for the image it leads to: one entry, kept briefly,
 * read once. They are suggestions, not annotations: a moment old is as good as fresh, and accepting checks ids. */
const HANDOVER_KEY = "sightline:suggestions-ahead";
const HANDOVER_SECONDS = 120;

/** @param {number} imageId @param {number} model @param {api.Answer} answer */
export function handOver(imageId, model, answer) {
  if (!answer.ok) return;
  try {
    sessionStorage.setItem(HANDOVER_KEY, JSON.stringify({ imageId, model, at: Date.now(), answer }));
  } catch {
    // storage full: the next page asks the server
  }
}

/** @param {number} imageId @param {number} model @returns {api.Answer|null} */
function takeOver(imageId, model) {
  const kept = JSON.parse(sessionStorage.getItem(HANDOVER_KEY) || "null");
  if (!kept || kept.imageId !== imageId || kept.model !== model) return null;
  sessionStorage.removeItem(HANDOVER_KEY);
  return Date.now() - kept.at < HANDOVER_SECONDS * 1000 ? kept.answer : null;
}

/** A mask suggestion decoded once: its area, its top-left corner, whether it covers a pixel, and its drawing in a
 * colour (kept per colour: greyed, and its label's once selected). */
export class MaskSuggestion {
  /** @param {{size: number[], counts: string}} rle */
  constructor(rle) {
    this.rle = rle;
    this.height = rle.size[0];
    this.width = rle.size[1];
    // Where each run starts, in COCO's column-major order; odd runs are the mask's pixels.
    this.starts = [];
    let position = 0, left = Infinity, top = Infinity;
    this.area = 0;
    for (const [index, run] of decodeCounts(rle.counts).entries()) {
      this.starts.push(position);
      if (index % 2 === 1 && run > 0) {
        this.area += run;
        left = Math.min(left, Math.floor(position / this.height));
        const row = position % this.height;
        top = Math.min(top, row + run > this.height ? 0 : row); // a run past its column's end reaches the next's top
      }
      position += run;
    }
    this.left = Number.isFinite(left) ? left : 0;
    this.top = Number.isFinite(top) ? top : 0;
    /** @type {Map<string, OffscreenCanvas>} */
    this.drawn = new Map();
  }

  /** @param {number} x @param {number} y */
  covers(x, y) {
    const column = Math.floor(x), row = Math.floor(y);
    if (column < 0 || row < 0 || column >= this.width || row >= this.height) return false;
    const at = column * this.height + row;
    let low = 0, high = this.starts.length - 1;
    while (low < high) {  // the last run starting at or before `at`
      const middle = (low + high + 1) >> 1;
      if (this.starts[middle] <= at) low = middle;
      else high = middle - 1;
    }
    return low % 2 === 1;
  }

  /** @param {string} color @param {number} alpha */
  canvas(color, alpha) {
    const key = `${color}/${alpha}`;
    if (!this.drawn.has(key)) this.drawn.set(key, maskCanvas(this.rle, color, alpha));
    return /** @type {OffscreenCanvas} */ (this.drawn.get(key));
  }
}

/** @type {WeakMap<Suggestion, MaskSuggestion>} */
const masks = new WeakMap();

/** @param {Suggestion} suggestion */
function maskOf(suggestion) {
  let mask = masks.get(suggestion);
  if (!mask) {
    mask = new MaskSuggestion(suggestion.geometry.rle);
    masks.set(suggestion, mask);
  }
  return mask;
}

