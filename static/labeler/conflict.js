// @ts-check
/**
 * Someone else saved this image since we loaded it: the dialog shows both versions (theirs
 * dashed white over ours) and the person keeps both, keeps theirs or keeps mine.
 */
import { Store } from "./store.js";

/**
 * @param {{store: Store, renderer: import("./renderer.js").Renderer, saver: import("./saver.js").Saver,
 *   dialog: HTMLDialogElement, text: HTMLElement}} parts
 * @param {any} current the server's document
 */
export function showConflict({ store, renderer, saver, dialog, text }, current) {
  text.textContent = `Your version has ${store.shapes.length} objects; the saved one ` +
    `(revision ${current.revision}) has ${current.shapes.length}.`;
  const theirs = new Store(current);
  renderer.ghost = theirs.shapes;
  renderer.requestDraw();
  dialog.onclick = (event) => {
    const action = /** @type {HTMLElement} */ (event.target).dataset.action;
    if (!action) return;
    dialog.close();
    renderer.ghost = null;
    if (action === "keep-both") {
      // Theirs, with my version of objects we both have, and my new objects added.
      const mine = new Map(store.shapes.filter((s) => s.id !== undefined).map((s) => [s.id, s]));
      const merged = theirs.shapes.map((s) => mine.get(s.id) || s);
      store.replace({ shapes: [...merged, ...store.shapes.filter((s) => s.id === undefined)],
                      classifications: store.classifications }, { undoable: true });
    }
    if (action === "keep-mine" || action === "keep-both") {
      store.revision = current.revision;
      saver.save();
    } else {
      store.replace(current, { undoable: false });
      saver.forget();
      saver.show("saved", "Saved");
    }
    renderer.requestDraw();
  };
  dialog.show(); // not modal: both versions stay visible on the canvas
}
