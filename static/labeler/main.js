// @ts-check
/**
 * The labeler page: loads the image's document (or the unsaved one this browser kept),
 * wires the store, renderer, tools and saver together, and keeps the panels and shortcuts.
 */
import { Renderer } from "./renderer.js";
import { Saver, csrfToken, pendingKey } from "./saver.js";
import { Store } from "./store.js";
import { Tools } from "./tools.js";

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("labeler-config")).textContent || "{}");
const labels = new Map(config.labels.map((/** @type {any} */ l) => [l.id, l]));
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

async function start() {
  const image = new Image();
  image.src = config.image.url;
  const [response] = await Promise.all([fetch(`/api/images/${config.image.id}/annotations/`), image.decode()]);
  const server = await response.json();
  const kept = localStorage.getItem(pendingKey(config.image.id));
  const store = new Store(kept ? JSON.parse(kept) : server);
  const renderer = new Renderer(/** @type {HTMLCanvasElement} */ ($("canvas")), image, store, labels);
  const tools = new Tools(renderer.canvas, renderer, store, config.image);
  tools.label = config.labels[0]?.id ?? null;
  const saver = new Saver(store, config.image.id, $("save-state"), (current) => conflict(current));

  /** @param {any} current */
  function conflict(current) {
    const dialog = /** @type {HTMLDialogElement} */ ($("conflict"));
    $("conflict-text").textContent = `Your version has ${store.shapes.length} objects; the saved one ` +
      `(revision ${current.revision}) has ${current.shapes.length}.`;
    renderer.ghost = new Store(current).shapes; // theirs, dashed white over yours
    renderer.requestDraw();
    dialog.onclick = (event) => {
      const action = /** @type {HTMLElement} */ (event.target).dataset.action;
      if (!action) return;
      dialog.close();
      renderer.ghost = null;
      if (action === "keep-mine" || action === "keep-both") {
        if (action === "keep-both") {
          // Theirs, with my version of objects we both have and my new objects added.
          const mine = new Map(store.shapes.filter((s) => s.id !== undefined).map((s) => [s.id, s]));
          const theirs = new Store(current).shapes.map((s) => mine.get(s.id) || s);
          store.commit(() => { store.shapes = [...theirs, ...store.shapes.filter((s) => s.id === undefined)]; });
        }
        store.revision = current.revision;
        saver.save();
      } else {
        const fresh = new Store(current);
        store.shapes = fresh.shapes;
        store.classifications = fresh.classifications;
        store.revision = current.revision;
        localStorage.removeItem(pendingKey(config.image.id));
        saver.show("saved", "Saved");
        renderPanels();
        renderer.requestDraw();
      }
    };
    dialog.show(); // not modal: both versions stay visible on the canvas
  }

  function renderPanels() {
    const selected = renderer.selected;
    $("label-list").replaceChildren(...config.labels.map((/** @type {any} */ label) => {
      const item = listItem(label.color, label.name, label.hotkey ? String(label.hotkey) : "");
      item.setAttribute("aria-selected", String(label.id === tools.label));
      item.onclick = () => setLabel(label.id);
      return item;
    }));
    $("classification-list").replaceChildren(...config.labels.map((/** @type {any} */ label) => {
      const entry = store.classifications.find((c) => c.label === label.id);
      const item = listItem(label.color, `${entry?.default ? "★ " : ""}${label.name}`, "");
      const toggle = button(entry ? "−" : "+", () => store.commit(() => {
        store.classifications = entry ? store.classifications.filter((c) => c !== entry)
          : [...store.classifications, { label: label.id, default: !store.classifications.length }];
        if (store.classifications.length && !store.classifications.some((c) => c.default)) store.classifications[0].default = true;
      }));
      item.append(toggle);
      if (entry && !entry.default) item.append(button("☆", () => store.commit(() => {
        store.classifications = store.classifications.map((c) => ({ ...c, default: c === entry }));
      })));
      return item;
    }));
    const shown = store.shapes.slice(0, 500);
    $("object-count").textContent = `(${store.shapes.length})`;
    $("object-list").replaceChildren(...shown.map((shape) => {
      const label = labels.get(shape.label);
      const item = listItem(label?.color || "#fff", `${label?.name || "?"} · ${shape.kind}`, "");
      item.classList.toggle("hidden-object", !!shape._hidden);
      item.setAttribute("aria-selected", String(shape._key === selected));
      item.dataset.key = String(shape._key);
      item.onclick = () => tools.select(shape._key);
      item.append(
        button(shape._hidden ? "show" : "hide", () => { shape._hidden = !shape._hidden; renderPanels(); renderer.requestDraw(); }),
        button(shape.occluded ? "occluded ✓" : "occluded", () => store.commit(() => { replace(shape, { occluded: !shape.occluded }); })),
        button("×", () => remove(shape._key)),
      );
      return item;
    }));
    for (const el of document.querySelectorAll("[data-tool]")) {
      el.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (el).dataset.tool === tools.tool));
    }
    $("bitmap-mode").hidden = tools.tool !== "mask";
    $("smart-panel").hidden = tools.tool !== "smart";
    $("smart-mode").textContent = tools.smart.mode === "foreground" ? "Marking: foreground (X)" : "Marking: background (X)";
    $("smart-mode").dataset.mode = tools.smart.mode;
    $("bitmap-mode").textContent = `${tools.bitmap.mode} · ${Math.round(tools.bitmap.size)} px (E brush, R eraser, G fill, [ ] size, N new)`;
  }

  /** @param {number} labelId */
  function setLabel(labelId) {
    tools.label = labelId;
    const shape = store.find(renderer.selected);
    if (shape && shape.label !== labelId) {
      store.commit(() => replace(shape, { label: labelId, keypoints: tools.templateKeypoints(labelId, shape.kind, shape.geometry) }));
    } else renderPanels();
  }

  /** Changes go on a new object, so undo snapshots (shallow copies) keep the old one. */
  function replace(/** @type {any} */ shape, /** @type {object} */ changes) {
    store.shapes = store.shapes.map((s) => (s === shape ? { ...s, ...changes } : s));
  }

  // Panels follow the canvas by a frame: a new shape is drawn first, its list entry next.
  let panelsFrame = 0;
  function renderPanelsSoon() {
    if (!panelsFrame) panelsFrame = requestAnimationFrame(() => { panelsFrame = 0; renderPanels(); });
  }

  /** Selecting only moves the highlight; rebuilding hundreds of list entries would cost a frame. */
  function markSelected() {
    for (const item of $("object-list").querySelectorAll("[aria-selected=true]")) item.setAttribute("aria-selected", "false");
    $("object-list").querySelector(`[data-key="${renderer.selected}"]`)?.setAttribute("aria-selected", "true");
  }

  /**
   * Rasterize (box or polygon to mask, clearing keypoints and attributes) or convert a mask
   * to a polygon, on the server's geometry code.
   * @param {"rasterize"|"polygonize"} operation
   */
  async function convert(operation) {
    const shape = store.find(renderer.selected);
    if (!shape) return saver.show("error", "Select an object first.");
    const simplify = /** @type {HTMLInputElement} */ ($("simplify")).checked ? 1.5 : 0;
    const body = operation === "rasterize" ? { kind: shape.kind, geometry: shape.geometry } : { geometry: shape.geometry, simplify };
    const response = await fetch(`/api/images/${config.image.id}/${operation}/`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() }, body: JSON.stringify(body),
    });
    const result = await response.json();
    if (!response.ok) return saver.show("error", Object.values(result).flat().join(" "));
    store.commit(() => replace(shape, result));
  }

  /** Done: the last extracted mask becomes an object (source "smart"), selected for touch-ups. */
  function smartDone() {
    const geometry = tools.smart.geometry();
    if (!geometry) return smartStatus(tools.smart.result ? "Nothing to keep: Extract found no pixels." : "Extract first.");
    const shape = store.add({ label: /** @type {number} */ (tools.label), kind: "mask", geometry, source: "smart" });
    tools.smart.reset();
    tools.select(shape._key);
    smartStatus("Kept as a mask object. Bitmap (M) touches it up; To polygon converts it. Drag a new work area for the next.");
  }

  /** @param {string} text */
  function smartStatus(text) {
    $("smart-state").textContent = text;
  }

  /** @param {number|undefined} key */
  function remove(key) {
    if (key === undefined) return;
    store.commit(() => { store.shapes = store.shapes.filter((s) => s._key !== key); });
    tools.select(undefined);
  }

  store.addEventListener("change", () => { renderPanelsSoon(); renderer.requestDraw(); });
  tools.addEventListener("select", markSelected);
  tools.addEventListener("tool", renderPanels);
  tools.addEventListener("need-label", () => saver.show("error", "Create a label first."));
  tools.smart.addEventListener("status", (event) => smartStatus(/** @type {CustomEvent} */ (event).detail));
  tools.smart.addEventListener("extracted", () => renderer.requestDraw());
  $("smart-backend").textContent = config.smart.description;
  $("smart-backend").title = config.smart.error || "";
  $("smart-backend").classList.toggle("warning", !!config.smart.error);
  tools.addEventListener("notice", (event) => saver.show("error", /** @type {CustomEvent} */ (event).detail));
  /** @type {HTMLInputElement} */ ($("aspect")).addEventListener("change", (event) => {
    const [w, h] = /** @type {HTMLInputElement} */ (event.target).value.split(":").map(Number);
    tools.aspect = w > 0 && h > 0 ? w / h : 0;
  });
  /** @type {HTMLFormElement} */ ($("label-create")).addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("label-name"));
    const response = await fetch(`/api/projects/${config.projectId}/labels/`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ name: input.value }),
    });
    const body = await response.json();
    if (!response.ok) return saver.show("error", Object.values(body).flat().join(" "));
    config.labels.push(body);
    labels.set(body.id, body);
    input.value = "";
    setLabel(body.id);
    renderPanels();
  });
  document.querySelectorAll("[data-tool]").forEach((el) => el.addEventListener("click", () => tools.setTool(/** @type {HTMLElement} */ (el).dataset.tool || "select")));
  /** @type {Record<string, () => void>} */
  const actions = {
    undo: () => store.undo(), redo: () => store.redo(), fit: () => renderer.fit(),
    previous: () => config.previousUrl && (location.href = config.previousUrl),
    next: () => config.nextUrl && (location.href = config.nextUrl),
    rasterize: () => convert("rasterize"),
    "smart-extract": () => tools.smart.extract(labels.get(/** @type {number} */ (tools.label))?.color || "#ffffff"),
    "smart-done": () => smartDone(),
    "smart-clear": () => { tools.smart.reset(); renderer.requestDraw(); },
    "smart-new-area": () => { tools.smart.newArea = true; smartStatus("Drag the new work area."); },
    "smart-mode": () => { tools.smart.mode = tools.smart.mode === "foreground" ? "background" : "foreground"; renderPanels(); },
    polygonize: () => convert("polygonize"),
    "hide-all": () => { store.shapes.forEach((s) => { s._hidden = true; }); renderPanels(); renderer.requestDraw(); },
    "show-all": () => { store.shapes.forEach((s) => { s._hidden = false; }); renderPanels(); renderer.requestDraw(); },
  };
  document.querySelectorAll("[data-action]").forEach((el) => {
    const action = actions[/** @type {HTMLElement} */ (el).dataset.action || ""];
    if (action) el.addEventListener("click", action);
  });

  window.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey || e.metaKey) {
      if (key === "z") { e.preventDefault(); e.shiftKey ? store.redo() : store.undo(); }
      return;
    }
    if (key === " ") { tools.spaceDown = true; e.preventDefault(); return; }
    const hotkey = config.labels.find((/** @type {any} */ l) => String(l.hotkey) === e.key);
    if (hotkey) return setLabel(hotkey.id);
    /** @type {Record<string, () => void>} */
    if (tools.tool === "smart") {
      /** @type {Record<string, () => void>} */
      const smartKeys = {
        enter: () => (e.shiftKey ? actions["smart-done"]() : actions["smart-extract"]()),
        x: actions["smart-mode"],
        escape: actions["smart-clear"],
      };
      if (smartKeys[key]) { e.preventDefault(); smartKeys[key](); return; }
    }
    if (tools.tool === "mask") {
      /** @type {Record<string, () => void>} */
      const bitmapKeys = {
        e: () => { tools.bitmap.mode = "brush"; }, r: () => { tools.bitmap.mode = "eraser"; }, g: () => { tools.bitmap.mode = "fill"; },
        n: () => { tools.closeBitmap(); tools.select(undefined); },
        "[": () => { tools.bitmap.size = Math.max(1, tools.bitmap.size / 1.25); },
        "]": () => { tools.bitmap.size = Math.min(400, tools.bitmap.size * 1.25); },
      };
      if (bitmapKeys[key]) { e.preventDefault(); bitmapKeys[key](); return renderPanels(); }
    }
    const keys = {
      v: () => tools.setTool("select"), escape: () => { tools.cancel(); tools.setTool("select"); },
      b: () => tools.setTool("box"), l: () => tools.setTool("polyline"),
      // N (or Enter with nothing being drawn) starts a new object of the current kind; polygons by default.
      n: () => tools.setTool(tools.tool === "polyline" ? "polyline" : "polygon"),
      g: () => tools.setTool("polygon", store.find(renderer.selected)?.kind === "polygon" ? "part" : "new"),
      k: () => tools.setTool("polyline", store.find(renderer.selected)?.kind === "polyline" ? "extend" : "new"),
      r: () => { tools.setTool("select"); tools.vertexMode = "remove"; saver.show(saver.status.dataset.state || "saved", "Click vertices to remove them (Esc to stop)"); },
      e: () => tools.setTool("select"),
      h: () => tools.setTool("polygon", store.find(renderer.selected)?.kind === "polygon" ? "hole" : "new"),
      p: () => tools.setTool("points"), m: () => tools.setTool("mask"), w: () => tools.setTool("smart"), enter: () => tools.finish(), f: () => renderer.fit(),
      delete: () => remove(renderer.selected), backspace: () => remove(renderer.selected),
      a: actions.previous, arrowleft: actions.previous, d: actions.next, arrowright: actions.next,
    };
    if (keys[key]) { e.preventDefault(); keys[key](); }
  });
  window.addEventListener("keyup", (e) => { if (e.key === " ") tools.spaceDown = false; });

  // Labeling time: the server counts the gaps between these, up to a minute each.
  let lastActive = Date.now();
  for (const type of ["pointermove", "keydown", "wheel"]) window.addEventListener(type, () => { lastActive = Date.now(); });
  const beat = () => {
    if (config.canAnnotate && Date.now() - lastActive < 60_000 && document.visibilityState === "visible") {
      fetch(`/api/images/${config.image.id}/heartbeat/`, { method: "POST", headers: { "X-CSRFToken": csrfToken() } });
    }
  };
  beat();
  setInterval(beat, 15_000);
  fetch(`/api/images/${config.image.id}/seen/`, { method: "POST", headers: { "X-CSRFToken": csrfToken() } });

  renderPanels();
  renderer.resize();
  if (kept) saver.save(); // what this browser kept from last time goes to the server first
  Object.assign(window, { sightline: { store, renderer, tools, saver } }); // for tests and benchmarks
  document.body.dataset.labelerReady = "true";
}

/** @param {string} color @param {string} text @param {string} hint */
function listItem(color, text, hint) {
  const item = document.createElement("li");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = color;
  const name = document.createElement("span");
  name.textContent = text;
  item.append(swatch, name);
  if (hint) {
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = hint;
    item.append(key);
  }
  return item;
}

/** @param {string} text @param {() => void} onClick */
function button(text, onClick) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "link";
  el.textContent = text;
  el.onclick = (event) => { event.stopPropagation(); onClick(); };
  return el;
}

start();
