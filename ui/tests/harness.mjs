// What the browser tests and the streaming bench share: the built test harness (dist-test) served
// on 127.0.0.1, and headless Chromium.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { chromium } from "playwright-core";

const dist = join(resolve(import.meta.dirname, ".."), "dist-test");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

// Serve dist-test ("/" is the test harness); `extra` maps other paths to HTML of their own.
// Resolves to { server, base } with base like "http://127.0.0.1:PORT/".
export async function serveHarness(extra = {}) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path in extra) {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(extra[path]);
    }
    const file = join(dist, path === "/" ? "test-harness.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}

// Headless Chromium ($CHROMIUM, or Debian's), quiet and offline.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}
