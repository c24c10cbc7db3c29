// Files attached to the message being written: picked with the paperclip, dropped on the window
// or pasted. Each is checked against the agent's gateway's limits (the same rules as the core,
// which checks again) the moment it is added, so an oversized, empty or surplus file gets a
// sentence before anything is sent. Shown as chips above the composer — images as thumbnails
// from the file itself (a blob: URL; nothing is fetched) — and read as base64 only on Send.
import { el } from "./dom";
import { fileIcon } from "./icons";
import type { FileLimits, WireFile } from "./types";

/** The gateway's defaults (20 MB a file, 6 MiB an image, a 25 MiB frame), until the agent says. */
export const DEFAULT_LIMITS: FileLimits = (() => {
  const maxMessage = Math.floor((25 * 1024 * 1024 - 64 * 1024) / 4) * 3;
  return { max_bytes: Math.min(20 * 1024 * 1024, maxMessage), max_image_bytes: 6 * 1024 * 1024, max_message_bytes: maxMessage };
})();
export const MAX_FILES = 10;

/** A size for people: `5.0 MB`, `640 KB` (as the core says it). */
export function size(bytes: number): string {
  return bytes >= 1_000_000 ? `${(bytes / 1_000_000).toFixed(1)} MB` : `${Math.ceil(bytes / 1000)} KB`;
}

/** A file as a sent message shows it. */
export interface ShownFile {
  name: string;
  /** Bytes, when known. */
  size?: number;
  /** An image (shown by name when there is no thumbnail). */
  image?: boolean;
  /** A blob: URL of the image itself (images only). */
  thumb?: string;
}

const mimeOf = (f: File) => f.type || "application/octet-stream";
const isImage = (f: File) => mimeOf(f).startsWith("image/");

/** Why `file` cannot join `current` (null: it can). */
export function refusal(file: File, current: File[], limits: FileLimits): string | null {
  const name = file.name || "file";
  if (file.size === 0) return `“${name}” is empty; there is nothing to send`;
  if (isImage(file) && file.size > limits.max_image_bytes)
    return `“${name}” is ${size(file.size)} — images up to ${size(limits.max_image_bytes)} can be sent`;
  if (file.size > limits.max_bytes) return `“${name}” is ${size(file.size)} — files up to ${size(limits.max_bytes)} can be sent`;
  if (current.length >= MAX_FILES) return `one message can carry at most ${MAX_FILES} files`;
  const total = current.reduce((n, f) => n + f.size, file.size);
  if (total > limits.max_message_bytes)
    return `these files are ${size(total)} together — one message can carry ${size(limits.max_message_bytes)}; send them in several messages`;
  return null;
}

/** The bytes of `f`, base64 (read by the browser, not by script loops). */
function base64(f: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const url = String(r.result);
      resolve(url.slice(url.indexOf(",") + 1));
    };
    r.onerror = () => reject(new Error(`“${f.name}” could not be read: ${r.error?.message ?? "unknown error"}`));
    r.readAsDataURL(f);
  });
}

export class Attachments {
  readonly root: HTMLElement;
  readonly error: HTMLElement;
  limits: FileLimits = DEFAULT_LIMITS;
  private files: { file: File; thumb?: string; chip: HTMLElement }[] = [];

  constructor(private onChange: () => void) {
    this.root = el("ul", { class: "attachments", "aria-label": "Attached files" });
    this.error = el("p", { class: "attach-error", role: "alert", hidden: "" });
  }

  get count(): number {
    return this.files.length;
  }

  /** Add files; those that cannot go get one sentence (the first reason), the rest are added. */
  add(list: Iterable<File>): void {
    const refused: string[] = [];
    for (const file of list) {
      const why = refusal(
        file,
        this.files.map((x) => x.file),
        this.limits,
      );
      if (why) {
        refused.push(why);
        continue;
      }
      const thumb = isImage(file) ? URL.createObjectURL(file) : undefined;
      const remove = el("button", { type: "button", class: "remove", title: `Remove ${file.name}`, "aria-label": `Remove ${file.name}` }, "×");
      const chip = el(
        "li",
        { class: "attachment" },
        thumb ? el("img", { class: "thumb", src: thumb, alt: "" }) : fileIcon(),
        el("span", { class: "name" }, file.name || "file"),
        el("span", { class: "size" }, size(file.size)),
        remove,
      );
      const entry = { file, thumb, chip };
      remove.addEventListener("click", () => {
        this.files = this.files.filter((x) => x !== entry);
        if (thumb) URL.revokeObjectURL(thumb);
        chip.remove();
        this.onChange();
      });
      this.files.push(entry);
      this.root.append(chip);
    }
    this.say(refused.length ? refused[0] + (refused.length > 1 ? ` (and ${refused.length - 1} more not added)` : "") : null);
    this.onChange();
  }

  /** Show (or clear) a sentence about the files. */
  say(text: string | null): void {
    this.error.hidden = text === null;
    this.error.textContent = text ?? "";
  }

  /** The files, read for sending, and how the sent message shows them. */
  async read(): Promise<{ wire: WireFile[]; shown: ShownFile[] }> {
    const wire = await Promise.all(this.files.map(async ({ file }) => ({ name: file.name || "file", mime: mimeOf(file), data: await base64(file) })));
    const shown = this.files.map(({ file, thumb }) => ({ name: file.name || "file", size: file.size, ...(thumb ? { thumb } : {}) }));
    return { wire, shown };
  }

  /** Sent: the chips go (their thumbnails now belong to the sent message). */
  clear(): void {
    this.files = [];
    this.root.replaceChildren();
    this.say(null);
    this.onChange();
  }
}
