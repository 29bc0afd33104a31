// Filters run here, off the main thread, so typing never waits for pixels.
const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);

const filters = {
  none() {},
  grayscale(d, a) {
    for (let i = 0; i < d.length; i += 4) {
      const g = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      d[i] += (g - d[i]) * a; d[i + 1] += (g - d[i + 1]) * a; d[i + 2] += (g - d[i + 2]) * a;
    }
  },
  sepia(d, a) {
    for (let i = 0; i < d.length; i += 4) {
      const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
      d[i] = clamp(r + (0.393 * r + 0.769 * g + 0.189 * b - r) * a);
      d[i + 1] = clamp(g + (0.349 * r + 0.686 * g + 0.168 * b - g) * a);
      d[i + 2] = clamp(b + (0.272 * r + 0.534 * g + 0.131 * b - b) * a);
    }
  },
  invert(d, a) {
    for (let i = 0; i < d.length; i += 4) {
      for (let c = 0; c < 3; c++) d[i + c] += (255 - 2 * d[i + c]) * a;
    }
  },
  contrast(d, a) {
    const f = 1 + 2 * a;
    for (let i = 0; i < d.length; i += 4) {
      for (let c = 0; c < 3; c++) d[i + c] = clamp((d[i + c] - 128) * f + 128);
    }
  },
  deepfry(d, a) {
    filters.contrast(d, a);
    for (let i = 0; i < d.length; i += 4) {
      d[i] = clamp(d[i] * (1 + a)); d[i + 2] = clamp(d[i + 2] * (1 - a / 2));
      if ((i / 4) % 7 === 0) d[i + 1] = clamp(d[i + 1] + 40 * a);
    }
  },
  pixelate(d, a, w, h) {
    const size = Math.max(1, Math.round(2 + a * 18));
    for (let y = 0; y < h; y += size) {
      for (let x = 0; x < w; x += size) {
        const o = (y * w + x) * 4;
        for (let yy = y; yy < Math.min(y + size, h); yy++) {
          for (let xx = x; xx < Math.min(x + size, w); xx++) {
            const p = (yy * w + xx) * 4;
            d[p] = d[o]; d[p + 1] = d[o + 1]; d[p + 2] = d[o + 2];
          }
        }
      }
    }
  },
};

self.onmessage = ({ data }) => {
  const { id, image, filter, amount } = data;
  (filters[filter] || filters.none)(image.data, amount, image.width, image.height);
  self.postMessage({ id, image }, [image.data.buffer]);
};
