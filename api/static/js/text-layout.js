// Caption layout on the canvas: the largest font size whose wrapped lines fit the box.
const FONTS = {
  impact: "Impact, Anton, 'Arial Black', 'DejaVu Sans Condensed', sans-serif",
  sans: "'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif",
};

export function fontFamily(name) {
  return FONTS[name] || FONTS.sans;
}

function wrap(ctx, text, width) {
  const lines = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      const candidate = line ? `${line} ${word}` : word;
      if (ctx.measureText(candidate).width <= width || !line) line = candidate;
      else {
        lines.push(line);
        line = word;
      }
    }
    lines.push(line);
  }
  return lines;
}

export function layout(ctx, box) {
  const text = box.uppercase ? box.text.toUpperCase() : box.text;
  const family = fontFamily(box.font);
  let lo = box.minFont || 8;
  let hi = Math.max(lo, Math.min(box.maxFont || 96, box.height));
  let best = { size: lo, lines: [] };
  while (lo <= hi) {
    const size = Math.floor((lo + hi) / 2);
    ctx.font = `bold ${size}px ${family}`;
    const lines = wrap(ctx, text, box.width - 8);
    const fits = lines.length * size * 1.1 <= box.height
      && lines.every((l) => ctx.measureText(l).width <= box.width - 4)
      && lines.length <= (box.maxLines || 4);
    if (fits) {
      best = { size, lines };
      lo = size + 1;
    } else {
      hi = size - 1;
    }
  }
  if (!best.lines.length) {
    ctx.font = `bold ${best.size}px ${family}`;
    best.lines = wrap(ctx, text, box.width - 8);
  }
  return { ...best, family };
}

export function drawBox(ctx, box) {
  if (!box.text) return;
  const { size, lines, family } = layout(ctx, box);
  ctx.save();
  ctx.font = `bold ${size}px ${family}`;
  ctx.textAlign = box.align || "center";
  ctx.textBaseline = "top";
  const lineHeight = size * 1.1;
  const total = lines.length * lineHeight;
  const top = box.valign === "top" ? box.y + 2
    : box.valign === "bottom" ? box.y + box.height - total - 2
      : box.y + (box.height - total) / 2;
  const x = ctx.textAlign === "left" ? box.x + 4
    : ctx.textAlign === "right" ? box.x + box.width - 4 : box.x + box.width / 2;
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.max(2, size / 8);
  ctx.strokeStyle = box.outline || "transparent";
  ctx.fillStyle = box.color || "#fff";
  lines.forEach((line, i) => {
    if (box.outline) ctx.strokeText(line, x, top + i * lineHeight);
    ctx.fillText(line, x, top + i * lineHeight);
  });
  ctx.restore();
}
