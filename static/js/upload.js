// @ts-check
/**
 * The upload form: sends the chosen files to the REST API in batches with a progress bar,
 * then lists what was stored and what was refused (and why), and refreshes the grid.
 */

const BATCH_BYTES = 64 * 1024 * 1024; // keep each request well under any proxy's body limit
const BATCH_FILES = 200;

/** @param {File[]} files */
function batches(files) {
  /** @type {File[][]} */
  const out = [];
  let current = [], bytes = 0;
  for (const file of files) {
    if (current.length && (bytes + file.size > BATCH_BYTES || current.length >= BATCH_FILES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * @param {string} url
 * @param {FormData} body
 * @param {string} csrf
 * @param {(loaded: number) => void} onProgress
 * @returns {Promise<{status: number, json: any}>}
 */
function send(url, body, csrf, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let json = null;
      try { json = JSON.parse(xhr.responseText); } catch { json = { detail: xhr.statusText }; }
      resolve({ status: xhr.status, json });
    };
    xhr.onerror = () => reject(new Error("The network failed during the upload."));
    xhr.send(body);
  });
}

/**
 * A DRF error body ({"detail": ...} or {"field": ["message", ...]}) as one line of text.
 * @param {any} json
 */
function errorText(json) {
  if (!json || typeof json !== "object") return "";
  if (typeof json.detail === "string") return json.detail;
  return Object.entries(json)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join("; ");
}

/**
 * Every file inside dropped files and folders, however deep.
 * @param {any[]} entries FileSystemEntry objects from a drop
 * @returns {Promise<File[]>}
 */
async function filesOf(entries) {
  /** @type {File[]} */
  const files = [];
  for (const entry of entries) {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      // readEntries answers in chunks (100 in Chromium) until it answers with none.
      for (;;) {
        const chunk = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!chunk.length) break;
        files.push(...(await filesOf(chunk)));
      }
    }
  }
  return files;
}

/** @param {string} text */
function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}

function csrfToken() {
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  return headers["X-CSRFToken"] || "";
}

const form = /** @type {HTMLFormElement | null} */ (document.getElementById("upload-form"));
if (form) {
  const progressBox = /** @type {HTMLElement} */ (document.getElementById("upload-progress"));
  const bar = /** @type {HTMLProgressElement} */ (progressBox.querySelector("progress"));
  const text = /** @type {HTMLElement} */ (progressBox.querySelector(".progress-text"));
  const resultBox = /** @type {HTMLElement} */ (document.getElementById("upload-result"));

  const zone = /** @type {HTMLElement} */ (document.getElementById("drop-zone"));
  const chosen = /** @type {HTMLElement} */ (document.getElementById("drop-chosen"));
  /** @type {File[]} */
  let dropped = [];
  const pickers = /** @type {HTMLInputElement[]} */ ([...form.querySelectorAll("input[type=file]")]);
  const allFiles = () => [...pickers.flatMap((input) => Array.from(input.files || [])), ...dropped];
  const showChosen = () => {
    const files = allFiles();
    chosen.textContent = files.length ? `${files.length} file${files.length === 1 ? "" : "s"} chosen.` : "";
  };
  pickers.forEach((input) => input.addEventListener("change", showChosen));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const items = [...(event.dataTransfer?.items || [])];
    const entries = items.map((item) => item.webkitGetAsEntry?.()).filter((entry) => entry);
    dropped = dropped.concat(entries.length ? await filesOf(entries) : Array.from(event.dataTransfer?.files || []));
    showChosen();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const labels = /** @type {HTMLInputElement} */ (form.querySelector("input[name=labels]")).value;
    const files = allFiles().filter((f) => !f.name.startsWith("."));
    if (!files.length) {
      chosen.textContent = "Choose or drop some images first.";
      return;
    }
    const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button"));
    button.disabled = true;
    progressBox.hidden = false;
    resultBox.innerHTML = "";
    let sent = 0, stored = 0;
    /** @type {{name: string, reason: string}[]} */
    const rejected = [];
    /** @type {Set<string>} */
    const notices = new Set();
    try {
      for (const batch of batches(files)) {
        const body = new FormData();
        for (const file of batch) body.append("files", file, file.name);
        body.append("labels", labels);
        const { status, json } = await send(form.dataset.endpoint || "", body, csrfToken(), (loaded) => {
          const pct = Math.min(100, Math.round(((sent + loaded) / total) * 100));
          bar.value = pct;
          text.textContent = `${pct}% sent, ${stored} stored`;
        });
        sent += batch.reduce((sum, f) => sum + f.size, 0);
        if (json && Array.isArray(json.stored)) {
          stored += json.stored.length;
          rejected.push(...json.rejected);
          if (json.notice) notices.add(json.notice);
        } else {
          const reason = errorText(json) || `HTTP ${status}`;
          rejected.push(...batch.map((f) => ({ name: f.name, reason })));
        }
      }
    } catch (error) {
      rejected.push({ name: "upload", reason: String(error) });
    }
    bar.value = 100;
    text.textContent = `Done: ${stored} stored, ${rejected.length} refused.`;
    resultBox.innerHTML =
      [...notices].map((n) => `<p class="notice">${escapeHtml(n)}</p>`).join("") +
      (rejected.length
        ? `<p class="error">Refused:</p><ul class="rejected">${rejected
            .map((r) => `<li><strong>${escapeHtml(r.name)}</strong>: ${escapeHtml(r.reason)}</li>`)
            .join("")}</ul>`
        : "");
    button.disabled = false;
    form.reset();
    dropped = [];
    showChosen();
    document.body.dispatchEvent(new Event("images-uploaded")); // the similarity index line follows the new images
    // @ts-ignore htmx is a global from django-htmx's script tag
    window.htmx.ajax("GET", form.dataset.gridUrl, { target: "#grid", swap: "outerHTML" });
  });
}

export {}; // an ES module: its names stay its own
