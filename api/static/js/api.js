// REST helpers and the signed-in user. Errors are RFC 9457 problem documents.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// `body`: JSON, or FormData sent as multipart (the browser sets its boundary).
export async function api(path, { method = "GET", body, signal, headers = {} } = {}) {
  const form = body instanceof FormData;
  const response = await fetch(path, {
    method,
    signal,
    credentials: "same-origin",
    headers: body === undefined || form ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined || form ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

let me = null;
export async function currentUser() {
  try {
    me = await api("/api/auth/me");
  } catch {
    me = null;
  }
  return me;
}

export async function login(username, password, { register = false } = {}) {
  if (register) await api("/api/auth/register", { method: "POST", body: { username, password } });
  const session = await api("/api/auth/login", { method: "POST", body: { username, password } });
  me = session.user;
  return me;
}

export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } finally {
    me = null;
  }
}

// A stable anonymous id for this browser: presence and drafts work before signing in.
export function deviceId() {
  let id = localStorage.getItem("memestream:device");
  if (!id) {
    id = `anon-${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    localStorage.setItem("memestream:device", id);
  }
  return id;
}

// The header's account box: sign in / register / sign out, shared by both pages.
// `onChange(user, initial)`: initial is true for the first answer after page load.
export function mountAccount(el, onChange) {
  const render = (user) => {
    el.replaceChildren();
    if (user) {
      const who = document.createElement("span");
      who.dataset.testid = "whoami";
      who.textContent = `@${user.username}`;
      const out = button("Sign out", async () => {
        await logout();
        render(null);
        onChange?.(null);
      });
      el.append(who, out);
      return;
    }
    const form = document.createElement("form");
    form.className = "login";
    form.innerHTML = `
      <input name="username" placeholder="username" aria-label="Username" autocomplete="username"
             required minlength="3">
      <input name="password" type="password" placeholder="password" aria-label="Password"
             autocomplete="current-password" required minlength="8">
      <button name="login">Sign in</button><button name="register" type="button">Register</button>`;
    const submit = async (register) => {
      const data = new FormData(form);
      try {
        const user = await login(data.get("username"), data.get("password"), { register });
        render(user);
        onChange?.(user);
      } catch (err) {
        const { notify } = await import("./notify.js");
        notify(err.message, { kind: "error" });
      }
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submit(false);
    });
    form.elements.register.addEventListener("click", () => form.reportValidity() && submit(true));
    el.append(form);
  };
  currentUser().then((user) => {
    render(user);
    onChange?.(user, true);
  });
}

function button(text, onclick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.addEventListener("click", onclick);
  return b;
}
