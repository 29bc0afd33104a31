// The feed page: a timeline of memes, newest first, that a fresh visitor sees at once and can
// scroll back through (pages of /api/meme/recent, followed by their Link header); new memes
// are counted on one "N new" button instead of jumping in; a meme page (#meme=<id>) with the
// full image, its captions and its votes; votes (optimistic, reconciled with the server's
// acks and vote-count events, queued while offline); the trending board.
//
// The list is windowed: cards sit on a fixed grid and only the rows near the viewport exist
// in the DOM, so the page stays as light after a thousand memes as after twenty.
import { api, deviceId, mountAccount } from "./api.js";
import { FeedSocket } from "./feed-socket.js";
import { notify } from "./notify.js";
import { OfflineQueue } from "./offline-queue.js";

const $ = (id) => document.getElementById(id);
const list = $("feed-list");
const board = $("trending");
const connection = $("connection");
const queuedBadge = $("queued");
const newButton = $("new-memes");
const cardTemplate = $("card");
const memePage = $("meme-page");
const timelineSection = $("timeline");
const votesQueue = new OfflineQueue("votes");

const PAGE = 24;
const MIN_CARD = 220; // px: the narrowest card
const GAP = 16; // px: between cards (matches .cards in app.css)
const META = 96; // px: a card's height below its square image
const OVERSCAN = 2; // rows kept above and below the viewport

const cards = new Map(); // meme id -> {data, el, votes, mine, pending, version}
let timeline = []; // meme ids, newest first
let fresh = []; // ids announced live, not shown yet (newest first)
let nextUrl = `/api/meme/recent?limit=${PAGE}`;
let loading = null;
let grid = { cols: 1, width: MIN_CARD, rowHeight: MIN_CARD + META + GAP };
let openMeme = null; // the meme the meme page shows

const socket = new FeedSocket({ channels: ["new", "votes", "trending"], userId: deviceId() });
// For debugging and the browser tests.
window.memestream = { socket, cards, get timeline() { return [...timeline]; } };

// The socket authenticates with the session cookie when it connects: reconnect on sign-in.
mountAccount($("account"), (_, initial) => initial || socket.reconnect());

function setConnection(text, state) {
  connection.textContent = text;
  connection.dataset.state = state;
}

function showQueued() {
  const n = votesQueue.size;
  queuedBadge.hidden = n === 0;
  queuedBadge.textContent = `${n} vote${n === 1 ? "" : "s"} waiting to sync`;
}

const imageUrl = (id, size) => `/api/meme/${id}/image?size=${size}`;
const altText = (data) => {
  const words = (data.texts || []).filter((t) => t && t.trim()).join(" / ");
  return words ? `Meme: ${words}` : `Meme from the ${data.template_id || "unknown"} template`;
};

function cardFor(data) {
  let card = cards.get(data.id);
  if (!card) {
    card = { data, el: null, votes: data.votes ?? 0, mine: 0, pending: null, version: 0 };
    cards.set(data.id, card);
  } else if (data.texts && !card.data.texts) {
    card.data = { ...card.data, ...data };
  }
  return card;
}

// ---- the windowed list --------------------------------------------------------------------

function measure() {
  const width = list.clientWidth || MIN_CARD;
  const cols = Math.max(1, Math.floor((width + GAP) / (MIN_CARD + GAP)));
  const cardWidth = (width - GAP * (cols - 1)) / cols;
  grid = { cols, width: cardWidth, rowHeight: cardWidth + META + GAP,
           measured: list.clientWidth > 0 }; // 0 while hidden (opened on a meme page)
}

function visibleRange() {
  const top = list.getBoundingClientRect().top; // relative to the viewport
  const first = Math.floor(-top / grid.rowHeight) - OVERSCAN;
  const last = Math.ceil((window.innerHeight - top) / grid.rowHeight) + OVERSCAN;
  return [Math.max(0, first * grid.cols), Math.min(timeline.length, last * grid.cols)];
}

let frame = 0;
function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  if (timelineSection.hidden) return; // the meme page is open: nothing to place or load
  if (!grid.measured) measure();
  const rows = Math.ceil(timeline.length / grid.cols);
  list.style.height = `${Math.max(0, rows * grid.rowHeight - GAP)}px`;
  const [start, end] = visibleRange();
  const keep = new Set(timeline.slice(start, end));
  for (const el of [...list.children]) {
    if (!keep.has(el.dataset.memeId)) {
      const card = cards.get(el.dataset.memeId);
      if (card) card.el = null;
      socket.unsubscribe([`meme:${el.dataset.memeId}`]);
      el.remove();
    }
  }
  let next = list.firstElementChild; // DOM order follows the timeline: Tab and screen readers
  for (let i = start; i < end; i++) {
    const card = cards.get(timeline[i]);
    if (!card) continue;
    if (!card.el) mountCard(card);
    if (card.el === next) next = next.nextElementSibling;
    else list.insertBefore(card.el, next); // moves only what is out of place
    const col = i % grid.cols;
    const row = Math.floor(i / grid.cols);
    card.el.style.transform = `translate(${col * (grid.width + GAP)}px, ${row * grid.rowHeight}px)`;
    card.el.style.width = `${grid.width}px`;
    card.el.style.height = `${grid.width + META}px`;
    card.el.setAttribute("aria-posinset", String(i + 1)); // "item 57 of 120" while windowed
    card.el.setAttribute("aria-setsize", String(timeline.length));
  }
  $("empty").hidden = timeline.length > 0 || loading !== null || nextUrl !== null;
  if (end + grid.cols * OVERSCAN >= timeline.length) loadOlder();
}

function mountCard(card) {
  const { data } = card;
  const el = cardTemplate.content.firstElementChild.cloneNode(true);
  el.dataset.memeId = data.id;
  el.querySelector(".template").textContent = data.template_id || "";
  const link = el.querySelector(".frame");
  link.href = `#meme=${data.id}`;
  if (data.status === "failed") {
    el.classList.add("failed");
    link.textContent = "render failed";
    link.removeAttribute("href");
  } else {
    const img = link.querySelector("img");
    img.alt = altText(data);
    img.src = imageUrl(data.id, "medium"); // one size in the list; the meme page has full
  }
  el.querySelector(".up").addEventListener("click", () => vote(data.id, 1));
  el.querySelector(".down").addEventListener("click", () => vote(data.id, -1));
  card.el = el; // render() puts it in place
  socket.subscribe([`meme:${data.id}`]); // presence: how many are looking at it
  renderVotes(card);
  if (!card.tallied) loadTally(card);
}

async function loadTally(card) {
  card.tallied = true;
  const version = card.version;
  try {
    const tally = await api(`/api/meme/${card.data.id}/votes`);
    if (card.version === version && !card.pending) {
      card.votes = tally.score;
      card.up = tally.up;
      card.down = tally.down;
      renderVotes(card);
    }
  } catch {
    card.tallied = false; // try again when it scrolls back in
  }
}

async function loadOlder() {
  if (loading || !nextUrl) return loading;
  list.setAttribute("aria-busy", "true");
  loading = (async () => {
    try {
      const response = await fetch(nextUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = await response.json();
      const link = response.headers.get("Link");
      nextUrl = link ? (/<([^>]+)>;\s*rel="next"/.exec(link)?.[1] ?? null) : null;
      const known = new Set(timeline);
      for (const data of page) {
        cardFor(data);
        if (!known.has(data.id)) timeline.push(data.id);
      }
      if (!nextUrl) $("feed-end").textContent = timeline.length ? "That's all of them." : "";
    } catch {
      setTimeout(() => schedule(), 3000); // keep nextUrl: the next scroll or timer retries
    } finally {
      loading = null;
      list.setAttribute("aria-busy", "false");
      schedule();
    }
  })();
  return loading;
}

// ---- new memes: one "N new" button --------------------------------------------------------

function announce(data) {
  if (cards.has(data.id) && (timeline.includes(data.id) || fresh.includes(data.id))) return;
  cardFor(data);
  fresh.unshift(data.id);
  newButton.hidden = false;
  newButton.textContent = `${fresh.length} new meme${fresh.length === 1 ? "" : "s"}`;
}

async function showFresh() {
  const ids = fresh;
  fresh = [];
  newButton.hidden = true;
  try { // their captions (for the alt text) without counting a view of each
    const page = await api(`/api/meme/recent?limit=${Math.min(100, Math.max(ids.length, PAGE))}`);
    for (const data of page) if (ids.includes(data.id)) cardFor(data);
  } catch { /* the template name stands in for the captions */ }
  const shown = new Set(timeline);
  timeline = [...ids.filter((id) => !shown.has(id)), ...timeline];
  window.scrollTo({ top: 0 });
  schedule();
  list.querySelector(`[data-meme-id="${ids[0]}"] .frame`)?.focus();
}
newButton.addEventListener("click", showFresh);

// ---- votes ---------------------------------------------------------------------------------

function renderVotes(card) {
  for (const host of [card.el, openMeme === card.data.id ? memePage : null]) {
    if (!host) continue;
    host.querySelector(".count").textContent = String(card.votes);
    host.querySelector(".up").classList.toggle("active", card.mine === 1);
    host.querySelector(".up").setAttribute("aria-pressed", String(card.mine === 1));
    host.querySelector(".down").classList.toggle("active", card.mine === -1);
    host.querySelector(".down").setAttribute("aria-pressed", String(card.mine === -1));
    const sync = host.querySelector(".sync");
    if (sync) sync.textContent = card.pending ? (card.pending.queued ? "queued" : "…") : "";
    host.dataset.sync = card.pending ? (card.pending.queued ? "queued" : "sending") : "synced";
  }
  if (openMeme === card.data.id && typeof card.up === "number") {
    memePage.querySelector(".tally").textContent = `${card.up} up · ${card.down} down`;
  }
}

// Optimistic: the count moves now; the ack (or a later vote-count event) sets the truth.
function vote(memeId, direction) {
  const card = cards.get(memeId);
  if (!card) return;
  const value = card.mine === direction ? 0 : direction;
  card.votes += value - card.mine;
  card.version++;
  const before = { mine: card.mine };
  card.mine = value;
  const voteId = crypto.randomUUID();
  card.pending = { value, voteId, before, queued: false };
  renderVotes(card);
  send({ id: memeId, meme_id: memeId, value, vote_id: voteId });
}

async function send(item) {
  const card = cards.get(item.meme_id);
  if (!socket.online) {
    votesQueue.put(item.id, item);
    if (card?.pending) card.pending.queued = true;
    if (card) renderVotes(card);
    showQueued();
    notify("Offline: your vote is queued and syncs when you are back", { kind: "warn" });
    return;
  }
  votesQueue.put(item.id, item); // until acknowledged, so a reload cannot lose it
  showQueued();
  let ack;
  try {
    ack = await socket.request({ type: "vote", meme_id: item.meme_id, value: item.value,
                                 vote_id: item.vote_id });
  } catch {
    if (card?.pending) card.pending.queued = true;
    if (card) renderVotes(card);
    return; // stays queued; flushed on reconnect
  }
  if (!ack.ok && ack.retry) { // stays queued
    if (ack.retry_after) { // rate-limited: the server says when
      notify(`Too many votes: retrying in ${ack.retry_after} s`, { kind: "warn" });
      setTimeout(() => send(item), ack.retry_after * 1000);
    }
    return;
  }
  votesQueue.remove(item.id);
  showQueued();
  if (!card) return;
  if (card.pending?.voteId === item.vote_id) card.pending = null;
  card.version++;
  if (ack.ok) {
    if (typeof ack.score === "number") card.votes = ack.score;
    if (typeof ack.up === "number") Object.assign(card, { up: ack.up, down: ack.down });
    card.mine = ack.value;
  } else {
    card.votes -= card.mine;
    card.mine = 0;
    notify(ack.error === "login-required" ? "Sign in to vote" : `Vote refused: ${ack.error}`,
           { kind: "error" });
  }
  renderVotes(card);
}

async function flushQueue() {
  const items = votesQueue.items();
  for (const item of items) await send(item);
  if (items.length) notify(`${items.length} queued vote${items.length > 1 ? "s" : ""} synced`);
}

// ---- the meme page -------------------------------------------------------------------------

async function route() {
  const id = location.hash.startsWith("#meme=")
    ? new URLSearchParams(location.hash.slice(1)).get("meme") : null;
  if (!id && openMeme === null && location.hash) return; // an in-page anchor (skip link)
  const leaving = openMeme;
  openMeme = id;
  memePage.hidden = !id;
  timelineSection.hidden = Boolean(id);
  if (!id) {
    schedule();
    if (leaving) list.querySelector(`[data-meme-id="${leaving}"] .frame`)?.focus();
    return;
  }
  const title = $("meme-title");
  const img = $("meme-image");
  title.textContent = "Loading…";
  img.removeAttribute("src");
  $("meme-captions").replaceChildren();
  memePage.querySelector(".tally").textContent = "";
  window.scrollTo({ top: 0 });
  let data;
  try {
    data = await api(`/api/meme/${id}`);
  } catch {
    if (openMeme === id) title.textContent = "This meme is gone";
    return;
  }
  if (openMeme !== id) return;
  const card = cardFor(data);
  title.textContent = `${data.template_id} meme`;
  img.alt = altText(data);
  img.src = imageUrl(id, "full");
  $("meme-captions").replaceChildren(...data.texts.filter((t) => t).map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  renderVotes(card);
  card.tallied = false;
  await loadTally(card);
  title.focus({ preventScroll: true });
}
$("meme-title").tabIndex = -1;
memePage.querySelector(".up").addEventListener("click", () => vote(openMeme, 1));
memePage.querySelector(".down").addEventListener("click", () => vote(openMeme, -1));
memePage.querySelector(".back").addEventListener("click", (e) => {
  e.preventDefault();
  history.pushState(null, "", location.pathname);
  route();
});
window.addEventListener("hashchange", route);

// ---- live events and the trending board ----------------------------------------------------

function onEvent(data) {
  switch (data.kind) {
    case "rendered":
    case "failed":
      return announce({ id: data.meme_id, template_id: data.template_id, status: data.kind,
                        votes: data.votes });
    case "votes": {
      const card = cards.get(data.meme_id);
      if (card && !card.pending && typeof data.votes === "number") {
        card.votes = data.votes;
        card.version++;
        renderVotes(card);
      }
      return card;
    }
    case "deleted":
      timeline = timeline.filter((id) => id !== data.meme_id);
      fresh = fresh.filter((id) => id !== data.meme_id);
      cards.get(data.meme_id)?.el?.remove();
      cards.delete(data.meme_id);
      schedule();
      return null;
    case "trending":
      loadTrending();
      return null;
    default:
      return null;
  }
}

let trendingTimer = null;
function loadTrending() {
  clearTimeout(trendingTimer);
  trendingTimer = setTimeout(async () => {
    try {
      const page = await api("/api/meme/trending?window=24h&limit=10");
      board.replaceChildren(...page.items.map((item) => {
        const li = document.createElement("li");
        li.dataset.memeId = item.meme_id;
        li.innerHTML = `<a class="trend" data-testid="trending-link">
          <img alt="" loading="lazy" width="48" height="48">
          <span><span class="visually-hidden">Score </span><span class="score"></span></span>
          <span><span class="visually-hidden">, meme </span><code class="id"></code></span></a>`;
        li.querySelector("a").href = `#meme=${item.meme_id}`;
        li.querySelector(".id").textContent = item.meme_id.slice(-6);
        const img = li.querySelector("img");
        img.onerror = () => img.classList.add("missing");
        img.src = imageUrl(item.meme_id, "thumb");
        li.querySelector(".score").textContent = item.score.toFixed(1);
        return li;
      }));
    } catch {
      /* the board is a nicety: keep the last one */
    }
  }, 300);
}

socket.addEventListener("open", () => {
  setConnection("live", "live");
  flushQueue();
});
socket.addEventListener("close", () => {
  setConnection("reconnecting…", "down");
  notify("Connection lost, reconnecting", { kind: "warn" });
});
socket.addEventListener("event", (e) => onEvent(e.detail.data));
socket.addEventListener("reload", () => {
  notify("You were away too long: refreshing the board", { kind: "warn" });
  loadTrending();
});
socket.addEventListener("presence", (e) => {
  const card = cards.get(e.detail.room.slice("meme:".length));
  if (card?.el) card.el.querySelector(".viewers").textContent = `👀 ${e.detail.count}`;
});
window.addEventListener("offline", () => setConnection("offline", "down"));
window.addEventListener("scroll", schedule, { passive: true });
window.addEventListener("resize", () => {
  measure();
  schedule();
});

measure();
showQueued();
loadTrending();
route();
loadOlder();
socket.start();
