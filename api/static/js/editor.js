// The meme editor: pick a template, type captions (the canvas follows every keystroke),
// drag/resize/pinch the text boxes, filter (in a Web Worker), crop and rotate, undo/redo,
// drafts saved in the browser and optionally shared live over the feed socket.
import { api, deviceId, mountAccount } from "./api.js";
import { FeedSocket } from "./feed-socket.js";
import { notify } from "./notify.js";
import { installServiceWorker } from "./offline.js";
import { OfflineQueue } from "./offline-queue.js";
import { TemplatePicker } from "./picker.js";
import { drawBox, fontUrls, layout, loadFonts } from "./text-layout.js";
import { UndoStack } from "./undo.js";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const stage = $("stage");
const undo = new UndoStack();
const worker = new Worker("/static/js/filters-worker.js");
const generateQueue = new OfflineQueue("generate");
const DRAFT_KEY = "memestream:draft";

let state = emptyState();
let template = null; // the API's template record
let base = null; // the template image, decoded
let processed = null; // base after rotate, crop and filter (a canvas)
let filterJob = 0;
let workerMessage = 0;
let baseFrames = null; // an animated template's frames: [{bitmap, ms}]
let processedFrames = []; // each frame after rotate, crop and filter
let frameIndex = 0;
let frameTimer = null;
let playing = true;
let cropping = false;
let shared = null; // the SharedDraft of /?draft=<id>

function emptyState() {
  return { templateId: null, boxes: [], filter: "none", amount: 0.6, rotation: 0, crop: null };
}

const socket = new FeedSocket({ channels: [], userId: deviceId() });
window.memestream = {
  socket, get state() { return state; }, get draft() { return shared; }, undo,
  // For the render-truth test: open a draft, read the layout and the request it makes.
  open: (id) => loadTemplate(id),
  edit: (mutate) => {
    change((st) => { mutate(st); cutBoxes(st, ...imageSize(st)); }, { pixels: true });
    return reprocess();
  },
  frames: () => processedFrames.length,
  // Stops the animation on frame `i` (null: plays again); resolves once it is drawn.
  showFrame: (i) => {
    playing = i === null;
    if (!playing) {
      frameIndex = i;
      processed = processedFrames[i];
      draw();
    }
    animate();
  },
  layouts: () => state.boxes.map((b) => (b.text.trim() ? layout(ctx, b) : null)),
  request: () => ({ template_id: state.templateId, texts: state.boxes.map((b) => b.text),
                    ...layoutOf(state) }),
};
mountAccount($("account"));

// ---- state changes -------------------------------------------------------------------
function change(mutate, { coalesce = null, pixels = false } = {}) {
  undo.record(state, coalesce);
  const before = state;
  state = structuredClone(state);
  mutate(state);
  afterChange(before, pixels);
}

function restore(next) {
  if (!next) return;
  const pixels = next.rotation !== state.rotation || JSON.stringify(next.crop) !== JSON.stringify(state.crop)
    || next.filter !== state.filter || next.amount !== state.amount;
  const before = state;
  state = next;
  if (next.templateId !== before.templateId) return loadTemplate(next.templateId, next);
  afterChange(before, pixels);
}

function afterChange(before, pixels) {
  syncInputs();
  if (pixels) reprocess();
  else draw();
  saveDraftSoon();
  shareChanges(before, state);
}

// ---- template loading ------------------------------------------------------------------
const picker = new TemplatePicker($("template-grid"), $("template-search"), (t) => {
  if (t.id === state.templateId) return;
  undo.record(state);
  loadTemplate(t.id).catch((err) => notify(navigator.onLine
    ? `Template ${t.name} could not be opened: ${err.message || err}`
    : `Template ${t.name} is not available offline`, { kind: "warn" }));
});

async function loadTemplate(id, preset = null) {
  const record = picker.all.find((t) => t.id === id) || (await api(`/api/templates/${id}`));
  const img = new Image();
  img.src = previewUrl(id); // lossless: the filters work on the renderer's own pixels
  await img.decode(); // before anything changes: a template that cannot load leaves the last one
  await loadFonts(["impact", ...record.boxes.map((b) => b.font || "impact")]);
  const frames = record.animated ? await decodeFrames(id).catch(() => null) : null;
  template = record;
  base = img;
  baseFrames = frames;
  frameIndex = 0;
  const scale = img.naturalWidth / template.width;
  state = preset || {
    ...emptyState(),
    templateId: id,
    boxes: template.boxes.map((b) => ({
      name: b.name, text: "",
      x: Math.round(b.x * scale), y: Math.round(b.y * scale),
      width: Math.round(b.width * scale), height: Math.round(b.height * scale),
      align: b.align || "center", valign: b.valign || "middle",
      // The template's own look (domain.templates.TextBox): null means no outline.
      color: b.color || "#ffffff", outline: "outline_color" in b ? b.outline_color : "#000000",
      font: b.font || "impact", uppercase: b.uppercase ?? true,
      maxFont: Math.round((b.max_font_size || 96) * scale),
      minFont: Math.round((b.min_font_size || 8) * scale),
      maxLines: b.max_lines || 4, rotation: b.rotation || 0,
      shadow: b.shadow_color || null, gradient: b.gradient || null,
    })),
  };
  picker.selected = id;
  $("template-name").textContent = template.name;
  buildTextInputs();
  syncInputs();
  await reprocess();
  animate();
  saveDraftSoon();
  shareChanges(null, state);
}

// ---- pixels: rotate, crop, filter (worker) -------------------------------------------
const previewUrl = (id) => `/api/templates/${id}/preview?width=1024&lossless=true`;

// The filter's argument as the renderer gets it (layoutOf): the worker computes with the same.
function filterArg(st, k = 1) {
  const a = Math.round(st.amount * 100) / 100;
  if (st.filter === "pixelate") return Math.max(1, Math.round((2 + a * 18) * k));
  if (st.filter === "deepfry") return Math.max(0.05, a);
  return a;
}

// The size of the picture `st` shows: the template turned, then cropped.
function imageSize(st) {
  if (st.crop) return [st.crop.w, st.crop.h];
  const [w, h] = [base.naturalWidth, base.naturalHeight];
  return st.rotation % 180 ? [h, w] : [w, h];
}

// Boxes cut at the image's edges, as the renderer cuts them (validation.place_boxes).
function cutBoxes(st, width, height) {
  for (const box of st.boxes) {
    const x = Math.min(Math.max(box.x, 0), width - 1);
    const y = Math.min(Math.max(box.y, 0), height - 1);
    box.width = Math.max(1, Math.min(box.width - (x - box.x), width - x));
    box.height = Math.max(1, Math.min(box.height - (y - box.y), height - y));
    box.x = x;
    box.y = y;
  }
}

async function reprocess() {
  if (!base) return;
  const job = ++filterJob;
  const sources = baseFrames ? baseFrames.map((f) => f.bitmap) : [base];
  const outs = await Promise.all(sources.map((source) => processFrame(source)));
  if (job !== filterJob) return; // a newer edit superseded this one
  processedFrames = outs;
  frameIndex = Math.min(frameIndex, outs.length - 1);
  processed = outs[frameIndex];
  canvas.width = processed.width;
  canvas.height = processed.height;
  draw();
}

// One frame turned, cropped and filtered (the filter in the worker).
async function processFrame(source) {
  const turn = ((state.rotation % 360) + 360) % 360;
  const w0 = base.naturalWidth;
  const h0 = base.naturalHeight;
  const rotated = document.createElement("canvas");
  [rotated.width, rotated.height] = turn % 180 ? [h0, w0] : [w0, h0];
  const r = rotated.getContext("2d");
  r.translate(rotated.width / 2, rotated.height / 2);
  r.rotate((turn * Math.PI) / 180);
  r.drawImage(source, -w0 / 2, -h0 / 2);
  let out = rotated;
  if (state.crop) {
    const { x, y, w, h } = state.crop;
    out = document.createElement("canvas");
    out.width = w;
    out.height = h;
    out.getContext("2d").drawImage(rotated, x, y, w, h, 0, 0, w, h);
  }
  if (state.filter !== "none") {
    const id = ++workerMessage;
    const image = out.getContext("2d").getImageData(0, 0, out.width, out.height);
    const result = await new Promise((resolve) => {
      const onMessage = ({ data }) => {
        if (data.id !== id) return;
        worker.removeEventListener("message", onMessage);
        resolve(data.image);
      };
      worker.addEventListener("message", onMessage);
      worker.postMessage({ id, image, filter: state.filter, amount: filterArg(state) },
                         [image.data.buffer]);
    });
    out.getContext("2d").putImageData(result, 0, 0);
  }
  return out;
}

// An animated template previews animated: its frames (lossless, decoded by the browser's
// ImageDecoder), each processed like a still, shown in turn at their own durations.
async function decodeFrames(id) {
  if (!("ImageDecoder" in window)) return null;
  const res = await fetch(`/api/templates/${id}/animation?width=1024`);
  if (!res.ok) return null;
  const decoder = new ImageDecoder({ data: await res.arrayBuffer(), type: "image/webp" });
  await decoder.tracks.ready;
  const frames = [];
  for (let i = 0; i < decoder.tracks.selectedTrack.frameCount; i++) {
    const { image } = await decoder.decode({ frameIndex: i });
    frames.push({ bitmap: await createImageBitmap(image), ms: (image.duration || 80000) / 1000 });
    image.close();
  }
  decoder.close();
  return frames.length > 1 ? frames : null;
}

function animate() {
  clearTimeout(frameTimer);
  if (!baseFrames || !playing) return;
  frameTimer = setTimeout(() => {
    frameIndex = (frameIndex + 1) % processedFrames.length;
    processed = processedFrames[frameIndex];
    draw();
    animate();
  }, Math.max(20, baseFrames[frameIndex]?.ms || 80));
}

function draw() {
  if (!processed) return;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(processed, 0, 0);
  for (const box of state.boxes) drawBox(ctx, box);
  canvas.dataset.rendered = String(Number(canvas.dataset.rendered || 0) + 1);
  placeOverlays();
}

// ---- overlays: drag, resize, pinch --------------------------------------------------
function scale() {
  return canvas.clientWidth / canvas.width || 1;
}

function placeOverlays() {
  const s = scale();
  const offsetX = canvas.offsetLeft;
  const offsetY = canvas.offsetTop;
  let overlays = [...stage.querySelectorAll(".box")];
  while (overlays.length > state.boxes.length) overlays.pop().remove();
  state.boxes.forEach((box, i) => {
    let el = overlays[i];
    if (!el) {
      el = document.createElement("div");
      el.className = "box";
      el.dataset.index = String(i);
      el.dataset.testid = `box-${i}`;
      el.tabIndex = 0;
      el.setAttribute("role", "button"); // focusable and moved with the arrows: say what it is
      el.setAttribute("aria-roledescription", "text box");
      el.setAttribute("aria-keyshortcuts", "ArrowUp ArrowDown ArrowLeft ArrowRight");
      const handle = document.createElement("div");
      handle.className = "handle";
      handle.dataset.testid = `box-${i}-resize`;
      el.append(handle);
      attachGestures(el);
      stage.append(el);
    }
    el.style.left = `${offsetX + box.x * s}px`;
    el.style.top = `${offsetY + box.y * s}px`;
    el.style.width = `${box.width * s}px`;
    el.style.height = `${box.height * s}px`;
    el.dataset.x = String(box.x);
    el.dataset.y = String(box.y);
    el.setAttribute("aria-label", `${box.name || `Text ${i + 1}`}: ${box.text || "empty"}`);
  });
}

function attachGestures(el) {
  const pointers = new Map();
  let start = null;
  el.addEventListener("pointerdown", (e) => {
    if (cropping) return;
    e.preventDefault();
    el.setPointerCapture(e.pointerId);
    el.focus();
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const i = Number(el.dataset.index);
    start = {
      state: structuredClone(state), box: { ...state.boxes[i] }, i,
      mode: e.target.classList.contains("handle") ? "resize" : "move",
      pointers: new Map([...pointers].map(([k, v]) => [k, { ...v }])),
    };
  });
  el.addEventListener("pointermove", (e) => {
    if (!start || !pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const s = scale();
    const box = state.boxes[start.i];
    if (pointers.size >= 2 && start.pointers.size >= 2) {
      // Pinch: the box grows or shrinks about its centre by the fingers' spread.
      const [a, b] = [...pointers.values()];
      const [a0, b0] = [...start.pointers.values()];
      const ratio = Math.hypot(a.x - b.x, a.y - b.y) / Math.max(1, Math.hypot(a0.x - b0.x, a0.y - b0.y));
      const cx = start.box.x + start.box.width / 2;
      const cy = start.box.y + start.box.height / 2;
      box.width = Math.max(20, Math.round(start.box.width * ratio));
      box.height = Math.max(20, Math.round(start.box.height * ratio));
      box.x = Math.round(cx - box.width / 2);
      box.y = Math.round(cy - box.height / 2);
    } else {
      const p0 = start.pointers.values().next().value;
      const dx = (e.clientX - p0.x) / s;
      const dy = (e.clientY - p0.y) / s;
      if (start.mode === "resize") {
        box.width = Math.max(20, Math.round(start.box.width + dx));
        box.height = Math.max(20, Math.round(start.box.height + dy));
      } else {
        box.x = Math.round(start.box.x + dx);
        box.y = Math.round(start.box.y + dy);
      }
    }
    clampBox(box);
    draw();
  });
  const end = (e) => {
    if (!pointers.delete(e.pointerId) || pointers.size || !start) return;
    const moved = JSON.stringify(start.state.boxes) !== JSON.stringify(state.boxes);
    if (moved) {
      undo.record(start.state);
      const before = start.state;
      afterChange(before, false);
    }
    start = null;
  };
  el.addEventListener("pointerup", end);
  el.addEventListener("pointercancel", end);
  el.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
}

function clampBox(box) {
  box.width = Math.min(box.width, canvas.width);
  box.height = Math.min(box.height, canvas.height);
  box.x = Math.min(Math.max(box.x, 0), canvas.width - box.width);
  box.y = Math.min(Math.max(box.y, 0), canvas.height - box.height);
}

// ---- crop ------------------------------------------------------------------------------
const cropRect = $("crop-rect");
let cropStart = null;
stage.addEventListener("pointerdown", (e) => {
  if (!cropping || e.target.closest(".box")) return;
  stage.setPointerCapture(e.pointerId);
  const r = canvas.getBoundingClientRect();
  cropStart = { x: e.clientX - r.left, y: e.clientY - r.top };
});
stage.addEventListener("pointermove", (e) => {
  if (!cropStart) return;
  const r = canvas.getBoundingClientRect();
  const x = Math.min(Math.max(e.clientX - r.left, 0), r.width);
  const y = Math.min(Math.max(e.clientY - r.top, 0), r.height);
  Object.assign(cropRect.style, {
    left: `${canvas.offsetLeft + Math.min(x, cropStart.x)}px`,
    top: `${canvas.offsetTop + Math.min(y, cropStart.y)}px`,
    width: `${Math.abs(x - cropStart.x)}px`, height: `${Math.abs(y - cropStart.y)}px`,
  });
  cropRect.hidden = false;
  cropStart.end = { x, y };
});
stage.addEventListener("pointerup", () => {
  if (!cropStart?.end) return (cropStart = null);
  const s = scale();
  const { x: x0, y: y0 } = cropStart;
  const { x: x1, y: y1 } = cropStart.end;
  cropStart = null;
  cropRect.hidden = true;
  setCropping(false);
  const w = Math.round(Math.abs(x1 - x0) / s);
  const h = Math.round(Math.abs(y1 - y0) / s);
  if (w < 16 || h < 16) return;
  const dx = Math.round(Math.min(x0, x1) / s);
  const dy = Math.round(Math.min(y0, y1) / s);
  const prior = state.crop || { x: 0, y: 0 };
  change((st) => {
    st.crop = { x: prior.x + dx, y: prior.y + dy, w, h };
    for (const box of st.boxes) {
      box.x -= dx;
      box.y -= dy;
    }
    cutBoxes(st, w, h);
  }, { pixels: true });
});

function setCropping(on) {
  cropping = on;
  $("crop").setAttribute("aria-pressed", String(on));
  stage.classList.toggle("cropping", on);
}

// ---- inputs ----------------------------------------------------------------------------
function buildTextInputs() {
  const host = $("texts");
  host.replaceChildren();
  state.boxes.forEach((box, i) => {
    const label = document.createElement("label");
    label.textContent = box.name;
    const input = document.createElement("textarea");
    input.id = `text-${i}`;
    input.dataset.testid = `text-${i}`;
    input.rows = 2;
    input.maxLength = 500;
    input.addEventListener("input", () =>
      change((st) => { st.boxes[i].text = input.value; }, { coalesce: `text-${i}` }));
    label.append(input);
    host.append(label);
  });
}

// A co-editor's letters arrive while we type: the caret keeps its place in our text.
function keepCaret(input, text) {
  const old = input.value;
  const { selectionStart: from, selectionEnd: to } = input;
  let same = 0;
  while (same < old.length && same < text.length && old[same] === text[same]) same++;
  const shift = (at) => (at > same ? Math.max(same, at + text.length - old.length) : at);
  input.value = text;
  if (document.activeElement === input) input.setSelectionRange(shift(from), shift(to));
}

function syncInputs() {
  if ($("texts").children.length !== state.boxes.length) buildTextInputs();
  state.boxes.forEach((box, i) => {
    const input = $(`text-${i}`);
    if (input && input.value !== box.text) keepCaret(input, box.text);
  });
  $("filter").value = state.filter;
  $("amount").value = String(Math.round(state.amount * 100));
}

$("filter").addEventListener("change", (e) =>
  change((st) => { st.filter = e.target.value; }, { pixels: true }));
$("amount").addEventListener("input", (e) =>
  change((st) => { st.amount = Number(e.target.value) / 100; }, { pixels: true, coalesce: "amount" }));
const rotate = (deg) => change((st) => {
  st.rotation = (st.rotation + deg + 360) % 360;
  st.crop = null; // a crop is in the rotated frame: it does not survive another turn
  cutBoxes(st, ...imageSize(st));
}, { pixels: true });
$("rotate-left").addEventListener("click", () => rotate(-90));
$("rotate-right").addEventListener("click", () => rotate(90));
$("crop").addEventListener("click", () => setCropping(!cropping));
$("reset-view").addEventListener("click", () =>
  change((st) => { st.rotation = 0; st.crop = null; st.filter = "none"; }, { pixels: true }));
$("undo").addEventListener("click", () => restore(undo.undo(state)));
$("redo").addEventListener("click", () => restore(undo.redo(state)));
$("generate").addEventListener("click", () => generate());
$("share").addEventListener("click", () => share());
$("download").addEventListener("click", () => {
  const a = document.createElement("a");
  a.href = canvas.toDataURL("image/png");
  a.download = `${state.templateId || "meme"}.png`;
  a.click();
});

document.addEventListener("keydown", (e) => {
  const mod = e.ctrlKey || e.metaKey;
  const typing = e.target.matches("input, textarea, select");
  if (mod && e.key.toLowerCase() === "z") {
    e.preventDefault();
    restore(e.shiftKey ? undo.redo(state) : undo.undo(state));
  } else if (mod && e.key.toLowerCase() === "y") {
    e.preventDefault();
    restore(undo.redo(state));
  } else if (mod && e.key === "Enter") {
    e.preventDefault();
    generate();
  } else if (mod && e.key.toLowerCase() === "s") {
    e.preventDefault();
    saveDraft();
    notify("Draft saved");
  } else if (!typing && e.key === "/") {
    e.preventDefault();
    $("template-search").focus();
  } else if (!typing && e.key.toLowerCase() === "r") {
    rotate(e.shiftKey ? -90 : 90);
  } else if (e.target.classList?.contains("box") && e.key.startsWith("Arrow")) {
    e.preventDefault();
    const i = Number(e.target.dataset.index);
    const step = e.shiftKey ? 10 : 1;
    const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step],
                       ArrowDown: [0, step] }[e.key];
    change((st) => { st.boxes[i].x += dx; st.boxes[i].y += dy; }, { coalesce: `nudge-${i}` });
  }
});
window.addEventListener("resize", placeOverlays);

// ---- drafts: local autosave, shared editing --------------------------------------------
let saveTimer = null;
function saveDraftSoon() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveDraft, 300);
}

function saveDraft() {
  if (!state.templateId) return;
  localStorage.setItem(DRAFT_KEY, JSON.stringify({ state, savedAt: Date.now() }));
  $("draft-state").textContent = "draft saved";
}

// A shared draft (`/?draft=<id>`) is a Y.Doc every co-editor merges (draft-sync.js).
function shareChanges(before, after) {
  if (shared && before !== after) shared.setState(after);
}

async function applyShared(next) {
  if (!next.templateId) return;
  if (next.templateId !== state.templateId) {
    await loadTemplate(next.templateId, next);
    picker.pick(next.templateId);
    return;
  }
  const before = state;
  state = { ...next, boxes: next.boxes.map((b) => ({ ...b })) };
  const pixels = before.rotation !== state.rotation || JSON.stringify(before.crop) !== JSON.stringify(state.crop)
    || before.filter !== state.filter || before.amount !== state.amount;
  syncInputs();
  if (pixels) reprocess();
  else draw();
  saveDraftSoon();
}

function showPeers(peers) {
  const byBox = new Map(peers.filter((p) => p.box !== null).map((p) => [p.box, p]));
  stage.querySelectorAll(".box").forEach((el) => {
    const peer = byBox.get(Number(el.dataset.index));
    el.classList.toggle("peer", Boolean(peer));
    el.style.setProperty("--peer", peer ? peer.color : "");
    if (peer) el.dataset.peer = peer.name;
    else delete el.dataset.peer;
  });
  $("draft-state").textContent = shared ? `shared draft ${shared.id} · ${peers.length + 1} editing` : "";
}

async function joinShared(id) {
  // Loaded on first use: Yjs costs nothing to an editor that never shares a draft, and the
  // editor opens offline from the service worker's shell without it.
  const { SharedDraft } = await import("./draft-sync.js");
  if (!shared || shared.id !== id) {
    shared = new SharedDraft(socket, id, {
      name: `Editor ${deviceId().slice(-4)}`, onRemote: applyShared, onPeers: showPeers,
    });
  }
  await shared.join();
  if (shared.empty) shared.setState(state); // a new shared draft starts from what we have
  else await applyShared(shared.toState());
  showPeers(shared.peers());
}

async function share() {
  const id = shared?.id || crypto.randomUUID().slice(0, 12);
  history.replaceState(null, "", `/?draft=${id}`);
  await joinShared(id);
  try {
    await navigator.clipboard?.writeText(location.href);
    notify("Link copied: whoever opens it edits this draft with you");
  } catch {
    notify(`Share this link: ${location.href}`);
  }
}

$("texts").addEventListener("focusin", (e) => {
  const box = Number(e.target.id?.replace("text-", ""));
  shared?.focus(Number.isInteger(box) ? box : null);
});
$("texts").addEventListener("focusout", () => shared?.focus(null));
socket.addEventListener("open", async () => {
  const id = new URLSearchParams(location.search).get("draft");
  if (id) {
    await started;
    await joinShared(id).catch(() => {});
  }
  flushGenerations();
});

// ---- generate: optimistic card, confirmed by the feed -----------------------------------
const made = new Map();

function madeCard(memeId, preview) {
  const li = document.createElement("li");
  li.dataset.testid = "made-meme";
  li.dataset.status = "pending";
  if (memeId) li.dataset.memeId = memeId;
  li.innerHTML = `<img alt=""><span class="status">rendering…</span>`;
  li.querySelector("img").src = preview;
  $("made").prepend(li);
  return li;
}

function settle(memeId, status) {
  const li = made.get(memeId);
  if (!li || li.dataset.status !== "pending") return;
  li.dataset.status = status;
  li.querySelector(".status").textContent = status;
  if (status === "rendered") {
    const img = li.querySelector("img");
    const real = new Image();
    real.onload = () => { img.src = real.src; };
    real.src = `/api/meme/${memeId}/image?size=thumb`;
    notify("Your meme is live in the feed");
  } else {
    notify("The render failed", { kind: "error" });
  }
  socket.unsubscribe([`meme:${memeId}`]);
}

socket.addEventListener("event", (e) => {
  const data = e.detail.data;
  if (made.has(data.meme_id) && (data.kind === "rendered" || data.kind === "failed")) {
    settle(data.meme_id, data.kind);
  }
});

// `key`: the Idempotency-Key, so a queued meme sent twice (a lost answer) is made once.
async function submit(body, li, key = crypto.randomUUID()) {
  const accepted = await api("/api/meme/generate", {
    method: "POST", body, headers: { "Idempotency-Key": key } });
  void follow(accepted, li);
}

async function follow(accepted, li) {
  li.dataset.memeId = accepted.meme_id;
  made.set(accepted.meme_id, li);
  socket.subscribe([`meme:${accepted.meme_id}`]);
  // The socket may be down: poll as a fallback until the feed or the API says it is done.
  for (let i = 0; i < 60 && li.dataset.status === "pending"; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const meme = await api(`/api/meme/${accepted.meme_id}`);
      if (meme.status !== "pending") settle(accepted.meme_id, meme.status);
    } catch { /* keep waiting */ }
  }
}

// The preview's rotate, crop, filter and box positions in the template's pixels, so the
// worker renders what the canvas shows (MemeRequested v2: transform, boxes).
function layoutOf(st) {
  const k = template.width / base.naturalWidth; // preview pixels -> template pixels
  const px = (v) => Math.max(0, Math.round(v * k));
  const transform = [];
  const turn = ((st.rotation % 360) + 360) % 360;
  if (turn) transform.push(`rotate:${(360 - turn) % 360}`); // canvas turns clockwise, Pillow not
  if (st.crop) {
    const { x, y, w, h } = st.crop;
    transform.push(`crop:${px(x)},${px(y)},${Math.max(1, px(w))},${Math.max(1, px(h))}`);
  }
  if (st.filter !== "none") transform.push(`${st.filter}:${filterArg(st, k)}`);
  const width = Math.floor(processed.width * k);
  const height = Math.floor(processed.height * k);
  const boxes = st.boxes.map((b) => {
    const x = Math.min(px(b.x), width - 1);
    const y = Math.min(px(b.y), height - 1);
    return {
      x, y,
      width: Math.max(1, Math.min(px(b.width), width - x)),
      height: Math.max(1, Math.min(px(b.height), height - y)),
    };
  });
  return { transform, boxes };
}

async function generate() {
  if (!state.templateId) return notify("Pick a template first", { kind: "warn" });
  const texts = state.boxes.map((b) => b.text);
  if (!texts.some((t) => t.trim())) return notify("Write a caption first", { kind: "warn" });
  const body = { template_id: state.templateId, texts, ...layoutOf(state) };
  const li = madeCard(null, canvas.toDataURL("image/jpeg", 0.6));
  if (!navigator.onLine) return queueGeneration(body, li);
  try {
    await submit(body, li);
  } catch (err) {
    if (err instanceof TypeError) return queueGeneration(body, li); // the network failed
    li.dataset.status = "failed";
    li.querySelector(".status").textContent = err.message;
    notify(`Not generated: ${err.message}`, { kind: "error" });
  }
}

// Offline: the request waits in localStorage with a small preview, shown as a queued card
// (also after a reload) that becomes the real meme once it is sent and rendered.
const queuedCards = new Map();

function queueGeneration(body, li) {
  const id = crypto.randomUUID();
  const small = document.createElement("canvas");
  const k = Math.min(1, 240 / Math.max(canvas.width, canvas.height));
  [small.width, small.height] = [Math.round(canvas.width * k), Math.round(canvas.height * k)];
  small.getContext("2d").drawImage(canvas, 0, 0, small.width, small.height);
  generateQueue.put(id, { body, preview: small.toDataURL("image/jpeg", 0.7) });
  markQueued(li, id);
  notify("Offline: the meme is generated when you are back", { kind: "warn" });
}

function markQueued(li, id) {
  li.dataset.status = "queued";
  li.querySelector(".status").textContent = "queued: sent when online";
  queuedCards.set(id, li);
}

let flushing = false;
async function flushGenerations() {
  if (flushing || !navigator.onLine) return;
  flushing = true;
  try {
    for (const item of generateQueue.items()) {
      const li = queuedCards.get(item.id) || madeCard(null, item.preview || "");
      li.dataset.status = "pending";
      li.querySelector(".status").textContent = "rendering…";
      try {
        await submit(item.body, li, item.id);
      } catch (err) {
        // Still no network, the platform is down for now, or a first send with this key is
        // still being answered (409): keep it and the rest queued for the next try.
        if (err instanceof TypeError || [409, 429].includes(err.status) || err.status >= 500) {
          markQueued(li, item.id);
          break;
        }
        li.dataset.status = "failed";
        li.querySelector(".status").textContent = err.message;
        notify(`Not generated: ${err.message}`, { kind: "error" });
      }
      generateQueue.remove(item.id);
      queuedCards.delete(item.id);
    }
  } finally {
    flushing = false;
  }
}
window.addEventListener("online", flushGenerations);

// ---- start -----------------------------------------------------------------------------
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The API may be starting or briefly overloaded: keep trying, with backoff, and say so.
async function loadTemplates() {
  for (let attempt = 0; ; attempt++) {
    try {
      return await picker.load();
    } catch (err) {
      const wait = Math.min(8000, 500 * 2 ** attempt);
      notify(`Templates unavailable (${err.message}); retrying in ${wait / 1000} s`, { kind: "error" });
      await pause(wait);
    }
  }
}

const started = (async () => {
  for (const item of generateQueue.items()) markQueued(madeCard(null, item.preview || ""), item.id);
  socket.start();
  await loadTemplates();
  const saved = JSON.parse(localStorage.getItem(DRAFT_KEY) || "null");
  const asked = new URLSearchParams(location.search).get("template"); // from the upload page
  const known = (id) => id && picker.all.some((t) => t.id === id);
  const first = known(asked) ? asked : known(saved?.state?.templateId)
    ? saved.state.templateId : picker.all[0]?.id;
  if (!first) {
    notify("No templates yet: upload one to start", { kind: "warn", ms: 10000 });
    document.body.dataset.ready = "empty";
    return;
  }
  try {
    await loadTemplate(first, saved?.state?.templateId === first ? saved.state : null);
  } catch (err) {
    notify(`Template ${first} could not be opened: ${err.message || err}`, { kind: "error" });
    document.body.dataset.ready = "error";
    return;
  }
  picker.pick(first);
  if (saved) $("draft-state").textContent = "draft restored";
  document.body.dataset.ready = "true";
})();

// What the editor needs to open offline: the template list and the images it shows.
installServiceWorker(async () => {
  await started;
  const lists = [];
  for (let offset = 0; offset <= picker.all.length; offset += 200) {
    lists.push(`/api/templates?limit=200&offset=${offset}`);
  }
  const shown = [...document.querySelectorAll(".cell img[src]")].map((img) => img.src);
  const open = state.templateId ? [previewUrl(state.templateId)] : [];
  if (template?.animated) open.push(`/api/templates/${state.templateId}/animation?width=1024`);
  const drawing = ["/api/render/filters", ...fontUrls()];
  return [...lists, ...open, ...drawing, ...shown];
});
