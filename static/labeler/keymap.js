// @ts-check
/**
 * The keyboard: one table of bindings, which both handles keys and fills the `?` overlay, so the
 * overlay never disagrees with what the keys do. A binding may apply only in some modes, or only
 * to people who may edit.
 */

/**
 * @typedef {{keys: string[], label: string, group: string, run: (e: KeyboardEvent) => void,
 *   when?: () => boolean, edits?: boolean}} Binding
 */

/**
 * The name of a key press as the table spells it: "ctrl+z", "shift+enter", "shift+digit1", "b".
 * @param {KeyboardEvent} e
 */
function nameOf(e) {
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key.toLowerCase();
  const parts = [];
  if (e.ctrlKey || e.metaKey) parts.push("ctrl");
  if (e.shiftKey && /^Digit\d$/.test(e.code)) return [...parts, "shift", e.code.toLowerCase()].join("+");
  if (e.shiftKey && key.length > 1) parts.push("shift");
  if (e.shiftKey && (e.ctrlKey || e.metaKey)) parts.push("shift");
  return [...new Set([...parts, key])].join("+");
}

/**
 * Space pans while held, unless `spaceAction` takes the press (Model Assist's commit) and answers true.
 * @param {Binding[]} bindings
 * @param {{canEdit: boolean, onSpace: (down: boolean) => void, spaceAction?: () => boolean}} options
 */
export function installKeymap(bindings, { canEdit, onSpace, spaceAction }) {
  window.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    if (e.key === " ") {
      if (!e.repeat && canEdit && spaceAction?.()) {
        e.preventDefault();
        return;
      }
      onSpace(true);
      e.preventDefault();
      return;
    }
    const name = nameOf(e);
    const binding = bindings.find((b) => b.keys.includes(name) && (canEdit || !b.edits) && (!b.when || b.when()));
    if (!binding) return;
    e.preventDefault();
    binding.run(e);
  });
  window.addEventListener("keyup", (e) => { if (e.key === " ") onSpace(false); });
}

/** Fill the shortcut overlay from the table. @param {HTMLElement} list @param {Binding[]} bindings @param {boolean} canEdit */
export function renderShortcuts(list, bindings, canEdit) {
  /** @type {Map<string, Binding[]>} */
  const groups = new Map();
  for (const binding of bindings) {
    if (binding.edits && !canEdit) continue;
    if (!groups.has(binding.group)) groups.set(binding.group, []);
    const group = /** @type {Binding[]} */ (groups.get(binding.group));
    if (!group.some((b) => b.label === binding.label)) group.push(binding);
  }
  list.replaceChildren(...[...groups].map(([group, entries]) => {
    const section = document.createElement("section");
    const title = document.createElement("h4");
    title.textContent = group;
    const table = document.createElement("dl");
    for (const entry of entries) {
      const keys = document.createElement("dt");
      keys.textContent = entry.keys.map(pretty).join(" / ");
      const label = document.createElement("dd");
      label.textContent = entry.label;
      table.append(keys, label);
    }
    section.append(title, table);
    return section;
  }));
}

/** @param {string} key */
function pretty(key) {
  return key.split("+").map((part) => ({
    ctrl: "Ctrl", shift: "Shift", arrowleft: "←", arrowright: "→", escape: "Esc", enter: "Enter",
    delete: "Del", backspace: "Backspace", space: "Space",
  })[part] || part.replace(/^digit/, "").toUpperCase()).join("+");
}
