// Offline first. The server prepends `self.SHELL_VERSION` and `self.SHELL_FILES` (a hash of
// api/static and the files to precache, api/routes/web.py), so a deploy that changes any file
// changes this script's bytes: the browser installs the new worker, which precaches the new
// shell under a new name and deletes the old one.
//
// - pages: network first (a fresh deploy wins), the cached copy when the network fails,
//   answers 5xx or has not answered within NETWORK_WAIT_MS (it still refreshes the cache);
// - /static/: the precached shell (it is versioned as a whole, so cache first is safe);
// - the template list, search and records, and meme images: network first like pages,
//   bounded (a meme deleted or hidden by moderation is gone as soon as the network answers);
// - template previews and animations, caption fonts and filter constants: the cached copy at
//   once, refreshed in the background (a deploy may change a catalog template's artwork
//   under the same id), bounded.
const SHELL = `memestream-shell-${self.SHELL_VERSION}`;
const DATA = "memestream-data-v1";
const IMAGES = "memestream-images-v1";
const DATA_LIMIT = 100;
const IMAGE_LIMIT = 300;
const NETWORK_WAIT_MS = 4000;
const PAGES = new Set(["/", "/feed", "/templates"]);
// What the editor draws captions and filters with (the renderer's fonts, their metrics, the
// filters' constants): kept like previews, so the editor still draws offline.
const DRAWING = /^\/(fonts\/[^/]+|api\/fonts\/[^/]+|api\/render\/filters)$/;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(self.SHELL_FILES)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("memestream-shell-") && name !== SHELL) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && PAGES.has(url.pathname)) {
    event.respondWith(networkFirst(event, SHELL, url.pathname));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(cacheFirst(request, SHELL));
  } else if (/^\/api\/templates\/[^/]+\/(preview|animation)$/.test(url.pathname)
             || DRAWING.test(url.pathname)) {
    event.respondWith(staleWhileRevalidate(event, IMAGES, IMAGE_LIMIT));
  } else if (/^\/api\/meme\/[^/]+\/image$/.test(url.pathname)) {
    event.respondWith(networkFirst(event, IMAGES, request, IMAGE_LIMIT));
  } else if (url.pathname === "/api/templates" || url.pathname.startsWith("/api/templates/")) {
    event.respondWith(networkFirst(event, DATA, request, DATA_LIMIT));
  }
});

// `key`: pages are cached by path, whatever their query (`/?draft=...` opens `/`).
async function networkFirst(event, name, key, limit = 0) {
  const cache = await caches.open(name);
  const network = fetch(event.request).then(async (response) => {
    if (response.ok) {
      await cache.put(key, response.clone());
      if (limit) await trim(cache, limit);
    }
    return response;
  });
  event.waitUntil(network.catch(() => null)); // a late answer still refreshes the cache
  const cached = await cache.match(key);
  if (!cached) return network;
  const late = new Promise((resolve) => setTimeout(() => resolve(cached), NETWORK_WAIT_MS));
  try {
    const response = await Promise.race([network, late]);
    return response.status >= 500 ? cached : response;
  } catch {
    return cached;
  }
}

async function cacheFirst(request, name) {
  const cache = await caches.open(name);
  return (await cache.match(request)) || fetch(request);
}

async function staleWhileRevalidate(event, name, limit) {
  const cache = await caches.open(name);
  const cached = await cache.match(event.request);
  const network = fetch(event.request).then(async (response) => {
    if (response.ok) {
      await cache.put(event.request, response.clone());
      await trim(cache, limit);
    }
    return response;
  });
  if (!cached) return network;
  event.waitUntil(network.catch(() => null));
  return cached;
}

// Oldest entries first (keys() keeps insertion order).
async function trim(cache, limit) {
  const keys = await cache.keys();
  for (const key of keys.slice(0, Math.max(0, keys.length - limit))) await cache.delete(key);
}
