// @ts-check
/**
 * The labeler page: loads the image's document (or the unsaved one this browser kept) and wires
 * the store, renderer, tools, saver, panels, keymap and conflict dialog together. The island
 * announces `shape-created`, `shape-changed` and `saved` on #labeler for the page around it.
 */
import * as api from "./api.js";
import { Assist, handOver } from "./assist.js";
import { showConflict } from "./conflict.js";
import { installKeymap, renderShortcuts } from "./keymap.js";
import { wireMlMode } from "./ml.js";
import { Panels, toggleClassification } from "./panels.js";
import { Renderer } from "./renderer.js";
import { Saver, pendingKey } from "./saver.js";
import { Store } from "./store.js";
import { Tools } from "./tools.js";

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("labeler-config")).textContent || "{}");
/** @type {import("./panels.js").Label[]} */
const labelList = config.labels;
const labels = new Map(labelList.map((l) => [l.id, l]));
const canEdit = !!config.canAnnotate;
const island = /** @type {HTMLElement} */ (document.getElementById("labeler"));
const lastLabelKey = `sightline:label:${config.projectId}`;
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

async function start() {
  const image = new Image();
  image.src = config.image.url;
  await image.decode();
  const kept = canEdit ? localStorage.getItem(pendingKey(config.image.id)) : null;
  if (!canEdit) localStorage.removeItem(pendingKey(config.image.id)); // a read-only user has nothing to send
  const store = new Store(kept ? JSON.parse(kept) : config.document); // the document comes with the page
  const renderer = new Renderer(/** @type {HTMLCanvasElement} */ ($("canvas")), image, store, labels);
  const tools = new Tools(renderer.canvas, renderer, store, config.image, { canEdit });
  const remembered = Number(localStorage.getItem(lastLabelKey));
  tools.label = labels.has(remembered) ? remembered : (labelList[0]?.id ?? null);
  const status = $("save-state");
  const saver = canEdit
    ? new Saver(store, config.image.id, status, (current) => showConflict(
      { store, renderer, saver: /** @type {Saver} */ (saver), dialog: /** @type {HTMLDialogElement} */ ($("conflict")), text: $("conflict-text") },
      current))
    : null;
  const say = (/** @type {string} */ state, /** @type {string} */ text) => { status.dataset.state = state; status.textContent = text; };
  if (!canEdit) say("read-only", "Read only: your role may look, not label");

  /** The label of the next object; it relabels the selected object only when the person selected it. @param {number} labelId */
  function setLabel(labelId) {
    tools.label = labelId;
    localStorage.setItem(lastLabelKey, String(labelId));
    const shape = store.find(tools.selected);
    if (canEdit && tools.userSelected && shape && shape.label !== labelId) {
      // The new label's attributes mean something else: their values start empty; others are kept.
      const defined = new Set((labels.get(labelId)?.attributes || []).map((a) => a.name));
      const attributes = Object.fromEntries(Object.entries(shape.attributes || {}).filter(([name]) => !defined.has(name)));
      store.update(shape._key, { label: labelId, attributes, keypoints: tools.templateKeypoints(labelId, shape.kind, shape.geometry) });
    }
    panels.render();
  }

  const panels = new Panels({ labels: labelList, byId: labels, store, tools, canEdit, setLabel });
  const assist = new Assist({
    imageId: config.image.id, store, saver, renderer, labels, canPredict: !!config.assist.canPredict,
    replaced: () => { tools.documentReplaced(); panels.render(); },
  });
  renderer.suggestions = (ctx, scale) => assist.draw(ctx, scale);
  wireAssist(assist, renderer, tools, config.projectId);
  wireMlMode({ assist, projectId: config.projectId });

  /** Rasterize (box or polygon to mask) or turn a mask into polygons, on the server's geometry code. @param {"rasterize"|"polygonize"} operation */
  async function convert(operation) {
    const shape = store.find(tools.selected);
    if (!shape) return say("error", "Select an object first.");
    const simplify = /** @type {HTMLInputElement} */ ($("simplify")).checked ? 1.5 : 0;
    const body = operation === "rasterize" ? { kind: shape.kind, geometry: shape.geometry } : { geometry: shape.geometry, simplify };
    const answer = await api.convertShape(config.image.id, operation, body);
    if (!answer.ok) return say("error", api.errorText(answer));
    if (store.find(shape._key) !== shape) return say("error", "The object changed while it was converted; convert it again.");
    store.update(shape._key, answer.body);
  }

  /** Done: the last extracted mask becomes an object (source "smart"), selected for touch-ups. */
  function smartDone() {
    const geometry = tools.smart.geometry();
    if (!geometry) return smartStatus(tools.smart.result ? "Nothing to keep: Extract found no pixels." : "Extract first.");
    const shape = store.add({ label: /** @type {number} */ (tools.label), kind: "mask", geometry, source: "smart" });
    tools.smart.reset();
    tools.created(shape);
    tools.select(shape._key); // for Bitmap (I) and To polygon; a hotkey does not relabel it
    smartStatus("Kept as a mask object. Bitmap (I) touches it up; To polygon converts it. Drag a new work area for the next.");
  }

  /** @param {string} text */
  function smartStatus(text) {
    const state = document.getElementById("smart-state");
    if (state) state.textContent = text;
  }

  /** @param {"previous"|"next"} direction */
  function go(direction) {
    const url = direction === "next" ? config.nextUrl : config.previousUrl;
    if (url) location.href = url;
    else say(status.dataset.state || "saved", direction === "next" ? "This is the last image." : "This is the first image.");
  }

  const smartExtract = () => tools.smart.extract(labels.get(/** @type {number} */ (tools.label))?.color || "#ffffff");
  const toggleSmartMode = () => { tools.smart.mode = tools.smart.mode === "foreground" ? "background" : "foreground"; panels.render(); };
  const bitmapSet = (/** @type {() => void} */ change) => () => { change(); panels.renderToolbar(); };
  const inMode = (/** @type {string} */ tool) => () => tools.tool === tool;

  /** @type {Record<string, () => void>} */
  const actions = {
    undo: () => store.undo(), redo: () => store.redo(), fit: () => renderer.fit(),
    previous: () => go("previous"), next: () => go("next"),
    rasterize: () => convert("rasterize"), polygonize: () => convert("polygonize"),
    "smart-extract": smartExtract, "smart-done": smartDone, "smart-mode": toggleSmartMode,
    "smart-clear": () => { tools.smart.reset(); renderer.requestDraw(); },
    "smart-new-area": () => { tools.smart.newArea = true; smartStatus("Drag the new work area."); },
    "hide-all": () => store.setHidden(store.shapes.map((s) => /** @type {number} */ (s._key)), true),
    "show-all": () => store.setHidden(store.shapes.map((s) => /** @type {number} */ (s._key)), false),
    shortcuts: () => /** @type {HTMLDialogElement} */ ($("shortcuts")).showModal(),
  };

  /** The hotkeys of one label: 1-9 for the next object, Shift+1-9 for the image. @param {import("./panels.js").Label} label
   * @returns {import("./keymap.js").Binding[]} */
  function labelBindings(label) {
    if (!label.hotkey) return [];
    return [
      { group: "Labels", keys: [String(label.hotkey)], label: `${label.name}: the next object's label`, run: () => setLabel(label.id) },
      { group: "Labels", keys: [`shift+digit${label.hotkey}`], label: `${label.name}: add to / remove from the image`,
        run: () => toggleClassification(store, label.id), edits: true },
    ];
  }

  /** @type {import("./keymap.js").Binding[]} */
  const bindings = [
    { group: "Smart tool", keys: ["enter"], label: "Extract", run: smartExtract, when: inMode("smart"), edits: true },
    { group: "Smart tool", keys: ["shift+enter"], label: "Done: keep the mask", run: smartDone, when: inMode("smart"), edits: true },
    { group: "Smart tool", keys: ["x"], label: "Mark foreground / background", run: toggleSmartMode, when: inMode("smart"), edits: true },
    { group: "Bitmap", keys: ["e"], label: "Brush", run: bitmapSet(() => { tools.bitmap.mode = "brush"; }), when: inMode("mask"), edits: true },
    { group: "Bitmap", keys: ["r"], label: "Eraser", run: bitmapSet(() => { tools.bitmap.mode = "eraser"; }), when: inMode("mask"), edits: true },
    { group: "Bitmap", keys: ["g"], label: "Fill", run: bitmapSet(() => { tools.bitmap.mode = "fill"; }), when: inMode("mask"), edits: true },
    { group: "Bitmap", keys: ["["], label: "Smaller brush", run: bitmapSet(() => { tools.bitmap.size = Math.max(1, tools.bitmap.size / 1.25); }), when: inMode("mask"), edits: true },
    { group: "Bitmap", keys: ["]"], label: "Larger brush", run: bitmapSet(() => { tools.bitmap.size = Math.min(400, tools.bitmap.size * 1.25); }), when: inMode("mask"), edits: true },
    { group: "Bitmap", keys: ["n"], label: "Next strokes make a new mask", run: () => { tools.closeBitmap(); tools.select(undefined); }, when: inMode("mask"), edits: true },
    { group: "Tools", keys: ["v", "e"], label: "Select, move and edit", run: () => tools.setTool("select") },
    { group: "Tools", keys: ["b"], label: "Box", run: () => tools.setTool("box"), edits: true },
    { group: "Tools", keys: ["n"], label: "New polygon (or polyline)", run: () => tools.setTool(tools.tool === "polyline" ? "polyline" : "polygon"), edits: true },
    { group: "Tools", keys: ["g"], label: "Add a part to the polygon", run: () => tools.setTool("polygon", "part"), edits: true },
    { group: "Tools", keys: ["h"], label: "Add a hole to the polygon", run: () => tools.setTool("polygon", "hole"), edits: true },
    { group: "Tools", keys: ["l"], label: "Polyline", run: () => tools.setTool("polyline"), edits: true },
    { group: "Tools", keys: ["k"], label: "Add points to the polyline", run: () => tools.setTool("polyline", "extend"), edits: true },
    { group: "Tools", keys: ["p"], label: "Points", run: () => tools.setTool("points"), edits: true },
    { group: "Tools", keys: ["i"], label: "Bitmap brush", run: () => tools.setTool("mask"), edits: true },
    { group: "Tools", keys: ["w"], label: "Smart tool", run: () => tools.setTool("smart"), edits: true },
    { group: "Tools", keys: ["r"], label: "Remove vertices by clicking them", edits: true, run: () => {
      if (tools.setTool("select")) { tools.vertexMode = "remove"; say(status.dataset.state || "saved", "Click vertices to remove them (Esc to stop)"); }
    } },
    { group: "Model Assist", keys: ["m"], label: "Model Assist on / off: the model's suggestions, greyed", run: () => assist.toggle(), edits: true },
    { group: "Model Assist", keys: ["space"], label: "Commit the selected suggestions (click to select)", run: () => assist.commitSelected(), edits: true },
    { group: "Model Assist", keys: ["s"], label: "Commit every suggestion shown", run: () => assist.commitAll(), when: () => assist.on, edits: true },
    { group: "Edit", keys: ["enter"], label: "Finish the polygon or polyline", run: () => tools.finish(), edits: true },
    { group: "Edit", keys: ["delete", "backspace"], label: "Delete the selected object", run: () => store.remove(tools.selected), edits: true },
    { group: "Edit", keys: ["ctrl+z"], label: "Undo", run: actions.undo, edits: true },
    { group: "Edit", keys: ["ctrl+shift+z", "ctrl+y"], label: "Redo", run: actions.redo, edits: true },
    { group: "Edit", keys: ["escape"], label: "Cancel the drawing, then deselect", run: () => tools.escape() },
    ...labelList.flatMap(labelBindings),
    { group: "View", keys: ["f"], label: "Fit to the screen", run: actions.fit },
    { group: "View", keys: ["a", "arrowleft"], label: "Previous image", run: actions.previous },
    { group: "View", keys: ["d", "arrowright"], label: "Next image", run: actions.next },
    { group: "View", keys: ["?"], label: "These shortcuts", run: actions.shortcuts },
  ];
  installKeymap(bindings, {
    canEdit, onSpace: (down) => { tools.spaceDown = down; }, spaceAction: () => assist.commitSelected(),
  });
  renderShortcuts($("shortcut-list"), bindings, canEdit);

  store.addEventListener("change", (event) => {
    const { cause, keys } = /** @type {CustomEvent} */ (event).detail;
    panels.renderSoon();
    renderer.requestDraw();
    const type = cause === "created" ? "shape-created" : "shape-changed";
    island.dispatchEvent(new CustomEvent(type, { detail: { cause, keys, shapes: keys.map((k) => store.find(k)) } }));
  });
  store.addEventListener("preview", () => renderer.requestDraw());
  store.addEventListener("view", () => { panels.renderObjects(); renderer.requestDraw(); });
  saver?.addEventListener("saved", (event) => {
    island.dispatchEvent(new CustomEvent("saved", { detail: /** @type {CustomEvent} */ (event).detail }));
  });
  tools.addEventListener("select", () => panels.markSelected());
  tools.addEventListener("tool", () => panels.renderToolbar());
  tools.addEventListener("notice", (event) => say("error", /** @type {CustomEvent} */ (event).detail));
  tools.smart.addEventListener("status", (event) => smartStatus(/** @type {CustomEvent} */ (event).detail));
  tools.smart.addEventListener("extracted", () => renderer.requestDraw());

  if (canEdit && config.smart.backend === "sam") {
    // SAM's encoder runs in a worker: ask for this image's and the next ones' embeddings now, not at the first click.
    const [current, ...ahead] = config.smart.prepare;
    api.smartPrepare(current, ahead).catch(() => {});
  }
  const backend = document.getElementById("smart-backend");
  if (backend) {
    backend.textContent = config.smart.description;
    backend.title = config.smart.error || "";
    backend.classList.toggle("warning", !!config.smart.error);
  }
  document.getElementById("aspect")?.addEventListener("change", (event) => {
    const [w, h] = /** @type {HTMLInputElement} */ (event.target).value.split(":").map(Number);
    tools.aspect = w > 0 && h > 0 ? w / h : 0;
  });
  document.getElementById("label-create")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("label-name"));
    const answer = await api.createLabel(config.projectId, input.value);
    if (!answer.ok) return say("error", api.errorText(answer));
    labelList.push(answer.body);
    labels.set(answer.body.id, answer.body);
    bindings.push(...labelBindings(answer.body)); // its hotkey works at once, and the overlay lists it
    renderShortcuts($("shortcut-list"), bindings, canEdit);
    input.value = "";
    setLabel(answer.body.id);
  });
  document.querySelectorAll("[data-tool]").forEach((el) =>
    el.addEventListener("click", () => tools.setTool(/** @type {HTMLElement} */ (el).dataset.tool || "select")));
  document.querySelectorAll("[data-action]").forEach((el) => {
    const action = actions[/** @type {HTMLElement} */ (el).dataset.action || ""];
    if (action) el.addEventListener("click", action);
  });
  const more = /** @type {HTMLDetailsElement} */ ($("more-menu"));
  more.addEventListener("click", (event) => {
    if (/** @type {HTMLElement} */ (event.target).closest("button")) more.open = false; // an action was picked
  });
  document.addEventListener("pointerdown", (event) => {
    if (!more.contains(/** @type {Node} */ (event.target))) more.open = false;
  });

  if (canEdit) startLabelingClock();
  api.markSeen(config.image.id);

  panels.render();
  renderer.resize();
  if (kept) saver?.save(); // what this browser kept from last time goes to the server first
  Object.assign(window, { sightline: { store, renderer, tools, saver, panels, assist } }); // for tests and benchmarks
  document.body.dataset.labelerReady = "true";
  fetchAhead(assist);
}

/** While the person looks at this image: the next one's pixels into the browser's cache, and, with Model Assist
 * on, its stored suggestions for the next page (Assist.load takes them), so "next" waits for neither. */
async function fetchAhead(/** @type {Assist} */ assist) {
  if (!config.next) return;
  await new Promise((resolve) => setTimeout(resolve, 300)); // this image's own requests first
  // As an image, not fetch(): the API varies on Accept, and only the same request finds the cached answer.
  const next = new Image();
  next.src = config.next.url;
  const model = Number(assist.choice.split(":")[0]);
  if (assist.on && model) handOver(config.next.id, model, await api.loadPredictions(config.next.id, model));
}

/** The Model Assist panel: model picker, M, the confidence slider, commit and clear, a classifier's labels. Its
 * state (on, model, threshold) follows the person from image to image, so the loop is "look, S, next".
 * @param {Assist} assist @param {Renderer} renderer @param {Tools} tools @param {number} projectId */
function wireAssist(assist, renderer, tools, projectId) {
  const $ = (/** @type {string} */ id) => document.getElementById(id);
  const picker = /** @type {HTMLSelectElement|null} */ ($("assist-model"));
  const slider = /** @type {HTMLInputElement|null} */ ($("assist-threshold"));
  const toggle = $("assist-toggle");
  const memoryKey = `sightline:assist:${projectId}`;
  const remembered = JSON.parse(sessionStorage.getItem(memoryKey) || "{}");
  if (picker && [...picker.options].some((o) => o.value === remembered.choice)) picker.value = remembered.choice;
  if (slider && remembered.threshold) {
    slider.value = String(remembered.threshold);
    assist.threshold = Number(slider.value);
    const value = $("assist-threshold-value");
    if (value) value.textContent = assist.threshold.toFixed(2);
  }
  assist.choice = picker?.value || "";
  if (remembered.on && assist.choice) assist.toggle();
  const remember = () => sessionStorage.setItem(
    memoryKey, JSON.stringify({ on: assist.on, choice: assist.choice, threshold: assist.threshold }));
  picker?.addEventListener("change", () => { assist.choice = picker.value; if (assist.on) assist.load(); });
  slider?.addEventListener("input", () => {
    assist.setThreshold(Number(slider.value));
    const value = $("assist-threshold-value");
    if (value) value.textContent = Number(slider.value).toFixed(2);
  });
  toggle?.addEventListener("click", () => assist.toggle());
  $("assist-commit")?.addEventListener("click", () => assist.commitSelected() || assist.say("Click suggestions to select them first."));
  $("assist-commit-all")?.addEventListener("click", () => assist.commitAll());
  $("assist-clear")?.addEventListener("click", () => assist.clear());
  $("assist-predict")?.addEventListener("click", () => { if (!assist.on) assist.on = true; assist.load({ predict: true }); });
  assist.addEventListener("status", (event) => {
    const state = $("assist-state");
    if (state) state.textContent = /** @type {CustomEvent} */ (event).detail;
  });
  assist.addEventListener("change", () => {
    remember();
    toggle?.setAttribute("aria-pressed", String(assist.on));
    document.body.dataset.assist = assist.on ? "on" : "off";
    const list = $("assist-labels");
    if (!list) return;
    list.replaceChildren(...assist.shown().filter((s) => s.kind === "label").map((s) => {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "assist-label";
      item.setAttribute("aria-pressed", String(assist.selected.has(s.id)));
      item.textContent = `${s.label_name} ${s.score.toFixed(2)}`;
      item.addEventListener("click", () => assist.toggleSelected(s.id));
      return item;
    }));
  });
  // A click on a suggestion selects it, before any tool sees the click.
  document.getElementById("labeler")?.addEventListener("pointerdown", (event) => {
    if (!assist.on || event.button !== 0 || tools.spaceDown || event.target !== renderer.canvas) return;
    if (tools.tool !== "select") return; // drawing tools draw, even over a suggestion
    const [x, y] = renderer.toImage(event.offsetX, event.offsetY);
    const hit = assist.hit(x, y);
    if (!hit) return;
    event.stopPropagation();
    event.preventDefault();
    assist.toggleSelected(hit.id);
  }, { capture: true });
}

/** Labeling time: the server counts the gaps between heartbeats, up to a minute each. */
function startLabelingClock() {
  let lastActive = Date.now();
  for (const type of ["pointermove", "keydown", "wheel"]) window.addEventListener(type, () => { lastActive = Date.now(); });
  const beat = () => {
    if (Date.now() - lastActive < 60_000 && document.visibilityState === "visible") api.heartbeat(config.image.id);
  };
  beat();
  setInterval(beat, 15_000);
}

start();
