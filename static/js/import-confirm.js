// @ts-check
/**
 * Import with "replace" asks first: the server counts what the file would overwrite (the images it
 * names and their objects now), and only a confirmed form is sent. The server refuses an
 * unconfirmed replace, so this dialog cannot be skipped.
 */
const form = /** @type {HTMLFormElement|null} */ (document.getElementById("import-form"));
const projectId = form?.dataset.project;

form?.addEventListener("htmx:confirm", (event) => {
  const detail = /** @type {CustomEvent} */ (event).detail;
  const data = new FormData(form);
  const confirmed = /** @type {HTMLInputElement} */ (form.querySelector("input[name=confirmed]"));
  if (data.get("mode") !== "replace" || !confirmed) return;
  event.preventDefault();
  const preview = new FormData();
  preview.set("format", String(data.get("format")));
  preview.set("file", /** @type {File} */ (data.get("file")));
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
  button.disabled = true;
  button.textContent = "Counting…";
  fetch(`/api/projects/${projectId}/import/preview/`, { method: "POST", headers, body: preview })
    .then(async (response) => {
      const body = await response.json();
      if (!response.ok) throw new Error(Object.values(body).flat().join(" "));
      const scope = body.exact ? "" : "up to ";
      const question = `Replace the annotations of ${scope}${body.images} image${body.images === 1 ? "" : "s"} ` +
        `(${body.objects} object${body.objects === 1 ? "" : "s"} and ${body.classifications} classification ` +
        `label${body.classifications === 1 ? "" : "s"} now) with the file's? What is replaced stays in the ` +
        "revision history until someone purges it.";
      if (!window.confirm(question)) return;
      confirmed.value = "1";
      detail.issueRequest(true);
    })
    .catch((error) => window.alert(`Cannot import: ${error.message}`))
    .finally(() => {
      confirmed.value = "";
      button.disabled = false;
      button.textContent = "Import";
    });
});

// "include images" is offered only for the formats that can hold them.
const exportFormat = /** @type {HTMLSelectElement|null} */ (document.getElementById("export-format"));
const includeImages = /** @type {HTMLInputElement|null} */ (document.getElementById("include-images"));
const offerImages = () => {
  if (!exportFormat || !includeImages) return;
  includeImages.disabled = !exportFormat.selectedOptions[0]?.hasAttribute("data-images");
  if (includeImages.disabled) includeImages.checked = false;
};
exportFormat?.addEventListener("change", offerImages);
offerImages();

export {}; // an ES module: its names stay its own
