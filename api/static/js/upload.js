// The templates page: upload an image, draw its caption boxes on it (drag rectangles, or
// "Add a box" and its x / y / width / height fields: the keyboard's way, and how a drawn box
// is moved or resized), name it, send it to `POST /api/templates` (multipart) and show the server's verdict: its problem
// title, detail and field errors when it refuses (too large, not an image, invalid boxes).
// The checks stay on the server, the one place that decides; the page only shows them.
import { api, mountAccount } from "./api.js";
import { installServiceWorker } from "./offline.js";

const $ = (id) => document.getElementById(id);
const form = $("upload-form");
const fileInput = $("upload-file");
const stage = $("upload-stage");
const image = $("upload-image");
const MIN_BOX = 8; // image pixels: a click is not a box

let boxes = []; // [{name, x, y, width, height}] in the image's own pixels
let objectUrl = null;
let user = null;

installServiceWorker();
mountAccount($("account"), (who) => {
  user = who;
  showMine();
});

// ---- the image -------------------------------------------------------------------------
fileInput.addEventListener("change", () => {
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  boxes = [];
  renderBoxes();
  hideMessages();
  const file = fileInput.files[0];
  stage.hidden = !file;
  $("upload-add-box").hidden = true;
  if (!file) return;
  objectUrl = URL.createObjectURL(file);
  image.src = objectUrl;
  if (!$("upload-name").value) $("upload-name").value = file.name.replace(/\.[^.]+$/, "");
});
image.addEventListener("load", () => {
  stage.dataset.ready = "true";
  $("upload-add-box").hidden = false;
});
// Not decodable here: the server says why (it may still be a format it reads).
image.addEventListener("error", () => { stage.dataset.ready = "unreadable"; });

// ---- drawing boxes ---------------------------------------------------------------------
function toImage(e) {
  const r = image.getBoundingClientRect();
  const kx = image.naturalWidth / r.width;
  const ky = image.naturalHeight / r.height;
  return {
    x: Math.min(Math.max(0, (e.clientX - r.left) * kx), image.naturalWidth),
    y: Math.min(Math.max(0, (e.clientY - r.top) * ky), image.naturalHeight),
  };
}

let drawing = null;
stage.addEventListener("pointerdown", (e) => {
  if (!image.naturalWidth || e.button !== 0) return;
  e.preventDefault();
  stage.setPointerCapture(e.pointerId);
  const start = toImage(e);
  const el = document.createElement("div");
  el.className = "drawn-box drawing";
  stage.append(el);
  drawing = { start, box: { x: start.x, y: start.y, width: 0, height: 0 }, el };
});
stage.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = toImage(e);
  const { start } = drawing;
  drawing.box = {
    x: Math.round(Math.min(p.x, start.x)), y: Math.round(Math.min(p.y, start.y)),
    width: Math.round(Math.abs(p.x - start.x)), height: Math.round(Math.abs(p.y - start.y)),
  };
  place(drawing.el, drawing.box);
});
const finish = () => {
  if (!drawing) return;
  const { box, el } = drawing;
  drawing = null;
  el.remove();
  if (box.width < MIN_BOX || box.height < MIN_BOX) return;
  boxes.push({ name: `text ${boxes.length + 1}`, ...box });
  renderBoxes();
};
stage.addEventListener("pointerup", finish);
stage.addEventListener("pointercancel", finish);

// A band across the image, each new one lower down; its fields then place it exactly.
$("upload-add-box").addEventListener("click", () => {
  const w = image.naturalWidth;
  const h = image.naturalHeight;
  const height = Math.max(MIN_BOX, Math.round(h / 5));
  const y = Math.min(h - height, Math.round((h / 10) * (boxes.length % 8)));
  const box = { x: Math.round(w / 20), y, width: Math.round(w * 0.9), height };
  boxes.push({ name: `text ${boxes.length + 1}`, ...box });
  renderBoxes();
  $("upload-boxes").lastElementChild?.querySelector("input")?.focus();
});

// Keeps a box inside the image and at least MIN_BOX pixels wide and tall.
function clampBox(box) {
  const w = image.naturalWidth;
  const h = image.naturalHeight;
  box.width = Math.min(Math.max(MIN_BOX, box.width), w);
  box.height = Math.min(Math.max(MIN_BOX, box.height), h);
  box.x = Math.min(Math.max(0, box.x), w - box.width);
  box.y = Math.min(Math.max(0, box.y), h - box.height);
}

function numberField(box, key, label, overlay) {
  const input = document.createElement("input");
  input.type = "number";
  input.min = "0";
  input.step = "1";
  input.value = String(box[key]);
  input.className = "box-number";
  input.dataset.field = key;
  input.setAttribute("aria-label", label);
  input.addEventListener("change", () => {
    const value = Number.parseInt(input.value, 10);
    if (Number.isFinite(value)) box[key] = value;
    clampBox(box);
    // Clamping one field can move another (a wider box slides left): show them all.
    for (const field of input.parentElement.querySelectorAll("input")) {
      field.value = String(box[field.dataset.field]);
    }
    place(overlay, box);
  });
  return input;
}

// Percentages of the image: the overlay follows the image at any displayed size.
function place(el, box) {
  Object.assign(el.style, {
    left: `${(box.x / image.naturalWidth) * 100}%`,
    top: `${(box.y / image.naturalHeight) * 100}%`,
    width: `${(box.width / image.naturalWidth) * 100}%`,
    height: `${(box.height / image.naturalHeight) * 100}%`,
  });
}

function renderBoxes() {
  for (const el of stage.querySelectorAll(".drawn-box")) el.remove();
  const list = $("upload-boxes");
  list.replaceChildren();
  boxes.forEach((box, i) => {
    const el = document.createElement("div");
    el.className = "drawn-box";
    el.dataset.testid = `drawn-box-${i}`;
    el.textContent = String(i + 1);
    place(el, box);
    stage.append(el);
    const li = document.createElement("li");
    li.dataset.testid = `upload-box-${i}`;
    const name = document.createElement("input");
    name.value = box.name;
    name.maxLength = 40;
    name.setAttribute("aria-label", `Name of box ${i + 1}`);
    name.addEventListener("input", () => { box.name = name.value; });
    const fields = document.createElement("span");
    fields.className = "box-fields";
    fields.append(
      numberField(box, "x", `Box ${i + 1}: x`, el),
      numberField(box, "y", `Box ${i + 1}: y`, el),
      numberField(box, "width", `Box ${i + 1}: width`, el),
      numberField(box, "height", `Box ${i + 1}: height`, el),
    );
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove box ${i + 1}`);
    remove.addEventListener("click", () => {
      boxes.splice(i, 1);
      renderBoxes();
    });
    li.append(name, fields, remove);
    list.append(li);
  });
}

// ---- sending ---------------------------------------------------------------------------
function hideMessages() {
  $("upload-error").hidden = true;
  $("upload-done").hidden = true;
}

function showError(text) {
  const el = $("upload-error");
  el.textContent = text;
  el.hidden = false;
}

// RFC 9457: the title, the detail and each field error, in the server's words.
function problemText(err) {
  const p = err.problem;
  if (!p) return err instanceof TypeError ? "Uploading needs the network: you are offline" : err.message;
  const issues = (p.errors || []).map((i) => `${i.loc.slice(1).join(".")}: ${i.msg}`);
  return [[p.title, p.detail].filter(Boolean).join(": "), ...issues].join("; ");
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  hideMessages();
  const file = fileInput.files[0];
  if (!file) return showError("Choose an image first");
  const data = new FormData();
  data.append("file", file);
  data.append("name", $("upload-name").value.trim());
  data.append("tags", $("upload-tags").value);
  if (boxes.length) data.append("boxes", JSON.stringify(boxes));
  const submit = $("upload-submit");
  submit.disabled = true;
  try {
    const template = await api("/api/templates", { method: "POST", body: data });
    const done = $("upload-done");
    const link = document.createElement("a");
    link.href = `/?template=${encodeURIComponent(template.id)}`;
    link.dataset.testid = "upload-open";
    link.textContent = "open it in the editor";
    done.replaceChildren(`Uploaded “${template.name}” with ${template.boxes.length} boxes: `, link);
    done.dataset.templateId = template.id;
    done.hidden = false;
    form.reset();
    stage.hidden = true;
    boxes = [];
    renderBoxes();
    showMine();
  } catch (err) {
    showError(problemText(err));
  } finally {
    submit.disabled = false;
  }
});

// ---- the user's uploads ----------------------------------------------------------------
async function showMine() {
  const list = $("my-templates");
  const empty = $("mine-empty");
  list.replaceChildren();
  if (!user) {
    empty.textContent = "Sign in to upload templates and see yours.";
    empty.hidden = false;
    return;
  }
  let mine = [];
  try {
    const uploads = await api("/api/templates?category=uploads&limit=200");
    mine = uploads.filter((t) => t.owner_id === user.id);
  } catch (err) {
    empty.textContent = `Your templates could not be listed: ${problemText(err)}`;
    empty.hidden = false;
    return;
  }
  empty.textContent = "None yet: your uploads appear here.";
  empty.hidden = mine.length > 0;
  for (const t of mine) {
    const li = document.createElement("li");
    li.dataset.testid = `my-template-${t.id}`;
    const link = document.createElement("a");
    link.href = `/?template=${encodeURIComponent(t.id)}`;
    const img = document.createElement("img");
    img.alt = t.name;
    img.loading = "lazy";
    img.src = `/api/templates/${encodeURIComponent(t.id)}/preview?width=160`;
    const label = document.createElement("span");
    label.textContent = `${t.name} · ${t.boxes.length} boxes`;
    link.append(img, label);
    li.append(link);
    list.append(li);
  }
}
