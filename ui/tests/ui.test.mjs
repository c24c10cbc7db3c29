// The UI in real headless Chromium, against the built test harness (the real app behind a mocked
// Tauri IPC): pairing errors, a 2,000-delta stream, block-by-block streaming render, abort, queued messages, hostile markdown,
// and screenshots (light and dark) written to target/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { deflateSync } from "node:zlib";
import { join, resolve } from "node:path";
import { serveHarness, launchChromium } from "./harness.mjs";

const root = resolve(import.meta.dirname, "..");
const shots = join(root, "..", "target", "screenshots");

let server, base, browser;

before(async () => {
  ({ server, base } = await serveHarness());
  browser = await launchChromium();
  await mkdir(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function open(preset, { dark = false, width = 720 } = {}) {
  const page = await browser.newPage({ viewport: { width, height: 640 } });
  await page.emulateMedia({ colorScheme: dark ? "dark" : "light" });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + (preset ? `?preset=${preset}` : ""));
  page.errors = errors;
  return page;
}

const emit = (page, events) => page.evaluate((es) => window.__clawtray.emitMany(es), events);
const calls = (page, cmd) => page.evaluate((c) => window.__clawtray.calls.filter((x) => x.cmd === c), cmd);

test("the pairing dialog validates as you type and turns failures into sentences", async () => {
  const page = await open();
  await page.waitForSelector("#code");
  assert.equal(await page.isDisabled("#pair"), true);
  await page.fill("#code", "7351-k4q7");
  assert.match(await page.textContent("#code-hint"), /4 more characters/);
  await page.fill("#code", "7351-K4Q7-2MU0");
  assert.match(await page.textContent("#code-hint"), /"U" cannot appear/);
  await page.fill("#code", "7351 k4q7 2mxd");
  assert.match(await page.textContent("#code-hint"), /Ready: 7351-K4Q7-2MXD/);

  await page.evaluate(() => (window.__clawtray.answers.pair = { reject: { code: "WRONG_CODE", message: "the code did not match. Check it and try again — the agent will show a new code" } }));
  await page.click("#pair");
  await page.waitForFunction(() => document.querySelector("#pair-error").textContent.length > 0, null, { polling: 100 });
  assert.match(await page.textContent("#pair-error"), /^The code did not match\./);
  const [call] = await calls(page, "pair");
  assert.deepEqual(call.args, { code: "7351-K4Q7-2MXD", relay: "ws://127.0.0.1:8765" });

  await page.evaluate(() => (window.__clawtray.answers.pair = { reject: { code: "RELAY_UNREACHABLE", message: "cannot reach the relay at ws://127.0.0.1:8765: connection refused" } }));
  await page.click("#pair");
  await page.waitForFunction(() => document.querySelector("#pair-error").textContent.includes("Check your connection"), null, { polling: 100 });
  assert.equal(await page.isVisible("text=Try again"), true);

  await page.evaluate(() => (window.__clawtray.answers.pair = { reject: { code: "EXPIRED_CODE", message: "that code expired (codes live 10 minutes). Ask the agent for a new code" } }));
  await page.click("#pair");
  await page.waitForFunction(() => document.querySelector("#pair-error").textContent.startsWith("That code expired"), null, { polling: 100 });
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `pairing-${theme}.png`) });
  }
  assert.deepEqual(page.errors, []);
});

test("a reply of 2,000 deltas streams into one bubble without re-rendering the conversation", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  await page.fill("#message", "Tell me a long story");
  await page.press("#message", "Enter");
  await page.waitForSelector('.msg.user[data-id="msg-1"]');
  await page.evaluate(() => document.querySelector(".msg.user").setAttribute("data-marker", "same-node"));
  const events = [{ kind: "chat", message: { type: "chat_ack", id: "msg-1", run_id: "r1" } }, { kind: "chat", message: { type: "chat_typing", on: true } }];
  let expected = "";
  for (let i = 1; i <= 2000; i++) {
    const t = i % 50 === 0 ? `w${i}\n\n` : `w${i} `;
    expected += t;
    events.push({ kind: "chat", message: { type: "chat_delta", run_id: "r1", seq: i, text: t } });
  }
  events.push({ kind: "chat", message: { type: "chat_delta", run_id: "r1", seq: 1500, text: "DUPLICATE" } });
  await emit(page, events);
  await page.waitForFunction(() => document.querySelector('.msg.agent[data-run="r1"] .body').textContent.includes("w2000"), null, { polling: 100 });
  const text = await page.textContent('.msg.agent[data-run="r1"] .body');
  assert.equal(text.replace(/\s+/g, " ").trim(), expected.replace(/\s+/g, " ").trim());
  assert.equal(await page.locator(".msg.user[data-marker=same-node]").count(), 1, "the earlier bubble was not re-rendered");
  assert.equal(await page.locator(".msg").count(), 2);
  assert.equal(await page.isVisible("#abort"), true, "the running reply can be stopped");
  assert.equal(await page.isVisible(".typing"), true);
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `chat-streaming-${theme}.png`) });
  }
  await emit(page, [{ kind: "chat", message: { type: "chat_reply", run_id: "r1", text: "The end." } }, { kind: "chat", message: { type: "chat_typing", on: false } }]);
  await page.waitForFunction(() => document.querySelector('.msg.agent[data-run="r1"] .body').textContent.trim() === "The end.", null, { polling: 100 });
  assert.equal(await page.isVisible("#abort"), false);
  assert.match(await page.textContent('.msg.user[data-id="msg-1"] .mark'), /Delivered/);
  assert.deepEqual(page.errors, []);
});

test("a streaming reply rebuilds only the blocks a delta changed, and ends as one whole render", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  const body = '.msg.agent[data-run="r2"] .body';
  const shown = (needle) => page.waitForFunction(([sel, n]) => document.querySelector(sel)?.textContent.includes(n), [body, needle], { polling: 50 });
  let seq = 0;
  const deltas = (...texts) => emit(page, texts.map((text) => ({ kind: "chat", message: { type: "chat_delta", run_id: "r2", seq: ++seq, text } })));
  await emit(page, [{ kind: "chat", message: { type: "chat_ack", id: "m2", run_id: "r2" } }]);
  await deltas("First para", "graph, settled.\n\n", "Second");
  await shown("Second");
  await page.evaluate((sel) => document.querySelector(`${sel} > p`).setAttribute("data-marker", "first"), body);
  await deltas(" paragraph.\n\n```js\nlet a", " = 1;\n```\n\n- one\n- tw", "o\n\nSee [the docs][d].");
  await shown("the docs");
  assert.equal(await page.locator(`${body} p[data-marker=first]`).count(), 1, "a settled block is not rebuilt by later deltas");
  assert.equal(await page.textContent(`${body} pre code`), "let a = 1;\n", "a code block split across deltas renders whole");
  assert.equal(await page.locator(`${body} pre button.copy`).count(), 1);
  assert.equal(await page.locator(`${body} a`).count(), 0, "an undefined reference is not a link yet");
  const caret = () =>
    page.evaluate((sel) => {
      const b = document.querySelector(sel);
      const after = (e) => getComputedStyle(e, "::after").content;
      return { last: after(b.lastElementChild), body: after(b) };
    }, body);
  assert.deepEqual(await caret(), { last: '"▍"', body: "none" }, "the caret follows the last word streamed");
  await deltas("\n\n[d]: https://example.com/docs");
  await page.waitForSelector(`${body} a[href="https://example.com/docs"][rel="noopener noreferrer"]:not([target])`);
  const streamed = await page.innerHTML(body);
  const full = "First paragraph, settled.\n\nSecond paragraph.\n\n```js\nlet a = 1;\n```\n\n- one\n- two\n\nSee [the docs][d].\n\n[d]: https://example.com/docs";
  await emit(page, [{ kind: "chat", message: { type: "chat_reply", run_id: "r2", text: full } }]);
  await page.waitForFunction((sel) => !document.querySelector(sel).closest(".msg").classList.contains("streaming"), body, { polling: 50 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.equal(await page.innerHTML(body), streamed.replace(' data-marker="first"', ""), "block-by-block rendering shows what one whole render shows");
  assert.equal(await page.locator(`${body} p[data-marker=first]`).count(), 0, "the finished reply was rendered whole");
  assert.deepEqual(await caret(), { last: "none", body: "none" }, "a finished reply has no caret");
  assert.deepEqual(page.errors, []);
});

test("Stop and Esc abort the running reply", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  await emit(page, [{ kind: "chat", message: { type: "chat_ack", id: "m", run_id: "run-9" } }, { kind: "chat", message: { type: "chat_delta", run_id: "run-9", seq: 1, text: "partial" } }]);
  await page.click("#abort");
  await page.focus("#message");
  await page.keyboard.press("Escape");
  const aborts = await calls(page, "abort");
  assert.equal(aborts.length, 2);
  assert.deepEqual(aborts[0].args, { runId: "run-9" });
  await emit(page, [{ kind: "chat", message: { type: "chat_aborted", run_id: "run-9" } }]);
  await page.waitForSelector(".msg.agent.aborted");
  assert.match(await page.textContent(".msg.agent.aborted"), /Stopped/);
  assert.equal(await page.isVisible("#abort"), false);
});

test("messages sent while the agent is away are marked queued, then delivered", async () => {
  const page = await open("away");
  await page.waitForSelector("#message");
  assert.match(await page.textContent(".banner"), /Your agent is offline/);
  await page.fill("#message", "first line");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("second line");
  assert.equal(await page.inputValue("#message"), "first line\nsecond line", "Shift+Enter is a newline");
  await page.keyboard.press("Enter");
  await page.waitForSelector('.msg.user[data-id="msg-1"]');
  assert.match(await page.textContent('.msg.user[data-id="msg-1"] .mark'), /Queued/);
  assert.equal(await page.textContent('.msg.user[data-id="msg-1"] .body'), "first line\nsecond line");
  await emit(page, [
    { kind: "state", state: { state: "online", peer: "online" } },
    { kind: "message", id: "msg-1", state: "sent" },
    { kind: "message", id: "msg-1", state: "delivered" },
  ]);
  await page.waitForFunction(() => document.querySelector('.msg.user[data-id="msg-1"] .mark').textContent.includes("Delivered"), null, { polling: 100 });
  assert.equal(await page.isVisible(".banner"), false);
  await emit(page, [{ kind: "state", state: { state: "waiting_to_retry", next_try_at_ms: Date.now() + 4000, last_error: "relay unreachable" } }]);
  await page.waitForSelector("#reconnect");
  await page.click("#reconnect");
  assert.equal((await calls(page, "reconnect")).length, 1);
});

test("a history that arrives after a message was sent keeps it, once, and keeps a streaming reply", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  await page.fill("#message", "sent before the history came");
  await page.press("#message", "Enter");
  await page.waitForSelector('.msg.user[data-id="msg-1"]');
  await emit(page, [
    { kind: "chat", message: { type: "chat_ack", id: "msg-1", run_id: "r1" } },
    { kind: "chat", message: { type: "chat_delta", run_id: "r1", seq: 1, text: "half a reply" } },
  ]);
  await page.waitForFunction(() => document.querySelector('.msg.agent[data-run="r1"] .body')?.textContent.includes("half"), null, { polling: 100 });
  // the gateway answered the history before it saw the message
  await emit(page, [{ kind: "chat", message: { type: "history", messages: [{ role: "user", text: "older" }, { role: "assistant", text: "older answer" }] } }]);
  await page.waitForFunction(() => document.querySelectorAll(".msg").length === 4, null, { polling: 100 });
  assert.deepEqual(await page.$$eval(".msg", (ls) => ls.map((l) => l.className.replace(/\s+/g, " ").trim())), ["msg user", "msg agent", "msg user", "msg agent streaming"]);
  assert.equal(await page.locator('.msg.user[data-id="msg-1"] .mark').count(), 1, "the sent message keeps its mark");
  // …or after it saw it: the local bubble stands in for its copy, nothing doubles
  await emit(page, [{ kind: "chat", message: { type: "history", messages: [{ role: "user", text: "older" }, { role: "user", text: "sent before the history came" }] } }]);
  await page.waitForTimeout(200);
  assert.equal(await page.locator(".msg.user").count(), 2);
  await emit(page, [{ kind: "chat", message: { type: "chat_reply", run_id: "r1", text: "the whole reply" } }]);
  await page.waitForSelector('.msg.user[data-id="msg-1"] .mark.answered');
  assert.deepEqual(page.errors, []);
});

test("a pairing the relay refuses is kept until the person decides", async () => {
  const page = await open("refused");
  await page.waitForSelector("#refused");
  assert.match(await page.textContent("#repair-reason"), /SESSION_REVOKED/);
  assert.match(await page.textContent("#refused"), /Your pairing and 1 unsent message are kept/);
  await page.click("#refused-retry");
  assert.equal((await calls(page, "reconnect")).length, 1);
  page.once("dialog", (d) => d.accept());
  await page.click("#refused-forget");
  await page.waitForFunction(() => window.__clawtray.calls.some((c) => c.cmd === "unpair"), null, { polling: 100 });
  assert.equal(await page.isVisible("#code"), true, "pairing again is offered too");
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `pairing-refused-${theme}.png`) });
  }
  assert.deepEqual(page.errors, []);
});

test("a pairing link fills the dialog in, says where it points, and pairs only when the person presses Pair", async () => {
  const page = await open("unpaired&link=73514062-K4Q7-2MXD&relay=wss://relay.example.net");
  await page.waitForSelector("#link-notice");
  assert.equal(await page.inputValue("#code"), "73514062-K4Q7-2MXD");
  assert.equal(await page.inputValue("#relay"), "wss://relay.example.net");
  assert.match(await page.textContent("#link-notice"), /relay wss:\/\/relay\.example\.net, not the default/);
  assert.equal(await page.isVisible("#relay"), true, "a relay other than the default is shown, not folded away");
  await page.waitForTimeout(300);
  assert.equal((await calls(page, "pair")).length, 0, "a link never pairs by itself");
  await page.screenshot({ path: join(shots, "pairing-from-link-light.png") });
  await page.click("#pair");
  await page.waitForFunction(() => window.__clawtray.calls.some((c) => c.cmd === "pair"), null, { polling: 100 });
  const [pair] = await calls(page, "pair");
  assert.deepEqual(pair.args, { code: "73514062-K4Q7-2MXD", relay: "wss://relay.example.net" });
  assert.deepEqual(page.errors, []);
});

test("hostile markdown is rendered inert", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  const hostile = [
    "<script>window.__pwned = 'script'</script>",
    "[click me](javascript:window.__pwned='link')",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "<a href=\"javascript:window.__pwned='a'\">raw link</a>",
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "```js\nconsole.log('code is fine')\n```",
    "[safe](https://example.com)",
  ].join("\n\n");
  await emit(page, [
    { kind: "chat", message: { type: "chat_ack", id: "x", run_id: "evil" } },
    { kind: "chat", message: { type: "chat_reply", run_id: "evil", text: hostile } },
  ]);
  await page.waitForSelector('.msg.agent[data-run="evil"] pre');
  await page.waitForTimeout(300);
  const report = await page.evaluate(() => {
    const b = document.querySelector('.msg.agent[data-run="evil"]');
    const attrs = [...b.querySelectorAll("*")].flatMap((e) => [...e.attributes].map((a) => `${a.name}=${a.value}`));
    return {
      pwned: window.__pwned ?? null,
      scripts: b.querySelectorAll("script, iframe, svg").length,
      handlers: attrs.filter((a) => a.startsWith("on")),
      jsLinks: attrs.filter((a) => /javascript:/i.test(a)),
      safeLink: b.querySelector('a[href="https://example.com"]')?.getAttribute("rel"),
      copyButtons: b.querySelectorAll("pre .copy").length,
    };
  });
  assert.deepEqual(report, { pwned: null, scripts: 0, handlers: [], jsLinks: [], safeLink: "noopener noreferrer", copyButtons: 1 });
});

test("an approval card shows the command as text, answers with the allowed buttons and the keyboard, and says how it ended", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  assert.equal((await calls(page, "approvals")).length, 1, "the chat asks what waits when it opens");
  const now = Date.now();
  const approval = (id, command, extra = {}) => ({
    id,
    command,
    cwd: "/home/me/project",
    host: "gateway",
    agent_id: "main",
    session_key: "agent:main:main",
    created_at_ms: now,
    expires_at_ms: now + 30 * 60 * 1000,
    allowed: ["allow-once", "deny"],
    ...extra,
  });
  // markup in a command is shown as the characters it is, never rendered
  const hostile = 'rm -rf ~/tmp && echo "<img src=x onerror=alert(1)>" **bold**';
  await emit(page, [
    { kind: "chat", message: { type: "approval_requested", approval: approval("ap-1", hostile, { warning: "deletes files" }) } },
    { kind: "chat", message: { type: "approval_requested", approval: approval("ap-1", hostile) } },
  ]);
  const card = page.locator('.approval[data-id="ap-1"]');
  await card.waitFor();
  assert.equal(await page.locator(".approval").count(), 1, "one card per approval");
  assert.equal(await card.locator("pre.command").textContent(), hostile);
  assert.equal(await card.locator("img, strong:not(header strong)").count(), 0, "nothing in the command was rendered");
  assert.match(await card.textContent(), /in \/home\/me\/project/);
  assert.match(await card.textContent(), /on gateway · agent main · session agent:main:main/);
  assert.match(await card.textContent(), /expires \d/);
  assert.match(await card.textContent(), /deletes files/);
  assert.deepEqual(await card.locator("button").allTextContents(), ["Allow once", "Deny"], "only what the gateway allows");
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `approval-card-${theme}.png`) });
  }
  await page.emulateMedia({ colorScheme: "light" });

  // keyboard: from the composer, Shift+Tab reaches the card's last button; Enter answers
  await page.focus("#message");
  await page.keyboard.press("Shift+Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.decision), "deny");
  await page.keyboard.press("Enter");
  assert.deepEqual((await calls(page, "decide")).map((c) => c.args), [{ id: "ap-1", decision: "deny" }]);
  assert.equal(await card.locator("button:disabled").count(), 2, "no second answer while the first is on its way");
  // the agent refuses it (someone answered first): the sentence shows, then the resolution
  await emit(page, [{ kind: "chat", message: { type: "approval_refused", id: "ap-1", message: "another answer (allow-once) reached the agent first" } }]);
  await page.waitForFunction(() => document.querySelector('.approval[data-id="ap-1"] .outcome.error')?.textContent.includes("reached the agent first"));
  await emit(page, [{ kind: "chat", message: { type: "approval_resolved", id: "ap-1", decision: "allow-once", by: "work-laptop" } }]);
  await page.waitForSelector('.approval.answered[data-id="ap-1"]');
  assert.equal(await card.locator(".outcome").textContent(), "Allowed once by work-laptop");
  assert.equal(await card.locator("button").count(), 0);

  // a focused card answers with A (allow once); one that expires says so
  await emit(page, [{ kind: "chat", message: { type: "approval_requested", approval: approval("ap-2", "ls -la") } }]);
  const second = page.locator('.approval[data-id="ap-2"]');
  await second.waitFor();
  await second.focus();
  await page.keyboard.press("a");
  assert.deepEqual((await calls(page, "decide")).at(-1).args, { id: "ap-2", decision: "allow-once" });
  await emit(page, [{ kind: "chat", message: { type: "approvals", pending: [approval("ap-3", "make test")] } }]);
  await page.waitForSelector('.approval.answered.gone[data-id="ap-2"]');
  assert.match(await second.locator(".outcome").textContent(), /No longer waiting/, "gone from the agent's list: not claimed to have expired");
  await emit(page, [
    { kind: "chat", message: { type: "approval_requested", approval: approval("ap-4", "sleep 1") } },
    { kind: "chat", message: { type: "approval_resolved", id: "ap-4", by: "expiry" } },
  ]);
  await page.waitForSelector('.approval.answered.expired[data-id="ap-4"]');
  assert.match(await page.locator('.approval[data-id="ap-4"] .outcome').textContent(), /Expired — the command did not run/);
  await page.locator('.approval.pending[data-id="ap-3"]').waitFor();
  // an answer on its way when the agent's list says the approval still waits: it can be given again
  await page.click('.approval[data-id="ap-3"] button[data-decision="deny"]');
  assert.equal(await page.locator('.approval[data-id="ap-3"] button:disabled').count(), 2);
  await emit(page, [{ kind: "chat", message: { type: "approvals", pending: [approval("ap-3", "make test")] } }]);
  await page.waitForFunction(() => document.querySelectorAll('.approval[data-id="ap-3"] button:disabled').length === 0);
  assert.match(await page.locator('.approval[data-id="ap-3"] .outcome').textContent(), /Still waiting/);
  // a failed answer (the tray host is gone) says so and can be given again
  await page.evaluate(() => (window.__clawtray.answers.decide = { reject: { code: "HOST_LOST", message: "clawtray's tray host is not running" } }));
  await page.click('.approval[data-id="ap-3"] button[data-decision="allow-once"]');
  await page.waitForFunction(() => document.querySelector('.approval[data-id="ap-3"] .outcome.error')?.textContent.includes("not running"));
  assert.equal(await page.locator('.approval[data-id="ap-3"] button:disabled').count(), 0);
  assert.deepEqual(page.errors, []);
});

test("sessions: the list fills the picker, each session keeps its own conversation, and another session's reply marks it", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  const first = await calls(page, "history");
  assert.deepEqual(first[0].args, { limit: 50 }, "the default session's latest page, at start");
  assert.equal((await calls(page, "sessions")).length, 1);
  await emit(page, [
    { kind: "chat", message: { type: "history", messages: [{ id: "h1", role: "user", text: "hello main" }, { id: "h2", role: "assistant", text: "hi from main" }] } },
    { kind: "chat", message: { type: "sessions", sessions: [{ key: "main", default: true }, { key: "work", title: "Work stuff", running: true }] } },
  ]);
  await page.waitForFunction(() => document.querySelectorAll("#session option").length === 2, null, { polling: 100 });
  assert.deepEqual(await page.$$eval("#session option", (os) => os.map((o) => o.textContent)), ["Main", "Work stuff …"]);
  // a reply streams in "work" while "main" is shown: it stays out of sight, the picker says so
  await emit(page, [
    { kind: "chat", message: { type: "chat_ack", id: "w-msg", run_id: "w1", session: "work" } },
    { kind: "chat", message: { type: "chat_delta", run_id: "w1", seq: 1, text: "working on it", session: "work" } },
  ]);
  await page.waitForFunction(() => [...document.querySelectorAll("#session option")].some((o) => o.textContent === "• Work stuff …"), null, { polling: 100 });
  assert.equal(await page.locator('.msg[data-run="w1"]').count(), 0);
  assert.equal(await page.locator(".msg").count(), 2);
  // switch: that session's conversation, its reply as far as it got, and its own history asked for
  await page.selectOption("#session", "work");
  await page.waitForSelector('.msg.agent[data-run="w1"]');
  assert.match(await page.textContent('.msg.agent[data-run="w1"]'), /working on it/);
  assert.equal(await page.locator("text=hello main").count(), 0);
  const asked = await calls(page, "history");
  assert.deepEqual(asked.at(-1).args, { limit: 50, session: "work" });
  await emit(page, [{ kind: "chat", message: { type: "history", session: "work", messages: [{ id: "w0", role: "user", text: "earlier at work" }] } }]);
  await page.waitForSelector("text=earlier at work");
  assert.equal(await page.locator('.msg.agent[data-run="w1"]').count(), 1, "the streaming reply stays after the history");
  await page.fill("#message", "and the report?");
  await page.press("#message", "Enter");
  await page.waitForSelector("text=and the report?");
  assert.deepEqual((await calls(page, "send")).at(-1).args, { text: "and the report?", session: "work" });
  // Stop stops this session's reply, in this session
  await page.click("#abort");
  assert.deepEqual((await calls(page, "abort")).at(-1).args, { runId: "w1", session: "work" });
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `sessions-${theme}.png`) });
  }
  // back to main: its conversation as it was
  await page.selectOption("#session", "");
  await page.waitForSelector("text=hello main");
  assert.equal(await page.locator('.msg[data-run="w1"]').count(), 0);
  // a new conversation starts empty; its first message names it
  await page.click("#new-session");
  await page.waitForFunction(() => document.querySelectorAll(".msg").length === 0, null, { polling: 100 });
  const key = await page.$eval("#session", (s) => s.value);
  assert.match(key, /^chat-\d{8}-\d{6}$/);
  await page.fill("#message", "a fresh start");
  await page.press("#message", "Enter");
  await page.waitForSelector("text=a fresh start");
  assert.deepEqual((await calls(page, "send")).at(-1).args, { text: "a fresh start", session: key });
  assert.deepEqual(page.errors, []);
});

test("scrolling to the top loads the page before without moving what the reader sees, each message once", async () => {
  const page = await open("paired", { width: 720 });
  await page.waitForSelector("#message");
  const msg = (i) => ({ id: `m${i}`, role: i % 2 ? "assistant" : "user", text: `message number ${i}` });
  const latest = Array.from({ length: 50 }, (_, k) => msg(50 + k));
  await emit(page, [{ kind: "chat", message: { type: "history", messages: latest, older: "o50" } }]);
  await page.waitForFunction(() => document.querySelectorAll(".msg").length === 50, null, { polling: 100 });
  assert.equal((await calls(page, "history")).length, 1, "at the bottom, nothing more is asked");
  // the reader scrolls up to the top: the page before is asked for, once
  await page.$eval(".messages", (l) => (l.scrollTop = 0));
  await page.waitForFunction(() => window.__clawtray.calls.filter((c) => c.cmd === "history").length === 2, null, { polling: 50 });
  await page.$eval(".messages", (l) => l.dispatchEvent(new Event("scroll")));
  await page.waitForTimeout(100);
  const asked = await calls(page, "history");
  assert.equal(asked.length, 2);
  assert.deepEqual(asked[1].args, { limit: 50, before: "o50" });
  const where = () => page.$eval('[data-history-id="m50"]', (e) => e.getBoundingClientRect().top);
  const before = await where();
  // the older page overlaps the shown one by a message (new messages came meanwhile)
  const older = Array.from({ length: 51 }, (_, k) => msg(k));
  assert.equal(await page.isVisible(".beginning"), false, "the beginning is not reached yet");
  await emit(page, [{ kind: "chat", message: { type: "history", messages: older, before: "o50" } }]);
  await page.waitForFunction(() => document.querySelectorAll(".msg").length >= 100, null, { polling: 100 });
  assert.ok(Math.abs((await where()) - before) < 2, `the reader's message stays put (${before} → ${await where()})`);
  const ids = await page.$$eval(".msg", (ls) => ls.map((l) => l.dataset.historyId));
  assert.equal(ids.length, 100, "each message once");
  assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => `m${i}`), "in order, no gap");
  // that was the first page (no `older`): the beginning is marked, nothing more is asked
  assert.equal(await page.isVisible(".beginning"), true, "the beginning is marked");
  await page.$eval(".messages", (l) => (l.scrollTop = 0));
  await page.waitForTimeout(200);
  assert.equal((await calls(page, "history")).length, 2, "no cursor, no question");
  assert.deepEqual(page.errors, []);
});

// A real PNG (w×h, one colour per row band), so the thumbnail must decode to be seen.
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < h; y++) {
    rows.push(0);
    for (let x = 0; x < w; x++) rows.push(y < h / 2 ? 217 : 40, y < h / 2 ? 72 : 110, y < h / 2 ? 15 : 200);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.from(rows))), chunk("IEND", Buffer.alloc(0))]);
}

test("files: the paperclip, a drop and a paste attach files; what cannot go gets a sentence first; the rest go with the message and the image shows as a thumbnail", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  const picture = png(64, 48);
  const notes = Buffer.from("shopping: eggs, flour\n");
  // too large (the gateway's default image limit), and empty: a sentence each, nothing attached
  await page.setInputFiles("#file-input", { name: "huge.png", mimeType: "image/png", buffer: Buffer.alloc(7 * 1024 * 1024, 1) });
  await page.waitForSelector(".attach-error:not([hidden])");
  assert.equal(await page.textContent(".attach-error"), "“huge.png” is 7.3 MB — images up to 6.3 MB can be sent");
  await page.setInputFiles("#file-input", { name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) });
  await page.waitForFunction(() => document.querySelector(".attach-error")?.textContent?.includes("is empty"), null, { polling: 50 });
  assert.equal(await page.locator(".attachment").count(), 0);
  // the agent's gateway says its own limits: they are the ones checked
  await emit(page, [{ kind: "chat", message: { type: "agent_status", gateway: "connected", files: { max_bytes: 100_000, max_image_bytes: 50_000, max_message_bytes: 120_000 } } }]);
  await page.setInputFiles("#file-input", { name: "report.pdf", mimeType: "application/pdf", buffer: Buffer.alloc(150_000, 2) });
  await page.waitForFunction(() => document.querySelector(".attach-error")?.textContent?.includes("files up to 100 KB"), null, { polling: 50 });
  // the paperclip: a picture and a text file
  await page.setInputFiles("#file-input", [
    { name: "chart.png", mimeType: "image/png", buffer: picture },
    { name: "notes.txt", mimeType: "text/plain", buffer: notes },
  ]);
  await page.waitForFunction(() => document.querySelectorAll(".attachment").length === 2, null, { polling: 50 });
  assert.equal(await page.isVisible(".attach-error"), false, "a good pick clears the last sentence");
  assert.equal(await page.locator(".attachment img.thumb").count(), 1);
  // a paste and a drop, made the way the browser makes them
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(["pasted bytes"], "clip.png", { type: "image/png" }));
    document.querySelector("#message").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    const drop = new DataTransfer();
    drop.items.add(new File(["dropped"], "dropped.csv", { type: "text/csv" }));
    document.querySelector(".chat").dispatchEvent(new DragEvent("drop", { dataTransfer: drop, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction(() => document.querySelectorAll(".attachment").length === 4, null, { polling: 50 });
  // remove the pasted one again
  await page.click('button[aria-label="Remove clip.png"]');
  await page.waitForFunction(() => document.querySelectorAll(".attachment").length === 3, null, { polling: 50 });
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `files-attached-${theme}.png`) });
  }
  // the core refuses (its own check): the files stay, the sentence shows next to them
  await page.evaluate(() => (window.__clawtray.answers.send = { reject: { code: "FILES_REFUSED", message: "“notes.txt” could not be read" } }));
  await page.fill("#message", "what do you make of these?");
  await page.press("#message", "Enter");
  await page.waitForFunction(() => document.querySelector(".attach-error")?.textContent === "“notes.txt” could not be read", null, { polling: 50 });
  assert.equal(await page.locator(".attachment").count(), 3);
  assert.equal(await page.inputValue("#message"), "what do you make of these?");
  // sent: every byte, base64, with the text
  await page.evaluate(() => delete window.__clawtray.answers.send);
  await page.press("#message", "Enter");
  await page.waitForSelector(".msg.user .files img.thumb");
  const sent = (await calls(page, "send")).at(-1).args;
  assert.equal(sent.text, "what do you make of these?");
  assert.deepEqual(
    sent.files.map((f) => [f.name, f.mime]),
    [["chart.png", "image/png"], ["notes.txt", "text/plain"], ["dropped.csv", "text/csv"]],
  );
  assert.ok(Buffer.from(sent.files[0].data, "base64").equals(picture));
  assert.ok(Buffer.from(sent.files[1].data, "base64").equals(notes));
  assert.equal(await page.locator(".attachment").count(), 0, "the chips go once sent");
  // the thumbnail is the file itself, decoded (a blob: URL the CSP allows; nothing fetched)
  await page.waitForFunction(() => document.querySelector(".msg.user .files img.thumb")?.naturalWidth > 0, null, { polling: 50, timeout: 5000 });
  const thumb = await page.$eval(".msg.user .files img.thumb", (i) => ({ src: i.src, w: i.naturalWidth, h: i.naturalHeight }));
  assert.match(thumb.src, /^blob:/);
  assert.deepEqual([thumb.w, thumb.h], [64, 48]);
  assert.match(await page.textContent(".msg.user .files"), /notes\.txt · 1 KB/);
  // a message of files alone goes too
  await page.setInputFiles("#file-input", { name: "only.png", mimeType: "image/png", buffer: picture });
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".msg.user .files img.thumb").length === 2, null, { polling: 50 });
  assert.equal((await calls(page, "send")).at(-1).args.text, "");
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `files-sent-${theme}.png`) });
  }
  assert.deepEqual(page.errors, []);
});

test("files in the history show by name and size (their bytes stay with the gateway; nothing is fetched)", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await emit(page, [
    {
      kind: "chat",
      message: {
        type: "history",
        messages: [
          { id: "u1", role: "user", text: "here are the scans", files: [{ name: "scan.pdf", mime: "application/pdf", size: 120000 }, { name: "photo.jpg", mime: "image/jpeg" }] },
          { id: "a1", role: "assistant", text: "Thanks, **got them**." },
        ],
      },
    },
  ]);
  await page.waitForSelector(".msg.user .files .file-chip");
  assert.deepEqual(await page.$$eval(".msg.user .files .file-chip", (cs) => cs.map((c) => c.textContent)), ["scan.pdf · 120 KB", "photo.jpg"]);
  assert.equal(await page.locator(".msg.user .files svg.image").count(), 1, "the image is marked as one");
  assert.equal(await page.locator(".msg.user img").count(), 0);
  assert.deepEqual(requests.filter((u) => !u.startsWith("data:")), []);
  assert.deepEqual(page.errors, []);
});

test("agents: the switcher lists each paired agent with its state, marks news from another, shows the one picked, and pairs another without touching the first", async () => {
  const page = await open("two-agents");
  await page.waitForSelector("#agent");
  const options = () => page.$$eval("#agent option", (os) => os.map((o) => o.textContent));
  assert.deepEqual(await options(), ["● Molty on homelab", "○ Work box", "Pair another agent…"]);
  assert.equal(await page.$eval("#agent", (s) => s.value), "first");
  // the work box's reply streams while Molty is shown: not here, marked in the switcher
  await page.evaluate(() => window.__clawtray.emit({ kind: "chat", message: { type: "chat_delta", run_id: "w1", seq: 1, text: "from work" } }, "a1b2c3d4"));
  await page.evaluate(() => window.__clawtray.emit({ kind: "state", state: { state: "online", peer: "online" } }, "a1b2c3d4"));
  await page.waitForFunction(() => [...document.querySelectorAll("#agent option")].some((o) => o.textContent === "• ● Work box"), null, { polling: 50 });
  assert.equal(await page.locator("text=from work").count(), 0);
  // Molty's own events still reach the chat
  await page.evaluate(() => window.__clawtray.emit({ kind: "chat", message: { type: "chat_ack", id: "m1", run_id: "r1" } }, "first"));
  await page.evaluate(() => window.__clawtray.emit({ kind: "chat", message: { type: "chat_reply", run_id: "r1", text: "hello from home" } }, "first"));
  await page.waitForSelector("text=hello from home");
  // the shown agent's own state shows in the switcher too
  await page.evaluate(() => window.__clawtray.emit({ kind: "state", state: { state: "connecting" } }, "first"));
  await page.waitForFunction(() => document.querySelector("#agent").selectedOptions[0].textContent === "◌ Molty on homelab", null, { polling: 50 });
  await page.evaluate(() => window.__clawtray.emit({ kind: "state", state: { state: "online", peer: "online" } }, "first"));
  await page.waitForFunction(() => document.querySelector("#agent").selectedOptions[0].textContent === "● Molty on homelab", null, { polling: 50 });
  for (const theme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: theme });
    await page.screenshot({ path: join(shots, `agents-${theme}.png`) });
  }
  await page.emulateMedia({ colorScheme: "light" });
  // the app's own window is narrow: the header still holds the switcher, the picker and Unpair
  await page.setViewportSize({ width: 440, height: 640 });
  const fits = await page.evaluate(() =>
    ["#agent", "#session", "#new-session", "#unpair"].every((q) => {
      const r = document.querySelector(q).getBoundingClientRect();
      return r.width > 0 && r.right <= innerWidth && r.left >= 0;
    }),
  );
  assert.ok(fits, "every header control is on screen at 440 px");
  await page.screenshot({ path: join(shots, "agents-narrow.png") });
  await page.setViewportSize({ width: 720, height: 640 });
  // pick the work box: its chat, its queue, its calls
  await page.selectOption("#agent", "a1b2c3d4");
  await page.waitForSelector("text=waiting for the work box");
  assert.equal(await page.locator("text=hello from home").count(), 0);
  assert.equal((await calls(page, "status")).at(-1).agent, "a1b2c3d4");
  await page.fill("#message", "for the work box");
  await page.press("#message", "Enter");
  await page.waitForSelector("text=for the work box");
  const sent = (await calls(page, "send")).at(-1);
  assert.equal(sent.agent, "a1b2c3d4");
  assert.equal(sent.args.text, "for the work box");
  // now Molty's news is what the switcher marks
  await page.evaluate(() => window.__clawtray.emit({ kind: "chat", message: { type: "chat_typing", on: true } }, "first"));
  await page.waitForFunction(() => [...document.querySelectorAll("#agent option")].some((o) => o.textContent === "• ● Molty on homelab"), null, { polling: 50 });
  // pair another: a dialog that can be cancelled, and a pairing that names no agent (a new slot)
  await page.selectOption("#agent", "__pair_another__");
  await page.waitForSelector("text=Pair another agent");
  await page.click("#pair-cancel");
  await page.waitForSelector("#agent");
  await page.selectOption("#agent", "__pair_another__");
  await page.waitForSelector("#code");
  await page.evaluate(() => (window.__clawtray.answers.pair = { relay_url: "ws://127.0.0.1:8765", session_id: "n", agent_name: "Lab", paired_at_ms: 0, slot: "c0ffee00" }));
  await page.fill("#code", "73514062-K4Q7-2MXD");
  await page.click("#pair");
  await page.waitForSelector("#message");
  const pairs = await calls(page, "pair");
  assert.equal(pairs.length, 1);
  assert.equal(pairs[0].agent, undefined, "another agent: no slot named, the first one untouched");
  assert.equal((await calls(page, "unpair")).length, 0);
  assert.equal((await calls(page, "status")).at(-1).agent, "c0ffee00", "the new agent is shown");
  assert.deepEqual(page.errors, []);
});

test("with one agent, Add agent opens the pairing dialog for another, and Cancel goes back", async () => {
  const page = await open("paired");
  await page.waitForSelector("#message");
  assert.equal(await page.locator("#agent").count(), 0, "no switcher for one agent");
  await page.click("#add-agent");
  await page.waitForSelector("text=Pair another agent");
  await page.click("#pair-cancel");
  await page.waitForSelector("#message");
  assert.deepEqual(page.errors, []);
});
