// Installs the service worker (/sw.js, scope /). A page's first visit loads before the worker
// controls it, so what it fetched then is not cached: once the worker takes control, `warm()`'s
// URLs (the template list and images on screen) are fetched again through it, and one online
// visit is enough for the page to open offline. A worker replacing an earlier one means a
// new deploy: the page says so rather than reloading under the user's hands.
import { notify } from "./notify.js";

export async function installServiceWorker(warm = async () => []) {
  if (!("serviceWorker" in navigator)) return null;
  const fill = async () => {
    for (const url of await warm()) await fetch(url).catch(() => null);
    document.body.dataset.offlineReady = "true";
  };
  let controlled = Boolean(navigator.serviceWorker.controller);
  if (controlled) fill();
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (controlled) notify("Memestream was updated: reload the page for the new version", { ms: 10000 });
    else fill();
    controlled = true;
  });
  try {
    return await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  } catch (err) {
    console.warn("service worker not installed:", err);
    return null;
  }
}
