// @ts-check
/** COCO compressed RLE, as pycocotools writes it, decoded to runs and to a mask bitmap. */

/** @param {string} counts @returns {number[]} */
export function decodeCounts(counts) {
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = counts.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p += 1;
      k += 1;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    runs.push(x);
  }
  return runs;
}

/**
 * A mask as a canvas the size of the image, in the label's colour.
 * @param {{size: number[], counts: string}} rle @param {string} color @param {number} [alpha]
 */
export function maskCanvas(rle, color, alpha = 110) {
  const [height, width] = rle.size;
  const canvas = new OffscreenCanvas(width, height);
  const context = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const pixels = context.createImageData(width, height);
  const r = parseInt(color.slice(1, 3), 16), g = parseInt(color.slice(3, 5), 16), b = parseInt(color.slice(5, 7), 16);
  let position = 0, value = 0;
  for (const run of decodeCounts(rle.counts)) {
    if (value) {
      for (let i = position; i < position + run; i++) {
        // Runs go down columns (column-major), as COCO stores masks.
        const x = Math.floor(i / height), y = i % height, o = (y * width + x) * 4;
        pixels.data[o] = r; pixels.data[o + 1] = g; pixels.data[o + 2] = b; pixels.data[o + 3] = alpha;
      }
    }
    position += run;
    value = 1 - value;
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}

/**
 * COCO compressed RLE of a mask given as a canvas's alpha channel (row-major RGBA), exactly
 * as pycocotools encodes it, so the server recognises it as canonical.
 * @param {Uint8ClampedArray} rgba @param {number} width @param {number} height
 * @returns {{size: number[], counts: string, area: number}}
 */
export function encodeMask(rgba, width, height) {
  const runs = [];
  let value = 0, run = 0, area = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const on = rgba[(y * width + x) * 4 + 3] > 127 ? 1 : 0;
      area += on;
      if (on !== value) {
        runs.push(run);
        run = 0;
        value = on;
      }
      run += 1;
    }
  }
  runs.push(run);
  let counts = "";
  for (let i = 0; i < runs.length; i++) {
    let x = runs[i];
    if (i > 2) x -= runs[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? (x !== -1 ? 1 : 0) : (x !== 0 ? 1 : 0);
      if (more) c |= 0x20;
      counts += String.fromCharCode(c + 48);
    }
  }
  return { size: [height, width], counts, area };
}
