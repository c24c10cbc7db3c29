// Bench row 5: a reply of 10,000 deltas rendered by the real UI (the built test harness: the real
// app behind a mocked Tauri IPC) in headless Chromium, against appending the same text to a bare
// <pre> in the same browser. Measures main-thread task time (CDP Performance metrics), wall time
// until the last word is on screen, and the longest frame (largest gap between animation frames
// while streaming). Two arrivals: a burst (all deltas at once, as after a reconnect) and paced
// (PER_FRAME deltas each animation frame, as a model streams — here the render work per frame is
// what counts). Prints one JSON line; scripts/bench hands it to clawtray-bench.
import { serveHarness, launchChromium } from "../tests/harness.mjs";

const N = Number(process.env.DELTAS ?? 10000);
const PER_FRAME = Number(process.env.DELTAS_PER_FRAME ?? 25);
const { server, base } = await serveHarness({ "/bare": "<!doctype html><meta charset=utf-8><pre id=out></pre>" });
const browser = await launchChromium();

const words = Array.from({ length: N }, (_, i) => (i % 50 === 49 ? `w${i + 1}\n\n` : `w${i + 1} `));

// a rAF loop that records the largest gap between frames
const frameProbe = () => {
  window.__gaps = { last: performance.now(), max: 0, on: true };
  const tick = (t) => {
    const g = window.__gaps;
    g.max = Math.max(g.max, t - g.last);
    g.last = t;
    if (g.on) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
};

async function measure(page, run, done) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const task = async () => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration").value;
  await page.evaluate(frameProbe);
  const t0 = await task();
  const w0 = Date.now();
  await run();
  await page.waitForFunction(done, N, { polling: "raf", timeout: 300000 });
  const wall = Date.now() - w0;
  const t1 = await task();
  const longest = await page.evaluate(() => {
    window.__gaps.on = false;
    return window.__gaps.max;
  });
  return { task_ms: (t1 - t0) * 1000, wall_ms: wall, longest_frame_ms: longest };
}

// ours: the real UI, paired, a message sent, then the deltas as Tauri events
async function oursPage() {
  const page = await browser.newPage({ viewport: { width: 720, height: 640 } });
  await page.goto(base + "?preset=paired");
  await page.waitForSelector("#message");
  await page.fill("#message", "Tell me a long story");
  await page.press("#message", "Enter");
  await page.waitForSelector('.msg.user[data-id="msg-1"]');
  await page.evaluate(() => {
    window.__clawtray.emitMany([{ kind: "chat", message: { type: "chat_ack", id: "msg-1", run_id: "r1" } }]);
    let seq = 0;
    window.__feed = (ws) => window.__clawtray.emitMany(ws.map((text) => ({ kind: "chat", message: { type: "chat_delta", run_id: "r1", seq: ++seq, text } })));
  });
  return page;
}
const oursDone = (n) => document.querySelector('.msg.agent[data-run="r1"] .body')?.textContent.includes(`w${n}`);

// the floor: the same deltas, one microtask each, appended to a bare <pre>
async function barePage() {
  const page = await browser.newPage({ viewport: { width: 720, height: 640 } });
  await page.goto(base + "bare");
  await page.evaluate(() => {
    const out = document.createTextNode("");
    document.getElementById("out").appendChild(out);
    window.__feed = async (ws) => {
      for (const t of ws) {
        await Promise.resolve();
        out.appendData(t);
      }
    };
  });
  return page;
}
const bareDone = (n) => document.getElementById("out").textContent.includes(`w${n}`);

const burst = (page) => () => page.evaluate((ws) => window.__feed(ws), words);
const paced = (page) => () =>
  page.evaluate(
    async ([ws, per]) => {
      for (let i = 0; i < ws.length; i += per) {
        await window.__feed(ws.slice(i, i + per));
        await new Promise((r) => requestAnimationFrame(r));
      }
    },
    [words, PER_FRAME],
  );

const result = { deltas: N, per_frame: PER_FRAME };
for (const [name, arrival] of [["", burst], ["_paced", paced]]) {
  let page = await oursPage();
  result[`ours${name}`] = await measure(page, arrival(page), oursDone);
  page = await barePage();
  result[`bare${name}`] = await measure(page, arrival(page), bareDone);
}
console.log(JSON.stringify(result));
await browser.close();
server.close();
