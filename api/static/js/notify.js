// In-page notifications: small toasts, newest on top, gone after a few seconds.
const host = () => {
  let el = document.getElementById("toasts");
  if (!el) {
    el = document.createElement("div");
    el.id = "toasts";
    el.setAttribute("role", "status");
    el.setAttribute("aria-live", "polite");
    document.body.append(el);
  }
  return el;
};

export function notify(text, { kind = "info", ms = 4000 } = {}) {
  if (kind === "error") console.error(text); // toasts go; the console keeps them
  const toast = document.createElement("div");
  toast.className = `toast toast-${kind}`;
  toast.textContent = text;
  host().prepend(toast);
  while (host().children.length > 5) host().lastElementChild.remove();
  setTimeout(() => toast.remove(), ms);
  return toast;
}
