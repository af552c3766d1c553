// The predict page's score slider: boxes below it are hidden, and each image says how many it shows.
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
    if (count) count.textContent = `${visible} box${visible === 1 ? "" : "es"}`;
  }
}

slider?.addEventListener("input", apply);
apply();
