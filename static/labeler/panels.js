// @ts-check
/**
 * The side panels and the toolbar's state: the labels (the current one marked, and named in the
 * toolbar), the image's classification labels, and the object list, one line per object.
 */

/**
 * @typedef {{name: string, type: "text"|"number"|"checkbox"|"choice", choices?: string[]}} AttributeDefinition
 * @typedef {{id: number, name: string, color: string, hotkey: number|null, keypoint_template: string[],
 *   attributes?: AttributeDefinition[]}} Label
 */

const MAX_LISTED = 500;

export class Panels {
  /**
   * @param {{labels: Label[], byId: Map<number, Label>, store: import("./store.js").Store,
   *   tools: import("./tools.js").Tools, canEdit: boolean, setLabel: (id: number) => void}} parts
   */
  constructor({ labels, byId, store, tools, canEdit, setLabel }) {
    this.labels = labels;
    this.byId = byId;
    this.store = store;
    this.tools = tools;
    this.canEdit = canEdit;
    this.setLabel = setLabel;
    this.frame = 0;
    /** What the attribute fields show now (renderAttributes rebuilds them only when it changes). */
    this.attributesShown = "";
  }

  /** Panels follow the canvas by a frame: a new shape is drawn first, its list entry next. */
  renderSoon() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    this.renderLabels();
    this.renderClassifications();
    this.renderObjects();
    this.renderAttributes();
    this.renderToolbar();
  }

  /** The selected object's attributes, as its label defines them: edited here, saved like any change. */
  renderAttributes() {
    const section = $("object-attributes");
    const shape = this.store.find(this.tools.selected);
    const definitions = shape ? this.byId.get(shape.label)?.attributes || [] : [];
    section.hidden = !shape || !definitions.length;
    if (section.hidden || !shape) {
      this.attributesShown = "";
      return;
    }
    const label = /** @type {Label} */ (this.byId.get(shape.label));
    $("attributes-of").textContent = `of ${label.name} ${shape.id === undefined ? "(new)" : `#${shape.id}`}`;
    const values = /** @type {Record<string, any>} */ (shape.attributes || {});
    const key = /** @type {number} */ (shape._key);
    // Rebuild the fields only when what they show changed: a save's answer or another object's change must not
    // take the focus (and what is being typed) from a field the person is in.
    const shown = JSON.stringify([key, shape.label, definitions, values, this.canEdit]);
    if (shown === this.attributesShown) return;
    const active = document.activeElement;
    if (active instanceof HTMLElement && $("attribute-fields").contains(active)) {
      active.blur(); // a field being typed in is saved (its change event fires on blur) before it is replaced
      this.renderAttributes();
      return;
    }
    this.attributesShown = shown;
    const set = (/** @type {string} */ name, /** @type {any} */ value) => {
      const current = /** @type {Record<string, any>} */ (this.store.find(key)?.attributes || {});
      this.store.update(key, { attributes: { ...current, [name]: value } });
    };
    $("attribute-fields").replaceChildren(...definitions.map((definition) => {
      const row = document.createElement("label");
      row.className = "attribute";
      row.dataset.attribute = definition.name;
      const input = attributeInput(definition, values[definition.name], (value) => set(definition.name, value));
      input.disabled = !this.canEdit;
      if (definition.type === "checkbox") row.append(input, document.createTextNode(` ${definition.name}`));
      else row.append(document.createTextNode(`${definition.name} `), input);
      return row;
    }));
  }

  renderLabels() {
    const tools = this.tools;
    $("label-list").replaceChildren(...this.labels.map((label) => {
      const item = listItem(label.color, label.name, label.hotkey ? String(label.hotkey) : "");
      item.setAttribute("aria-selected", String(label.id === tools.label));
      item.onclick = () => this.setLabel(label.id);
      return item;
    }));
    const current = this.byId.get(/** @type {number} */ (tools.label));
    const chip = $("current-label");
    chip.replaceChildren();
    if (current) {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = current.color;
      chip.append(swatch, document.createTextNode(current.name));
      chip.title = "The label the next object gets (1-9 to change)";
    } else chip.textContent = "no label yet";
  }

  renderClassifications() {
    const store = this.store;
    $("classification-list").replaceChildren(...this.labels.map((label) => {
      const entry = store.classifications.find((c) => c.label === label.id);
      const hint = label.hotkey ? `⇧${label.hotkey}` : "";
      const item = listItem(label.color, `${entry?.default ? "★ " : ""}${label.name}`, hint);
      item.dataset.label = label.name;
      if (!this.canEdit) return item;
      item.append(button(entry ? "−" : "+", entry ? `Remove ${label.name} from this image` : `Label this image ${label.name}`,
        () => toggleClassification(store, label.id)));
      if (entry && !entry.default) {
        item.append(button("☆", `Make ${label.name} the image's default label`, () =>
          store.setClassifications(store.classifications.map((c) => ({ ...c, default: c === entry })))));
      }
      return item;
    }));
  }

  renderObjects() {
    const { store, tools } = this;
    $("object-count").textContent = `(${store.shapes.length})`;
    $("object-list").replaceChildren(...store.shapes.slice(0, MAX_LISTED).map((shape) => {
      const label = this.byId.get(shape.label);
      const item = listItem(label?.color || "#fff", label?.name || "?", "");
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = shape.kind === "polyline" ? "line" : shape.kind;
      item.append(kind);
      const id = document.createElement("span");
      id.className = "object-id";
      id.textContent = shape.id === undefined ? "new" : `#${shape.id}`;
      item.prepend(id);
      item.classList.toggle("hidden-object", !!shape._hidden);
      item.setAttribute("aria-selected", String(shape._key === tools.selected));
      item.dataset.key = String(shape._key);
      item.title = `${label?.name || "?"} ${shape.kind}${shape.source && shape.source !== "manual" ? ` (${shape.source})` : ""}`;
      item.onclick = () => tools.select(shape._key, { byUser: true });
      const key = /** @type {number} */ (shape._key);
      item.append(button(shape._hidden ? "show" : "hide", "Hide or show on the canvas", () => store.setHidden([key], !shape._hidden)));
      if (this.canEdit) {
        item.append(
          button(shape.occluded ? "occl. ✓" : "occl.", "Occluded", () => store.update(key, { occluded: !shape.occluded })),
          button("×", "Delete (Del)", () => store.remove(key)),
        );
      }
      return item;
    }));
  }

  /** Selecting only moves the highlight; rebuilding hundreds of list entries would cost a frame. */
  markSelected() {
    for (const item of $("object-list").querySelectorAll("[aria-selected=true]")) item.setAttribute("aria-selected", "false");
    $("object-list").querySelector(`[data-key="${this.tools.selected}"]`)?.setAttribute("aria-selected", "true");
    this.renderAttributes();
  }

  renderToolbar() {
    const tools = this.tools;
    for (const el of document.querySelectorAll("[data-tool]")) {
      el.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (el).dataset.tool === tools.tool));
    }
    const bitmap = document.getElementById("bitmap-mode");
    if (!bitmap) return; // a read-only labeler has no tools
    bitmap.hidden = tools.tool !== "mask";
    bitmap.textContent = `${tools.bitmap.mode} · ${Math.round(tools.bitmap.size)} px`;
    $("smart-panel").hidden = tools.tool !== "smart";
    $("smart-mode").textContent = tools.smart.mode === "foreground" ? "Marking: foreground (X)" : "Marking: background (X)";
    $("smart-mode").dataset.mode = tools.smart.mode;
  }
}

/** Add or remove one classification label; the first one an image gets is its default. @param {import("./store.js").Store} store @param {number} labelId */
export function toggleClassification(store, labelId) {
  const entry = store.classifications.find((c) => c.label === labelId);
  store.setClassifications(entry
    ? store.classifications.filter((c) => c !== entry)
    : [...store.classifications, { label: labelId, default: !store.classifications.length }]);
}

/**
 * One attribute's input: a checkbox, a number, a choice list or text; `onChange` gets the value
 * (null when it is cleared), once the person is done with the field.
 * @param {AttributeDefinition} definition @param {any} value @param {(value: any) => void} onChange
 * @returns {HTMLInputElement|HTMLSelectElement}
 */
function attributeInput(definition, value, onChange) {
  if (definition.type === "choice") {
    const select = document.createElement("select");
    select.append(new Option("—", ""), ...(definition.choices || []).map((choice) => new Option(choice, choice)));
    select.value = value ?? "";
    select.onchange = () => onChange(select.value || null);
    return select;
  }
  const input = document.createElement("input");
  if (definition.type === "checkbox") {
    input.type = "checkbox";
    input.checked = value === true;
    input.onchange = () => onChange(input.checked);
  } else {
    input.type = definition.type === "number" ? "number" : "text";
    input.value = value ?? "";
    input.onchange = () => {
      if (definition.type !== "number") return onChange(input.value || null);
      onChange(input.value === "" || Number.isNaN(Number(input.value)) ? null : Number(input.value));
    };
  }
  return input;
}

/** @param {string} id */
function $(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

/** @param {string} color @param {string} text @param {string} hint */
function listItem(color, text, hint) {
  const item = document.createElement("li");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = color;
  const name = document.createElement("span");
  name.className = "name";
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

/** @param {string} text @param {string} title @param {() => void} onClick */
function button(text, title, onClick) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "link";
  el.textContent = text;
  el.title = title;
  el.onclick = (event) => { event.stopPropagation(); onClick(); };
  return el;
}
