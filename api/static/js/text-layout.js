// Caption layout on the canvas, the renderer's way (domain/rendering/fitting.py and
// typesetting.py): the server's font files, its hinted advances (design advances scaled and
// rounded to whole pixels as FreeType does), its fitter's binary search, wrap and ellipsis, and the box's
// rotation, outline, colour and alignment. Same widths in, same line breaks out.
const metrics = new Map(); // family -> the server's metrics (/api/fonts/<family>)
const loading = new Map();

/** Loads the server's face and metrics for each family once; resolves when drawable. */
export function loadFonts(families) {
  return Promise.all([...new Set(families)].map((family) => {
    if (!loading.has(family)) {
      loading.set(family, (async () => {
        const res = await fetch(`/api/fonts/${encodeURIComponent(family)}`);
        if (!res.ok) throw new Error(`font ${family}: HTTP ${res.status}`);
        const m = await res.json();
        const face = new FontFace(faceName(m.family), `url(${m.url})`);
        document.fonts.add(await face.load());
        m.advances = new Map(Object.entries(m.advances).map(([cp, a]) => [Number(cp), a]));
        metrics.set(family, m);
      })().catch((err) => { loading.delete(family); throw err; }));
    }
    return loading.get(family);
  }));
}

/** The URLs of what has been loaded (metrics and files), for the offline cache. */
export function fontUrls() {
  return [...metrics.entries()].flatMap(([family, m]) => [`/api/fonts/${family}`, m.url]);
}

const faceName = (family) => `memestream-${family}`;
const metricsOf = (family) => metrics.get(family) || metrics.get("impact");

// Python's round(): halves go to the even neighbour (the stroke width depends on it).
function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** Width of `text` at `size` px as Pillow measures it: FreeType scales each design advance
 * in 16.16 fixed point (FT_DivFix, FT_MulFix) to 26.6, and rounds it to whole pixels for
 * TrueType faces (CFF faces keep the 1/64 px). */
function widthAt(ctx, m, text, size) {
  const scale = Math.floor((size * 64 * 65536 + Math.floor(m.units_per_em / 2)) / m.units_per_em);
  let w = 0;
  let unknown = "";
  for (const ch of text) {
    const a = m.advances.get(ch.codePointAt(0));
    if (a === undefined) unknown += ch;
    else {
      const v = Math.floor((a * scale + 0x8000) / 65536); // 26.6
      w += m.whole_pixel_advances ? Math.floor((v + 32) / 64) : v / 64;
    }
  }
  if (unknown) {
    ctx.save();
    ctx.font = `${size}px ${faceName(m.family)}, sans-serif`;
    w += ctx.measureText(unknown).width;
    ctx.restore();
  }
  return w;
}

const strokeFor = (m, size, outlined) => (outlined ? Math.max(1, pyRound(size * m.stroke_ratio)) : 0);

function blockHeight(m, n, size) {
  const box = ((m.cap + m.descent) * size) / m.reference_size;
  return n * box + (n - 1) * box * (m.line_spacing - 1);
}

function breakWord(ctx, m, word, avail) {
  const pieces = [];
  const chars = [...word];
  let start = 0;
  let acc = 0;
  chars.forEach((ch, i) => {
    const cw = widthAt(ctx, m, ch, m.reference_size);
    if (acc + cw > avail && i > start) {
      pieces.push(chars.slice(start, i).join(""));
      start = i;
      acc = 0;
    }
    acc += cw;
  });
  pieces.push(chars.slice(start).join(""));
  return pieces;
}

function wrap(ctx, m, paragraphs, avail) {
  const lines = [];
  for (const words of paragraphs) {
    let current = [];
    let currentW = 0;
    for (const word of words) {
      const w = widthAt(ctx, m, word, m.reference_size);
      if (w > avail) {
        if (current.length) lines.push(current.join(" "));
        const pieces = breakWord(ctx, m, word, avail);
        lines.push(...pieces.slice(0, -1));
        current = [pieces.at(-1)];
        currentW = widthAt(ctx, m, pieces.at(-1), m.reference_size);
        continue;
      }
      const extra = current.length ? currentW + m.space + w : w;
      if (extra <= avail) {
        current.push(word);
        currentW = extra;
      } else {
        lines.push(current.join(" "));
        current = [word];
        currentW = w;
      }
    }
    lines.push(current.join(" "));
  }
  return lines;
}

/** The caption as the server cleans it (domain/rendering/text.py): spaces collapsed, outer
 * blank lines dropped, upper-cased where the box says so. */
export function cleanText(text, uppercase) {
  const lines = text.normalize("NFC").replace(/\r\n?/g, "\n").replace(/\t/g, " ")
    .split("\n").map((l) => l.split(/\s+/).filter(Boolean).join(" "));
  while (lines.length && !lines.at(-1)) lines.pop();
  while (lines.length && !lines[0]) lines.shift();
  const out = lines.join("\n");
  return uppercase ? out.toUpperCase() : out;
}

/** `fit_text`: the largest size whose wrapped lines fit the box, else an ellipsis cut. */
export function layout(ctx, box) {
  const m = metricsOf(box.font);
  const text = cleanText(box.text || "", box.uppercase);
  const outlined = Boolean(box.outline);
  const ref = m.reference_size;
  const paragraphs = text.split("\n").map((p) => p.split(/\s+/).filter(Boolean));
  const lineUnit = (m.cap + m.descent) / ref;
  const hi = Math.min(box.maxFont || 96,
    Math.trunc(box.height / (lineUnit + 2 * m.stroke_ratio)) + 1);
  const lo = Math.max(1, Math.min(box.minFont || 8, hi));
  const maxLines = box.maxLines || 4;
  const fitAt = (size) => {
    const stroke = strokeFor(m, size, outlined);
    const scale = size / ref;
    const lines = wrap(ctx, m, paragraphs, scale ? (box.width - 2 * stroke) / scale : 0);
    const fits = lines.length <= maxLines && blockHeight(m, lines.length, size) + 2 * stroke <= box.height;
    return { lines, fits };
  };
  let best = lo;
  for (let a = lo, b = hi; a <= b;) {
    const mid = Math.floor((a + b) / 2);
    if (fitAt(mid).fits) {
      best = mid;
      a = mid + 1;
    } else {
      b = mid - 1;
    }
  }
  let size = best;
  for (let step = 0; step < 8; step++) {
    const { lines, fits } = fitAt(size);
    const avail = box.width - 2 * strokeFor(m, size, outlined);
    if (fits && lines.every((l) => widthAt(ctx, m, l, size) <= avail)) {
      return fitted(ctx, m, lines, size, outlined, false);
    }
    if (size <= lo) break;
    size -= 1;
  }
  const avail = box.width - 2 * strokeFor(m, size, outlined);
  const kept = fitAt(size).lines.slice(0, Math.max(1, maxLines));
  let last = kept.at(-1);
  while (last && widthAt(ctx, m, `${last}…`, size) > avail) {
    last = last.slice(0, Math.max(0, last.length - Math.max(1, Math.floor(last.length / 8))));
  }
  kept[kept.length - 1] = `${last.trimEnd()}…`;
  return fitted(ctx, m, kept, size, outlined, true);
}

function fitted(ctx, m, lines, size, outlined, truncated) {
  const scale = size / m.reference_size;
  const stroke = strokeFor(m, size, outlined);
  return {
    lines, size, stroke, truncated, family: faceName(m.family),
    ascent: m.cap * scale + stroke,
    lineAdvance: (m.cap + m.descent) * scale * m.line_spacing,
    blockHeight: blockHeight(m, lines.length, size) + 2 * stroke,
    widths: lines.map((l) => widthAt(ctx, m, l, size)),
  };
}

/** Draws one caption as typesetting.py paints it: shadow, outline, fill, then the box's
 * rotation (counter-clockwise degrees, about the box's centre). */
export function drawBox(ctx, box) {
  if (!cleanText(box.text || "", false)) return;
  const f = layout(ctx, box);
  const top = box.valign === "top" ? 0
    : box.valign === "bottom" ? box.height - f.blockHeight : (box.height - f.blockHeight) / 2;
  ctx.save();
  ctx.translate(box.x + box.width / 2, box.y + box.height / 2);
  if (box.rotation) ctx.rotate((-box.rotation * Math.PI) / 180);
  ctx.translate(-box.width / 2, -box.height / 2);
  ctx.font = `${f.size}px ${f.family}`;
  ctx.fontKerning = "none"; // Pillow's basic layout places glyphs by their advances alone
  ctx.textAlign = "left";
  ctx.textBaseline = "alphabetic";
  ctx.lineJoin = "round";
  const at = f.lines.map((line, i) => {
    const x = box.align === "left" ? f.stroke
      : box.align === "right" ? box.width - f.stroke - f.widths[i] : (box.width - f.widths[i]) / 2;
    return [line, x, Math.round(top + f.ascent + i * f.lineAdvance)];
  });
  if (box.shadow) {
    ctx.save();
    ctx.shadowColor = box.shadow;
    ctx.shadowOffsetX = ctx.shadowOffsetY = Math.max(1, Math.round(f.size * 0.06));
    ctx.shadowBlur = Math.max(1, f.size * 0.05) * 2;
    ctx.fillStyle = box.shadow;
    for (const [line, x, y] of at) ctx.fillText(line, x, y);
    ctx.restore();
  }
  if (box.outline && f.stroke) {
    ctx.strokeStyle = box.outline;
    ctx.lineWidth = 2 * f.stroke;
    for (const [line, x, y] of at) ctx.strokeText(line, x, y);
  }
  if (box.gradient) {
    const g = ctx.createLinearGradient(0, top, 0, top + f.blockHeight);
    g.addColorStop(0, box.gradient[0]);
    g.addColorStop(1, box.gradient[1]);
    ctx.fillStyle = g;
  } else {
    ctx.fillStyle = box.color || "#fff";
  }
  for (const [line, x, y] of at) ctx.fillText(line, x, y);
  ctx.restore();
}
