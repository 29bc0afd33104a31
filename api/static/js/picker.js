// Template picker: search (server-side, debounced, with a local fallback) over a
// virtual-scrolled grid: only the rows in view exist in the DOM, and each thumbnail is
// fetched when its cell scrolls into view.
import { api } from "./api.js";

const CELL = 132; // px, square cells including the gap

export class TemplatePicker {
  constructor(grid, search, onPick) {
    this.grid = grid;
    this.spacer = grid.querySelector(".grid-spacer");
    // Said, not a blank grid, when a search finds nothing.
    this.empty = document.createElement("p");
    this.empty.className = "grid-empty";
    this.empty.dataset.testid = "template-empty";
    this.empty.setAttribute("role", "status");
    this.empty.hidden = true;
    grid.append(this.empty);
    this.search = search;
    this.onPick = onPick;
    this.all = [];
    this.items = [];
    this.cells = new Map();
    this.selected = null;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        const img = entry.target;
        if (img.dataset.src) {
          img.src = img.dataset.src;
          delete img.dataset.src;
        }
        this.observer.unobserve(img);
      }
    }, { root: grid, rootMargin: "200px" });
    grid.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(grid);
    let timer;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.filter(search.value.trim()), 150);
    });
  }

  async load() {
    const pages = [];
    for (let offset = 0; ; offset += 200) {
      const page = await api(`/api/templates?limit=200&offset=${offset}`);
      pages.push(...page);
      if (page.length < 200) break;
    }
    this.all = pages;
    this.show(this.all);
    return this.all;
  }

  async filter(q) {
    if (!q) return this.show(this.all);
    let found;
    try {
      found = await api(`/api/templates/search?q=${encodeURIComponent(q)}&limit=100`);
    } catch { // offline: the list we have
      const needle = q.toLowerCase();
      found = this.all.filter((t) =>
        [t.id, t.name, t.category, ...(t.tags || [])].join(" ").toLowerCase().includes(needle));
    }
    if (this.search.value.trim() === q) this.show(found, q); // not an answer to older typing
  }

  show(items, query = "") {
    this.items = items;
    this.empty.hidden = items.length > 0;
    this.empty.textContent = query
      ? `No template matches “${query}”.`
      : "No templates yet: upload one on the Templates page.";
    for (const cell of this.cells.values()) cell.remove();
    this.cells.clear();
    this.grid.scrollTop = 0;
    this.render();
  }

  render() {
    const columns = Math.max(1, Math.floor(this.grid.clientWidth / CELL));
    const rows = Math.ceil(this.items.length / columns);
    this.spacer.style.height = `${rows * CELL}px`;
    const first = Math.max(0, Math.floor(this.grid.scrollTop / CELL) - 1);
    const last = Math.min(rows, Math.ceil((this.grid.scrollTop + this.grid.clientHeight) / CELL) + 1);
    const wanted = new Set();
    for (let row = first; row < last; row++) {
      for (let col = 0; col < columns; col++) {
        const index = row * columns + col;
        if (index >= this.items.length) break;
        wanted.add(index);
        let cell = this.cells.get(index);
        if (!cell) {
          cell = this.cell(this.items[index]);
          this.cells.set(index, cell);
          this.grid.append(cell);
        }
        cell.style.transform = `translate(${col * CELL}px, ${row * CELL}px)`;
      }
    }
    for (const [index, cell] of this.cells) {
      if (!wanted.has(index)) {
        cell.remove();
        this.cells.delete(index);
      }
    }
  }

  cell(template) {
    const button = document.createElement("button");
    button.className = "cell";
    button.dataset.templateId = template.id;
    button.dataset.testid = `template-${template.id}`;
    button.title = template.description || template.name;
    button.classList.toggle("selected", template.id === this.selected);
    const img = document.createElement("img");
    img.alt = template.name;
    img.width = 112;
    img.height = 84;
    img.dataset.src = `/api/templates/${template.id}/preview?width=160`;
    this.observer.observe(img);
    const label = document.createElement("span");
    label.textContent = template.name;
    button.append(img, label);
    button.addEventListener("click", () => this.pick(template.id));
    return button;
  }

  pick(id) {
    this.selected = id;
    for (const cell of this.cells.values()) {
      cell.classList.toggle("selected", cell.dataset.templateId === id);
    }
    const template = this.all.find((t) => t.id === id) || this.items.find((t) => t.id === id);
    if (template) this.onPick(template);
  }
}
