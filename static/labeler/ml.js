// @ts-check
/**
 * ML Mode (spec 004): the labeling sidebar gives way to the ML panel. Its predictions are Model Assist's (the
 * model picked there, its suggestions drawn greyed); Train Model starts the same training job as the Models page,
 * with the gear's settings, and follows its progress here.
 */
import * as api from "./api.js";

const MODE_KEY = "sightline:ml-mode";

/** @param {{assist: import("./assist.js").Assist, projectId: number}} parts */
export function wireMlMode({ assist, projectId }) {
  const $ = (/** @type {string} */ id) => document.getElementById(id);
  if (!$("ml-mode-toggle") || !$("ml-panel") || !$("label-side")) return; // a read-only user has no ML Mode
  const toggle = /** @type {HTMLElement} */ ($("ml-mode-toggle"));
  const panel = /** @type {HTMLElement} */ ($("ml-panel"));
  const side = /** @type {HTMLElement} */ ($("label-side"));
  const form = /** @type {HTMLFormElement} */ ($("ml-settings-form"));
  const dialog = /** @type {HTMLDialogElement} */ ($("ml-settings-dialog"));
  const slider = /** @type {HTMLInputElement} */ ($("ml-threshold"));
  const show = /** @type {HTMLInputElement} */ ($("ml-show"));
  const state = /** @type {HTMLElement} */ ($("ml-job-state"));
  const progress = /** @type {HTMLProgressElement} */ ($("ml-progress"));
  let saved = new FormData(form); // the settings in force: the dialog's last Save

  /** @param {boolean} on */
  function setMode(on) {
    panel.hidden = !on;
    side.hidden = on;
    toggle.textContent = on ? "Switch to Labeling" : "Switch to ML Mode";
    toggle.setAttribute("aria-pressed", String(on));
    sessionStorage.setItem(MODE_KEY, on ? "on" : "");
    if (on) {
      assist.setThreshold(Number(slider.value));
      if (show.checked && !assist.on) {
        assist.on = true;
        assist.load({ predict: false });
      }
    }
  }
  toggle.addEventListener("click", () => setMode(panel.hidden));
  const save = /** @type {HTMLAnchorElement|null} */ ($("ml-save"));
  const saveLink = () => {
    if (!save) return;
    save.hidden = !assist.choice;
    save.href = `/projects/${projectId}/models/${assist.choice.split(":")[0]}/#bundle`;
  };
  saveLink();
  assist.addEventListener("change", saveLink);
  assist.addEventListener("status", (event) => {
    const line = $("ml-predict-state");
    if (line) line.textContent = /** @type {CustomEvent} */ (event).detail;
  });
  if (sessionStorage.getItem(MODE_KEY) === "on") setMode(true);

  slider.addEventListener("input", () => {
    assist.setThreshold(Number(slider.value));
    const value = $("ml-threshold-value");
    if (value) value.textContent = Number(slider.value).toFixed(2);
  });
  show.addEventListener("change", () => {
    assist.on = show.checked;
    if (show.checked) assist.load({ predict: false });
    else assist.changed();
  });
  $("ml-predict")?.addEventListener("click", () => {
    assist.on = show.checked = true;
    assist.load({ predict: true, nms: Number(saved.get("nms")) });
  });
  $("ml-accept")?.addEventListener("click", () => assist.commitAll());
  $("ml-clear")?.addEventListener("click", () => assist.clear());
  /** The images to train on: null while they are the default (every image with labels). @type {number[]|null} */
  let chosenImages = null;
  const images = $("ml-images");
  const boxes = () => /** @type {HTMLInputElement[]} */ ([...(images?.querySelectorAll("input[type=checkbox]") ?? [])]);
  const countImages = () => {
    const count = $("ml-images-count");
    if (count) count.textContent = `${boxes().filter((box) => box.checked).length} chosen`;
  };
  /** Fetch the checklist as the dialog opens (its states change as people label), keeping a saved choice. */
  async function imagesLoad() {
    if (!images) return;
    const response = await fetch(String(images.dataset.url), { headers: { Accept: "text/html" } });
    if (!response.ok) {
      images.textContent = "The images could not be listed.";
      return;
    }
    images.innerHTML = await response.text();
    if (chosenImages) for (const box of boxes()) box.checked = chosenImages.includes(Number(box.value));
    $("ml-images-labeled")?.addEventListener("click", () => {
      for (const box of boxes()) box.checked = box.dataset.state !== "unlabeled";
      countImages();
    });
    $("ml-images-none")?.addEventListener("click", () => {
      for (const box of boxes()) box.checked = false;
      countImages();
    });
    countImages();
  }
  images?.addEventListener("change", countImages);
  $("ml-settings")?.addEventListener("click", () => {
    dialog.showModal();
    imagesLoad();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      saved = new FormData(form);
      const all = boxes();
      const untouched = all.every((box) => box.checked === (box.dataset.state !== "unlabeled"));
      chosenImages = all.length && !untouched ? all.filter((box) => box.checked).map((box) => Number(box.value)) : null;
      slider.value = String(saved.get("confidence"));
      slider.dispatchEvent(new Event("input"));
    } else {
      form.reset(); // back to the settings in force
      for (const [name, value] of saved) {
        const field = /** @type {HTMLInputElement|null} */ (form.elements.namedItem(name));
        if (field && field.type !== "checkbox") field.value = String(value);
      }
      for (const box of form.querySelectorAll("input[type=checkbox][name]")) { // the images' list reloads itself
        /** @type {HTMLInputElement} */ (box).checked = saved.has(/** @type {HTMLInputElement} */ (box).name);
      }
    }
  });

  /** @param {string} text */
  const say = (text) => { state.textContent = text; };

  const load = /** @type {HTMLInputElement|null} */ ($("ml-load"));
  load?.addEventListener("change", async () => {
    const file = load.files?.[0];
    const line = /** @type {HTMLElement} */ ($("ml-load-state"));
    if (!file) return;
    line.textContent = `Checking ${file.name}…`;
    const answer = await api.loadModel(projectId, file);
    load.value = "";
    if (!answer.ok) {
      line.textContent = `Not loaded: ${api.errorText(answer)}`;
      return;
    }
    line.textContent = `Loaded ${answer.body.name}: Model Assist and Predict Current use it.`;
    use(answer.body.id, `${answer.body.name} · ${answer.body.task} · loaded`, answer.body.name);
  });
  $("ml-train")?.addEventListener("click", async () => {
    // Spec 004's heads: the detection head alone is a detector of rectangles and polygons, the segmentation head
    // alone a semantic segmentation model of painted masks, and both are one detector with a segmentation head on its
    // backbone, each head learning from its own kinds.
    const detection = saved.has("detection_head");
    const segmentation = saved.has("segmentation_head");
    if (!detection && !segmentation) return say("Enable the detection head or the segmentation head in the settings (⚙).");
    const body = {
      task: detection ? "detection" : "semantic-segmentation",
      name: String(saved.get("name")),
      parameters: {
        ...(detection ? { segmentation_head: segmentation } : {}),
        ...(detection && segmentation ? {} : { learn_from: detection ? "shapes" : "painted" }),
        epochs: Number(saved.get("epochs")),
        batch_size: Number(saved.get("batch_size")),
        learning_rate: Number(saved.get("learning_rate")),
        image_size: Number(saved.get("image_size")),
        backbone: String(saved.get("backbone")),
        pretrained: saved.has("pretrained"),
      },
      ...(chosenImages ? { images: chosenImages } : {}),
    };
    say("Starting…");
    const answer = await api.startTraining(projectId, body);
    if (!answer.ok) return say(api.errorText(answer));
    follow(answer.body.id);
  });

  /** Poll the job until it ends: its progress and phase here, then the new model in Model Assist's picker. @param {number} jobId */
  async function follow(jobId) {
    progress.hidden = false;
    for (;;) {
      const answer = await api.loadTrainingJob(jobId);
      if (!answer.ok) return say(api.errorText(answer));
      const job = answer.body;
      progress.value = job.progress;
      const loss = job.loss == null ? "" : `, loss ${Number(job.loss).toFixed(3)}`;
      say(`${job.status}: ${job.phase || "queued"}${loss}`);
      if (job.status === "finished") return trained(job);
      if (["failed", "cancelled"].includes(job.status)) return say(`${job.status}: ${job.error || job.phase}`);
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  /** @param {any} job */
  function trained(job) {
    say(`Trained ${job.name}: Predict Current uses it.`);
    use(job.model_id, `${job.name} · ${job.task} · best`, job.name);
  }

  /** A new model (trained or loaded) becomes Model Assist's choice. @param {number} modelId @param {string} text @param {string} name */
  function use(modelId, text, name) {
    const status = $("ml-status");
    if (status) status.textContent = `Trained ✓ (${name})`;
    const picker = /** @type {HTMLSelectElement|null} */ ($("assist-model"));
    if (picker) {
      picker.add(new Option(text, `${modelId}:best`), 0);
      picker.value = `${modelId}:best`;
    }
    assist.choice = `${modelId}:best`;
    saveLink();
  }
}
