// Filters run here, off the main thread, so typing never waits for pixels. Each one is
// Pillow's own maths (domain/rendering/filters.py), with the constants that module reads
// (/api/render/filters): the canvas shows what the renderer makes.
const params = fetch("/api/render/filters").then((r) => r.json());

const clip = (v) => (v <= 0 ? 0 : v >= 255 ? 255 : v);
const trunc = (v) => clip(Math.trunc(v));
// ImageOps/convert("L"): ITU-R 601-2 luma in Pillow's fixed point.
const luma = (r, g, b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

// Image.blend(a, b, alpha): a + alpha * (b - a), truncated as Pillow's C does.
function blend(d, filtered, alpha) {
  if (alpha >= 1) {
    for (let i = 0; i < d.length; i += 4) {
      d[i] = filtered[i]; d[i + 1] = filtered[i + 1]; d[i + 2] = filtered[i + 2];
    }
    return;
  }
  for (let i = 0; i < d.length; i += 4) {
    for (let c = 0; c < 3; c++) d[i + c] = trunc(d[i + c] + alpha * (filtered[i + c] - d[i + c]));
  }
}

function mapped(d, fn) {
  const out = new Uint8ClampedArray(d.length);
  for (let i = 0; i < d.length; i += 4) fn(d, out, i);
  return out;
}

// ImageEnhance.Contrast: blend towards the image's mean grey.
function contrast(d, factor) {
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += luma(d[i], d[i + 1], d[i + 2]);
  const mean = Math.trunc(sum / (d.length / 4) + 0.5);
  for (let i = 0; i < d.length; i += 4) {
    for (let c = 0; c < 3; c++) d[i + c] = trunc(mean + factor * (d[i + c] - mean));
  }
}

// ImageEnhance.Color: blend towards each pixel's own grey.
function color(d, factor) {
  for (let i = 0; i < d.length; i += 4) {
    const l = luma(d[i], d[i + 1], d[i + 2]);
    for (let c = 0; c < 3; c++) d[i + c] = trunc(l + factor * (d[i + c] - l));
  }
}

// Pillow's GaussianBlur: three extended box blurs (float radius), rows then columns.
function boxRadius(radius, passes) {
  const sigma2 = (radius * radius) / passes;
  const L = Math.sqrt(12 * sigma2 + 1);
  const l = Math.floor((L - 1) / 2);
  const a = ((2 * l + 1) * (l * (l + 1) - 3 * sigma2)) / (6 * (sigma2 - (l + 1) * (l + 1)));
  return l + a;
}

function boxLine(src, dst, n, stride, offset, r) {
  const ri = Math.floor(r);
  const ww = Math.floor(2 ** 24 / (r * 2 + 1));
  const fw = Math.floor((2 ** 24 - (ri * 2 + 1) * ww) / 2);
  const at = (k) => src[offset + Math.min(Math.max(k, 0), n - 1) * stride];
  let acc = 0;
  for (let k = -ri; k <= ri; k++) acc += at(k);
  for (let x = 0; x < n; x++) {
    const bulk = acc * ww + (at(x - ri - 1) + at(x + ri + 1)) * fw;
    dst[offset + x * stride] = Math.floor((bulk + 2 ** 23) / 2 ** 24);
    acc += at(x + ri + 1) - at(x - ri);
  }
}

function gaussian(d, w, h, radius) {
  const r = boxRadius(radius, 3);
  let a = Uint8ClampedArray.from(d);
  let b = new Uint8ClampedArray(d.length);
  for (let pass = 0; pass < 3; pass++) {
    for (let y = 0; y < h; y++) for (let c = 0; c < 3; c++) boxLine(a, b, w, 4, y * w * 4 + c, r);
    [a, b] = [b, a];
  }
  for (let pass = 0; pass < 3; pass++) {
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) boxLine(a, b, h, w * 4, x * 4 + c, r);
    [a, b] = [b, a];
  }
  return a;
}

// ImageFilter.UnsharpMask: add `percent` of the difference to the blurred image.
function unsharp(d, w, h, radius, percent, threshold) {
  const blurred = gaussian(d, w, h, radius);
  for (let i = 0; i < d.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const diff = d[i + c] - blurred[i + c];
      if (Math.abs(diff) >= threshold) d[i + c] = clip(d[i + c] + Math.trunc((diff * percent) / 100));
    }
  }
}

// Image.resize with the BOX filter: each output pixel averages the inputs it covers.
function boxWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const fscale = Math.max(1, scale);
  const support = 0.5 * fscale;
  const rows = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const ks = [];
    for (let x = xmin; x < xmax; x++) {
      const t = (x - center + 0.5) / fscale;
      ks.push(t > -0.5 && t <= 0.5 ? 1 : 0);
    }
    const sum = ks.reduce((s, k) => s + k, 0) || 1;
    rows.push([xmin, ks.map((k) => k / sum)]);
  }
  return rows;
}

function pixelate(d, w, h, block) {
  const sw = Math.max(1, Math.floor(w / block));
  const sh = Math.max(1, Math.floor(h / block));
  const wx = boxWeights(w, sw);
  const wy = boxWeights(h, sh);
  const mid = new Uint8ClampedArray(sw * h * 4); // rows first, as Pillow resamples
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < sw; xx++) {
      const [x0, ks] = wx[xx];
      for (let c = 0; c < 3; c++) {
        let s = 0;
        ks.forEach((k, j) => { s += k * d[(y * w + x0 + j) * 4 + c]; });
        mid[(y * sw + xx) * 4 + c] = Math.round(s);
      }
    }
  }
  const small = new Uint8ClampedArray(sw * sh * 4);
  for (let yy = 0; yy < sh; yy++) {
    const [y0, ks] = wy[yy];
    for (let xx = 0; xx < sw; xx++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        ks.forEach((k, j) => { s += k * mid[((y0 + j) * sw + xx) * 4 + c]; });
        small[(yy * sw + xx) * 4 + c] = Math.round(s);
      }
    }
  }
  for (let y = 0; y < h; y++) { // NEAREST back up: the source pixel under each centre
    const sy = Math.trunc(((y + 0.5) * sh) / h);
    for (let x = 0; x < w; x++) {
      const sx = Math.trunc(((x + 0.5) * sw) / w);
      const o = (sy * sw + sx) * 4;
      const p = (y * w + x) * 4;
      d[p] = small[o]; d[p + 1] = small[o + 1]; d[p + 2] = small[o + 2];
    }
  }
}

const filters = {
  none() {},
  grayscale(d, a) {
    blend(d, mapped(d, (s, o, i) => { o[i] = o[i + 1] = o[i + 2] = luma(s[i], s[i + 1], s[i + 2]); }), a);
  },
  sepia(d, a, _w, _h, P) {
    const m = P.sepia;
    blend(d, mapped(d, (s, o, i) => {
      for (let c = 0; c < 3; c++) {
        const k = c * 4;
        o[i + c] = Math.trunc(clip(m[k] * s[i] + m[k + 1] * s[i + 1] + m[k + 2] * s[i + 2] + m[k + 3] + 0.5));
      }
    }), a);
  },
  invert(d, a) {
    blend(d, mapped(d, (s, o, i) => { for (let c = 0; c < 3; c++) o[i + c] = 255 - s[i + c]; }), a);
  },
  contrast(d, a, _w, _h, P) {
    contrast(d, 1 + P.contrast.gain * a);
  },
  deepfry(d, k, w, h, P) {
    const p = P.deepfry;
    color(d, 1 + p.color_gain * k);
    contrast(d, 1 + p.contrast_gain * k);
    unsharp(d, w, h, p.unsharp_radius, Math.trunc(p.unsharp_percent * k), 0);
    const bits = Math.max(2, p.posterize_bits - Math.trunc(p.posterize_bits_per_strength * k));
    const mask = ~((1 << (8 - bits)) - 1) & 0xff;
    for (let i = 0; i < d.length; i += 4) {
      d[i] = Math.min(255, Math.trunc(d[i] * (1 + p.red_gain * k))) & mask;
      d[i + 1] &= mask;
      d[i + 2] &= mask;
    }
  },
  pixelate(d, block, w, h) {
    pixelate(d, w, h, Math.max(1, Math.trunc(block)));
  },
};

self.onmessage = async ({ data }) => {
  const { id, image, filter, amount } = data;
  (filters[filter] || filters.none)(image.data, amount, image.width, image.height, await params);
  self.postMessage({ id, image }, [image.data.buffer]);
};
