// @ts-check
/**
 * The grid's selection: a box that selects every image on the page, then a link that widens the
 * selection to every image the filter matches (the form then sends `all_matching=1` and the
 * filter instead of ids). The grid is swapped by htmx, so everything listens on the document.
 */

/** @param {HTMLFormElement} form */
function describe(form) {
  const note = /** @type {HTMLElement|null} */ (form.querySelector("#selection"));
  const all = /** @type {HTMLInputElement} */ (form.querySelector("#all-matching"));
  if (!note) return;
  const boxes = [...form.querySelectorAll(".tile input[type=checkbox]")].map((b) => /** @type {HTMLInputElement} */ (b));
  const ticked = boxes.filter((b) => b.checked).length;
  const total = Number(note.dataset.total);
  note.replaceChildren();
  if (all.value === "1") {
    note.append(`All ${total} images that match are selected. `, link("Clear selection", () => clear(form)));
  } else if (ticked && ticked === boxes.length && total > boxes.length) {
    note.append(`${ticked} on this page selected. `, link(`Select all ${total}`, () => {
      all.value = "1";
      describe(form);
    }));
  } else if (ticked) {
    note.append(`${ticked} selected`);
  }
}

/** @param {HTMLFormElement} form */
function clear(form) {
  /** @type {HTMLInputElement} */ (form.querySelector("#all-matching")).value = "";
  form.querySelectorAll("input[type=checkbox]").forEach((b) => { /** @type {HTMLInputElement} */ (b).checked = false; });
  describe(form);
}

/** @param {string} text @param {() => void} onClick */
function link(text, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = text;
  button.id = text.startsWith("Select all") ? "select-all-matching" : "clear-selection";
  button.addEventListener("click", onClick);
  return button;
}

document.addEventListener("change", (event) => {
  const input = /** @type {HTMLInputElement} */ (event.target);
  const form = /** @type {HTMLFormElement|null} */ (input.closest("#grid-form"));
  if (!form || input.type !== "checkbox") return;
  if (input.id === "select-page") {
    form.querySelectorAll(".tile input[type=checkbox]").forEach((b) => { /** @type {HTMLInputElement} */ (b).checked = input.checked; });
  }
  if (!input.checked) /** @type {HTMLInputElement} */ (form.querySelector("#all-matching")).value = "";
  describe(form);
});

export {}; // an ES module: its names stay its own
