// The predict page's sliders: boxes (or masks) scoring below the threshold are hidden, and each image says how many
// it shows; masks are drawn at the opacity chosen.
const slider = /** @type {HTMLInputElement | null} */ (document.getElementById("box-threshold"));
const shown = document.getElementById("box-threshold-value");

function apply() {
  if (!slider) return;
  const threshold = Number(slider.value);
  if (shown) shown.textContent = threshold.toFixed(2);
  for (const figure of document.querySelectorAll(".predicted-boxes")) {
    let visible = 0;
    for (const box of figure.querySelectorAll("g.box")) {
      const keep = Number(/** @type {HTMLElement} */ (box).dataset.score) >= threshold;
      box.classList.toggle("hidden", !keep);
      if (keep) visible += 1;
    }
    const count = figure.querySelector(".box-count");
    if (!count) continue;
    const noun = /** @type {HTMLElement} */ (count).dataset.noun || "box";
    count.textContent = `${visible} ${noun}${visible === 1 ? "" : noun === "box" ? "es" : "s"}`;
  }
}

slider?.addEventListener("input", apply);
apply();

const opacity = /** @type {HTMLInputElement | null} */ (document.getElementById("mask-opacity"));
function applyOpacity() {
  if (!opacity) return;
  const value = document.getElementById("mask-opacity-value");
  if (value) value.textContent = Number(opacity.value).toFixed(2);
  for (const figure of document.querySelectorAll(".predicted-masks")) {
    /** @type {HTMLElement} */ (figure).style.setProperty("--mask-opacity", opacity.value);
  }
}
opacity?.addEventListener("input", applyOpacity);
applyOpacity();
