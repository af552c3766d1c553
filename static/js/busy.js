// @ts-check
/**
 * Every wait over a second shows that something is happening. A form with `data-busy="Predicting"`
 * disables its buttons on submit and counts the seconds on the one pressed; a link with
 * `data-busy-download="Preparing the model"` fetches its file with the same counter and then saves it.
 */

/** Count seconds on `button` as "label… n s" until `stop` is called. @param {HTMLElement} button @param {string} label */
function counter(button, label) {
  const started = Date.now();
  const original = button.textContent;
  const tick = () => { button.textContent = `${label}… ${Math.floor((Date.now() - started) / 1000)} s`; };
  tick();
  const timer = window.setInterval(tick, 1000);
  button.setAttribute("aria-busy", "true");
  return () => {
    window.clearInterval(timer);
    button.textContent = original;
    button.removeAttribute("aria-busy");
  };
}

document.addEventListener("submit", (event) => {
  const form = /** @type {HTMLFormElement} */ (event.target);
  if (!form.dataset.busy || event.defaultPrevented) return;
  const submitter = /** @type {HTMLButtonElement|null} */ (/** @type {SubmitEvent} */ (event).submitter);
  const pressed = submitter || form.querySelector("button[type=submit], button:not([type])");
  // Disabled buttons are not sent: let this submit carry its button's name, then disable them all.
  window.setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }));
  if (pressed) counter(/** @type {HTMLElement} */ (pressed), form.dataset.busy);
});

document.addEventListener("click", async (event) => {
  const link = /** @type {HTMLElement} */ (event.target).closest("a[data-busy-download]");
  if (!(link instanceof HTMLAnchorElement) || link.getAttribute("aria-busy")) return;
  event.preventDefault();
  const stop = counter(link, link.dataset.busyDownload || "Preparing");
  try {
    const response = await fetch(link.href);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.detail || `the server answered ${response.status}`);
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || "download";
    const url = URL.createObjectURL(await response.blob());
    const save = Object.assign(document.createElement("a"), { href: url, download: name });
    document.body.append(save);
    save.click();
    save.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    window.alert(`Download failed: ${/** @type {Error} */ (error).message}`);
  } finally {
    stop();
  }
});

export {}; // an ES module: its names stay its own
