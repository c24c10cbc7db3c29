// Small inline SVG icons (no icon font: the system may have no emoji or symbol glyphs).
const NS = "http://www.w3.org/2000/svg";

function icon(paths: string[], cls: string): SVGSVGElement {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon-svg ${cls}`);
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

/** A paperclip (attach files). */
export const paperclip = () => icon(["M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9"], "paperclip");

/** A framed picture (an image whose bytes are not here: shown by name). */
export const imageIcon = () => icon(["M4.5 4h15A1.5 1.5 0 0 1 21 5.5v13a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 18.5v-13A1.5 1.5 0 0 1 4.5 4z", "M3 16l5-5 4 4 3-3 6 6", "M15.5 8.5h.01"], "image");

/** A sheet of paper with a folded corner (a file that is not an image). */
export const fileIcon = () => icon(["M14 3H6.5A1.5 1.5 0 0 0 5 4.5v15A1.5 1.5 0 0 0 6.5 21h11a1.5 1.5 0 0 0 1.5-1.5V8z", "M14 3v5h5"], "file");
