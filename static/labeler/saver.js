// @ts-check
/**
 * Saves every change by itself. Until the server confirms a save, the document waits in
 * localStorage, so a closed tab, a reload or a dropped network loses nothing: the next load
 * sends it. A save the server refuses as stale (409) asks the person which version to keep;
 * one it refuses for any other reason (a role without the right, an invalid shape) is explained
 * in words and dropped from this browser, never sent again by itself. A server error (5xx) or a
 * "too many requests" is not a refusal: the document is kept and sent again.
 */
import { errorText, saveDocument } from "./api.js";

const DEBOUNCE_MS = 500;
const RETRY_MS = 3000;

/** @param {number} imageId */
export function pendingKey(imageId) {
  return `sightline:pending:${imageId}`;
}

export class Saver extends EventTarget {
  /**
   * @param {import("./store.js").Store} store @param {number} imageId @param {HTMLElement} status
   * @param {(current: any) => void} onConflict
   */
  constructor(store, imageId, status, onConflict) {
    super();
    this.store = store;
    this.imageId = imageId;
    this.status = status;
    this.onConflict = onConflict;
    this.timer = 0;
    this.saving = false;
    this.again = false;
    this.dirty = false;
    store.addEventListener("change", (event) => {
      if (/** @type {CustomEvent} */ (event).detail.cause !== "loaded") this.schedule();
    });
    // Writing a big document to localStorage costs milliseconds, so it happens with the save,
    // and at once when the page goes away.
    window.addEventListener("pagehide", () => this.keep());
    window.addEventListener("beforeunload", (event) => {
      this.keep();
      if (localStorage.getItem(pendingKey(imageId))) event.preventDefault();
    });
  }

  /** @param {string} state @param {string} text */
  show(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }

  /** Keep the unsaved document in this browser until the server has it. */
  keep() {
    if (!this.dirty) return;
    localStorage.setItem(pendingKey(this.imageId), JSON.stringify(this.store.document()));
    this.dirty = false;
  }

  /** The server has this version, or refused it for good: nothing waits in this browser. */
  forget() {
    this.dirty = false;
    localStorage.removeItem(pendingKey(this.imageId));
  }

  schedule() {
    this.dirty = true;
    this.show("pending", "Unsaved changes…");
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.save(), DEBOUNCE_MS);
  }

  async save() {
    if (this.saving) {
      this.again = true;
      return;
    }
    this.saving = true;
    this.keep();
    const version = this.store.version;
    const sent = this.store.shapes.slice();
    this.show("saving", "Saving…");
    try {
      const answer = await saveDocument(this.imageId, this.store.document());
      if (answer.status === 409) {
        this.show("conflict", "Conflict: choose a version");
        this.onConflict(answer.body.current);
      } else if (answer.status >= 500 || answer.status === 429 || answer.status === 408) {
        // The server is restarting or busy: the document stays in this browser and goes again.
        this.show("offline", `The server answered ${answer.status}: changes kept in this browser, retrying…`);
        this.timer = window.setTimeout(() => this.save(), RETRY_MS);
      } else if (!answer.ok) {
        this.forget();
        this.again = false;
        this.show("error", `Not saved: ${errorText(answer)}`);
        this.dispatchEvent(new CustomEvent("refused", { detail: answer }));
      } else {
        this.store.acknowledge(answer.body, sent);
        if (this.store.version === version) {
          this.forget();
          this.show("saved", "Saved");
        } else {
          this.again = true;
        }
        this.dispatchEvent(new CustomEvent("saved", { detail: { revision: answer.body.revision } }));
      }
    } catch {
      this.show("offline", "Offline: changes kept in this browser, retrying…");
      this.timer = window.setTimeout(() => this.save(), RETRY_MS);
    } finally {
      this.saving = false;
      if (this.again) {
        this.again = false;
        this.save();
      }
    }
  }
}
