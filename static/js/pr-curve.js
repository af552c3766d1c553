// @ts-check
/**
 * Multi-label statistics: a click on the precision-recall curve, or a typed value, previews the
 * statistics at those thresholds (htmx swaps #statistics and pushes the URL); "Save thresholds"
 * stores them. Listeners sit on the document, so they survive the swaps.
 */

/** @returns {HTMLFormElement | null} */
function thresholdsForm() {
  return /** @type {HTMLFormElement | null} */ (document.getElementById("thresholds-form"));
}

/** Re-render the statistics with the thresholds in the form, without saving them. */
function preview() {
  const form = thresholdsForm();
  if (!form) return;
  const inputs = /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("input[name=threshold]"));
  const params = new URLSearchParams({
    checkpoint: /** @type {HTMLInputElement} */ (form.elements.namedItem("checkpoint")).value,
    split: /** @type {HTMLInputElement} */ (form.elements.namedItem("split")).value,
    curve: form.dataset.curve || "all",
    thresholds: Array.from(inputs, (input) => input.value).join(","),
  });
  const url = `${window.location.pathname}?${params}`;
  // @ts-ignore htmx is a global from django-htmx's script tag
  window.htmx.ajax("GET", url, { target: "#statistics", swap: "outerHTML" }).then(() => history.pushState({}, "", url));
}

document.addEventListener("click", (event) => {
  const svg = /** @type {Element} */ (event.target).closest?.("svg.clickable");
  const form = thresholdsForm();
  if (!(svg instanceof SVGSVGElement) || !form) return;
  /** @type {{x: number, y: number, t: number}[]} */
  const points = JSON.parse(svg.dataset.points || "[]");
  const matrix = svg.getScreenCTM();
  if (!points.length || !matrix) return;
  const at = new DOMPoint(/** @type {MouseEvent} */ (event).clientX, /** @type {MouseEvent} */ (event).clientY)
    .matrixTransform(matrix.inverse());
  let best = points[0];
  for (const point of points) {
    if ((point.x - at.x) ** 2 + (point.y - at.y) ** 2 < (best.x - at.x) ** 2 + (best.y - at.y) ** 2) best = point;
  }
  const curve = form.dataset.curve || "all";
  for (const input of /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("input[name=threshold]"))) {
    if (curve === "all" || input.dataset.index === curve) input.value = best.t.toFixed(4);
  }
  preview();
});

document.addEventListener("change", (event) => {
  const input = /** @type {HTMLInputElement} */ (event.target);
  if (input.name === "threshold" && input.form?.id === "thresholds-form") preview();
});

export {}; // an ES module: its names stay its own
