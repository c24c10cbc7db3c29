// Markdown for replies: rendered with `marked`, then sanitised with DOMPurify (scripts, event
// handlers, javascript: URLs and the like never survive), and code blocks get copy buttons.
// Links are plain links: a click is a navigation, which the window's navigation policy (Rust,
// `src-tauri/src/windows.rs`) turns into "open in the system browser" — the web view never
// leaves the app's page.
//
// A streaming reply is rendered block by block (`StreamingMarkdown`): each frame re-lexes the text
// (cheap) but rebuilds only the top-level blocks that changed since the last frame — in practice
// the last one — so a long reply's frames stay as short as a short reply's. When the reply ends it
// gets one whole render, so what stays on screen is exactly what `renderMarkdown` gives.
import DOMPurify from "dompurify";
import { marked, type TokensList } from "marked";

marked.setOptions({ gfm: true, breaks: true });

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.removeAttribute("target");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Markdown tokens to sanitised DOM nodes, with copy buttons on code blocks. */
function toNodes(tokens: TokensList): Node[] {
  const html = marked.parser(tokens);
  const clean = DOMPurify.sanitize(html, {
    FORBID_TAGS: ["style", "form", "input", "button", "iframe", "object", "embed", "svg", "math"],
    FORBID_ATTR: ["style"],
  });
  const template = document.createElement("template");
  template.innerHTML = clean;
  for (const pre of template.content.querySelectorAll("pre")) addCopyButton(pre);
  return [...template.content.childNodes];
}

function addCopyButton(pre: HTMLPreElement): void {
  const copy = document.createElement("button");
  copy.className = "copy";
  copy.type = "button";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  copy.addEventListener("click", () => {
    const code = pre.querySelector("code")?.textContent ?? pre.textContent ?? "";
    void navigator.clipboard?.writeText(code).then(
      () => (copy.textContent = "Copied"),
      () => (copy.textContent = "Copy failed"),
    );
    setTimeout(() => (copy.textContent = "Copy"), 1500);
  });
  pre.prepend(copy);
}

/** Render `text` into `target`, replacing its content. */
export function renderMarkdown(target: HTMLElement, text: string): void {
  target.replaceChildren(...toNodes(marked.lexer(text)));
}

/** Top-level blocks rendered together: their sources and the nodes they became. */
interface Group {
  raws: string[];
  nodes: Node[];
}

/**
 * A reply's body while it streams: re-renders only the blocks a delta changed. Blocks are kept in
 * groups — everything settled when a frame rendered, then that frame's last block on its own (the
 * one the next delta most likely extends) — so a frame costs at most two sanitiser passes.
 */
export class StreamingMarkdown {
  private groups: Group[] = [];
  /** Reference-style link definitions of the last render; when they change, every block may. */
  private links = "";

  constructor(private readonly target: HTMLElement) {}

  /** Show `text`, the whole reply so far. */
  update(text: string): void {
    const tokens = marked.lexer(text);
    const links = JSON.stringify(tokens.links);
    let keptGroups = 0;
    let keptTokens = 0;
    if (links === this.links) {
      for (const g of this.groups) {
        if (!g.raws.every((raw, i) => tokens[keptTokens + i]?.raw === raw)) break;
        keptGroups++;
        keptTokens += g.raws.length;
      }
    }
    this.links = links;
    for (const stale of this.groups.splice(keptGroups)) for (const n of stale.nodes) n.parentNode?.removeChild(n);
    const fresh = tokens.slice(keptTokens);
    const settled = fresh.slice(0, -1);
    const live = fresh.slice(-1);
    for (const part of [settled, live]) {
      if (part.length === 0) continue;
      const nodes = toNodes(Object.assign(part, { links: tokens.links }));
      this.target.append(...nodes);
      this.groups.push({ raws: part.map((t) => t.raw), nodes });
    }
  }

  /** The reply ended with `text`: one whole render, as a finished reply is always shown. */
  finish(text: string): void {
    renderMarkdown(this.target, text);
    this.groups = [];
    this.links = "";
  }
}
