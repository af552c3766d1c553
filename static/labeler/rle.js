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
 * @param {{size: number[], counts: string}} rle @param {string} color
 */
export function maskCanvas(rle, color) {
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
        pixels.data[o] = r; pixels.data[o + 1] = g; pixels.data[o + 2] = b; pixels.data[o + 3] = 110;
      }
    }
    position += run;
    value = 1 - value;
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}
