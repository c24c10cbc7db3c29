// Bench row 5: a reply of 10,000 deltas rendered by the real UI (the built test harness: the real
// app behind a mocked Tauri IPC) in headless Chromium, against appending the same text to a bare
// <pre> in the same browser. Measures main-thread task time (CDP Performance metrics), wall time
// until the last word is on screen, and the longest frame (largest gap between animation frames
// while streaming). Prints one JSON line; scripts/bench hands it to clawtray-bench.
import { serveHarness, launchChromium } from "../tests/harness.mjs";

const N = Number(process.env.DELTAS ?? 10000);
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
const ours = await browser.newPage({ viewport: { width: 720, height: 640 } });
await ours.goto(base + "?preset=paired");
await ours.waitForSelector("#message");
await ours.fill("#message", "Tell me a long story");
await ours.press("#message", "Enter");
await ours.waitForSelector('.msg.user[data-id="msg-1"]');
await ours.evaluate(() => window.__clawtray.emitMany([{ kind: "chat", message: { type: "chat_ack", id: "msg-1", run_id: "r1" } }]));
const oursResult = await measure(
  ours,
  () => ours.evaluate((ws) => window.__clawtray.emitMany(ws.map((t, i) => ({ kind: "chat", message: { type: "chat_delta", run_id: "r1", seq: i + 1, text: t } }))), words),
  (n) => document.querySelector('.msg.agent[data-run="r1"] .body')?.textContent.includes(`w${n}`),
);

// the floor: the same deltas, one microtask each, appended to a bare <pre>
const bare = await browser.newPage({ viewport: { width: 720, height: 640 } });
await bare.goto(base + "bare");
const bareResult = await measure(
  bare,
  () =>
    bare.evaluate(async (ws) => {
      const text = document.createTextNode("");
      document.getElementById("out").appendChild(text);
      for (const t of ws) {
        await Promise.resolve();
        text.appendData(t);
      }
    }, words),
  (n) => document.getElementById("out").textContent.includes(`w${n}`),
);

console.log(JSON.stringify({ deltas: N, ours: oursResult, bare: bareResult }));
await browser.close();
server.close();
