// @ts-check
/**
 * Every REST call the labeler makes, in one place: the CSRF header, JSON in and out, and one
 * shape for answers (`ok`, `status`, `body`), so callers never touch `fetch` themselves.
 * A network failure throws; an HTTP error is an answer with `ok: false`.
 */

/** @typedef {{ok: boolean, status: number, body: any}} Answer */

export function csrfToken() {
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  return headers["X-CSRFToken"] || "";
}

/**
 * @param {string} method @param {string} url @param {any} [json] a body to send as JSON (a FormData as a form)
 * @returns {Promise<Answer>}
 */
async function call(method, url, json) {
  /** @type {Record<string, string>} */
  const headers = { "X-CSRFToken": csrfToken() };
  const form = json instanceof FormData;
  if (json !== undefined && !form) headers["Content-Type"] = "application/json";
  const body = json === undefined || form ? json : JSON.stringify(json);
  const response = await fetch(url, { method, headers, body });
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = { detail: text.slice(0, 200) };
  }
  return { ok: response.ok, status: response.status, body: answer };
}

/** What a refused request says, in words: DRF's `detail`, or its field errors joined. @param {Answer} answer */
export function errorText(answer) {
  const body = answer.body;
  if (answer.status === 403) return body?.detail || "Your role in this project does not allow this.";
  if (body?.detail) return String(body.detail);
  if (body && typeof body === "object") {
    return Object.entries(body).map(([field, errors]) => `${field}: ${[].concat(errors).join(" ")}`).join("; ");
  }
  return `The server answered ${answer.status}.`;
}

/** @param {number} imageId */
export const loadDocument = (imageId) => call("GET", `/api/images/${imageId}/annotations/`);

/** @param {number} imageId @param {object} document */
export const saveDocument = (imageId, document) => call("PUT", `/api/images/${imageId}/annotations/`, document);

/** @param {number} projectId @param {string} name */
export const createLabel = (projectId, name) => call("POST", `/api/projects/${projectId}/labels/`, { name });

/** Box or polygon to a mask, or a mask to polygons, on the server's geometry code.
 * @param {number} imageId @param {"rasterize"|"polygonize"} operation @param {object} body */
export const convertShape = (imageId, operation, body) => call("POST", `/api/images/${imageId}/${operation}/`, body);

/** @param {number} imageId @param {object} prompt the work area and the marks */
export const smartSegment = (imageId, prompt) => call("POST", `/api/images/${imageId}/smart/`, prompt);

/** SAM embeddings for this image and the next ones, computed by a worker. @param {number} imageId @param {number[]} ahead */
export const smartPrepare = (imageId, ahead) => call("POST", `/api/images/${imageId}/smart/prepare/`, { ahead });

/** @param {number} jobId */
export const loadJob = (jobId) => call("GET", `/api/jobs/${jobId}/`);

/** @param {number} imageId */
export const markSeen = (imageId) => call("POST", `/api/images/${imageId}/seen/`);

/** @param {number} imageId */
export const heartbeat = (imageId) => call("POST", `/api/images/${imageId}/heartbeat/`);

/** A model's stored suggestions for the image. @param {number} imageId @param {number} model */
export const loadPredictions = (imageId, model) => call("GET", `/api/images/${imageId}/predictions/?model=${model}`);

/** Run a model on the image now; its suggestions replace the image's earlier ones.
 * @param {number} imageId @param {number} model @param {string} checkpoint @param {number} [nms] */
export const predictImage = (imageId, model, checkpoint, nms) =>
  call("POST", `/api/images/${imageId}/predictions/`, { model, checkpoint, ...(nms ? { nms } : {}) });

/** @param {number} projectId @param {object} body `task`, `name`, `parameters` */
export const startTraining = (projectId, body) => call("POST", `/api/projects/${projectId}/training-jobs/`, body);

/** @param {number} jobId */
export const loadTrainingJob = (jobId) => call("GET", `/api/training-jobs/${jobId}/`);

/** @param {number} imageId @param {{revision: number, ids: number[]}} body */
export const acceptPredictions = (imageId, body) => call("POST", `/api/images/${imageId}/predictions/accept/`, body);

/** @param {number} imageId @param {number} model */
export const clearPredictions = (imageId, model) => call("DELETE", `/api/images/${imageId}/predictions/?model=${model}`);

/** Load Existing Model: a bundle ZIP becomes a model of the project. @param {number} projectId @param {File} file */
export function loadModel(projectId, file) {
  const form = new FormData();
  form.append("file", file);
  return call("POST", `/api/projects/${projectId}/models/`, form);
}
