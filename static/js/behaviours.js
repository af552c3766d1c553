// @ts-check
// Small page behaviours declared in data attributes, so that no page needs inline script: the
// Content-Security-Policy allows scripts from our own files only.
//   data-confirm="Question?"      a button or link asks before it acts
//   data-autosubmit               a select submits its form when it changes
//   data-checked-as="name"        an htmx control sends its checkbox state as `name` (true or false)
//   data-select-refresh           a form fires `select-changed` (for its hx-trigger) when one of its selects changes

document.addEventListener("click", (event) => {
  const target = /** @type {HTMLElement | null} */ (event.target);
  const asking = target?.closest("[data-confirm]");
  if (asking && !window.confirm(asking.getAttribute("data-confirm") || "Are you sure?")) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
});

document.addEventListener("change", (event) => {
  const target = /** @type {HTMLElement | null} */ (event.target);
  if (!target) return;
  if (target.matches("select[data-autosubmit]")) {
    /** @type {HTMLSelectElement} */ (target).form?.requestSubmit();
  }
  const form = target.closest("form[data-select-refresh]");
  if (form && target.matches("select")) {
    form.dispatchEvent(new Event("select-changed", { bubbles: false }));
  }
});

document.addEventListener("htmx:configRequest", (event) => {
  const detail = /** @type {CustomEvent} */ (event).detail;
  const element = /** @type {HTMLInputElement} */ (detail.elt);
  const name = element.getAttribute?.("data-checked-as");
  if (name) detail.parameters[name] = element.checked;
});
