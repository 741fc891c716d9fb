// The browser test's driver (scripts/browser-test.sh runs it against a stack of its
// own): serves the page on two origins other than the API's — one in ALLOWED_ORIGINS,
// one not — and drives Debian's Chromium (playwright-core, nothing downloaded) through
// the page's steps (page/steps.ts). Around each step it watches the browser's network
// through the DevTools protocol, as the browser saw it on the wire: the preflights and
// how the API answered them, the request headers the browser added itself
// (If-None-Match), the status the server sent (a 304) beside the one the page got.
// Prints `[browser] ok: <step>` per step; exits non-zero when any step failed.
//
// Environment: PRISM_API (the API's base URL), PRISM_TOKEN, PAGE_PORT (the allowed
// origin's port), OTHER_PORT (the refused origin's), RATE_LIMIT (the api's
// RATE_LIMIT_PER_MINUTE), WORKER_PID (the stack's prism-worker, paused around the
// min_position step), CHROMIUM (default /usr/bin/chromium).
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const API = env("PRISM_API").replace(/\/$/, "");
const TOKEN = env("PRISM_TOKEN");
const PAGE_PORT = Number(env("PAGE_PORT"));
const OTHER_PORT = Number(env("OTHER_PORT"));
const RATE_LIMIT = Number(env("RATE_LIMIT"));
const WORKER_PID = Number(env("WORKER_PID"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// How long the worker stays paused once the list reads are sent.
const PAUSE_MS = 600;
const PAGE_ORIGIN = `http://127.0.0.1:${PAGE_PORT}`;
const OTHER_ORIGIN = `http://127.0.0.1:${OTHER_PORT}`;

const log = (text) => console.log(`[browser] ${text}`);

// ---- the page's origins: index.html, the compiled steps, openapi-fetch's ESM build.
const files = {
  "/": path.join(here, "page/index.html"),
  "/vendor/openapi-fetch.mjs": path.join(here, "../typescript/node_modules/openapi-fetch/dist/index.mjs"),
};
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript" };
function serve(request, response) {
  const url = new URL(request.url, "http://page");
  let file = files[url.pathname];
  if (!file && url.pathname.startsWith("/build/")) {
    file = path.join(here, path.normalize(url.pathname).replace(/^\/+/, ""));
    if (!file.startsWith(path.join(here, "build") + path.sep)) file = undefined;
  }
  if (!file || request.method !== "GET") {
    response.writeHead(404).end();
    return;
  }
  readFile(file).then(
    (body) => response.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream", "cache-control": "no-store" }).end(body),
    () => response.writeHead(404).end(),
  );
}
const listen = (port) =>
  new Promise((resolve, reject) => {
    const server = http.createServer(serve);
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });

// ---- the network as the browser saw it (DevTools protocol, per page).
/** Records every request of `page`: method, url, kind, headers sent, statuses, CORS errors. */
async function watch(page) {
  const requests = new Map();
  const entry = (id) => {
    if (!requests.has(id)) requests.set(id, { id, sentHeaders: {}, wireHeaders: {} });
    return requests.get(id);
  };
  const cdp = await page.context().newCDPSession(page);
  cdp.on("Network.requestWillBeSent", (event) => {
    Object.assign(entry(event.requestId), {
      method: event.request.method,
      url: event.request.url,
      preflight: event.initiator?.type === "preflight",
    });
  });
  cdp.on("Network.requestWillBeSentExtraInfo", (event) => {
    entry(event.requestId).sentHeaders = lower(event.headers);
  });
  cdp.on("Network.responseReceivedExtraInfo", (event) => {
    Object.assign(entry(event.requestId), { wireStatus: event.statusCode, wireHeaders: lower(event.headers) });
  });
  cdp.on("Network.responseReceived", (event) => {
    Object.assign(entry(event.requestId), { pageStatus: event.response.status, fromDiskCache: event.response.fromDiskCache });
  });
  cdp.on("Network.loadingFailed", (event) => {
    Object.assign(entry(event.requestId), { failed: event.errorText, corsError: event.corsErrorStatus?.corsError });
  });
  await cdp.send("Network.enable");
  let mark = 0;
  return {
    /** The requests since the last call (events may trail the page's promise a little). */
    async since() {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const all = [...requests.values()];
      const fresh = all.slice(mark);
      mark = all.length;
      return fresh;
    },
  };
}
const lower = (headers) => Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));

function assert(condition, what) {
  if (!condition) throw new Error(what);
}
const toApi = (seen, pathname, method) =>
  seen.filter((r) => r.url && new URL(r.url).origin === new URL(API).origin && new URL(r.url).pathname === pathname
    && (method === undefined || r.method === method));

/** A preflight for `pathname` asking for `method` (and `headers`), answered 2xx for `origin`. */
function assertPreflight(seen, pathname, method, headers, origin = PAGE_ORIGIN) {
  const preflights = toApi(seen, pathname, "OPTIONS").filter((r) => r.preflight);
  const asked = preflights.find((r) => r.sentHeaders["access-control-request-method"] === method);
  assert(asked, `no preflight (OPTIONS) for ${method} ${pathname}: ${JSON.stringify(preflights)}`);
  const requested = (asked.sentHeaders["access-control-request-headers"] ?? "").split(",").map((h) => h.trim());
  for (const header of headers) {
    assert(requested.includes(header), `the ${method} preflight did not ask for ${header}: ${requested}`);
  }
  assert(asked.wireStatus >= 200 && asked.wireStatus < 300, `the preflight was answered ${asked.wireStatus}`);
  const allowOrigin = asked.wireHeaders["access-control-allow-origin"];
  assert(allowOrigin === origin, `the preflight allowed origin ${allowOrigin}, not ${origin}`);
  const allowed = (asked.wireHeaders["access-control-allow-headers"] ?? "")
    .toLowerCase()
    .split(",")
    .map((h) => h.trim());
  for (const header of headers) {
    assert(allowed.includes(header), `the preflight did not allow ${header}: ${allowed}`);
  }
  return asked;
}

/** The actual (non-preflight) request: answered on the wire with the page's origin. */
function assertCorsAnswered(seen, pathname, method) {
  const actual = toApi(seen, pathname, method).filter((r) => !r.preflight);
  assert(actual.length > 0, `no ${method} ${pathname} was sent`);
  for (const r of actual) {
    assert(r.wireHeaders["access-control-allow-origin"] === PAGE_ORIGIN,
      `${method} ${pathname} answered ${r.wireStatus} without Access-Control-Allow-Origin: ${PAGE_ORIGIN}`);
  }
  return actual;
}

// ---- the run.
const servers = [await listen(PAGE_PORT), await listen(OTHER_PORT)];
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root (CI, containers) cannot use Chromium's sandbox.
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
let passed = 0;
let failed = 0;
try {
  const context = await browser.newContext();
  const consoleLines = [];
  const open = async (origin) => {
    const page = await context.newPage();
    page.on("pageerror", (error) => log(`page error (${origin}): ${error.message}`));
    // The console's errors (Chromium logs every 4xx, and CORS refusals) are shown
    // only under a failed step.
    page.on("console", (message) => {
      if (message.type() === "error") consoleLines.push(`console (${origin}): ${message.text()}`);
    });
    const net = await watch(page);
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "ready", null, { timeout: 10_000 });
    await page.evaluate(([api, token]) => window.prism.configure(api, token), [API, TOKEN]);
    return { page, net };
  };
  const call = (page, step, ...args) => page.evaluate(([name, rest]) => window.prism[name](...rest), [step, args]);

  let main;
  const facts = {};
  const steps = [
    ["the page on another origin loads the typed client (import map, compiled steps)", async () => {
      main = await open(PAGE_ORIGIN);
      assert(new URL(API).origin !== PAGE_ORIGIN, "the page and the API share an origin");
      const seen = await main.net.since();
      const vendor = seen.find((r) => r.url === `${PAGE_ORIGIN}/vendor/openapi-fetch.mjs`);
      assert(vendor?.wireStatus === 200, "openapi-fetch was not loaded through the import map");
    }],
    ["register a building (POST, JSON + Idempotency-Key: preflighted, allowed for the page's origin)", async () => {
      facts.building = await call(main.page, "register");
      const seen = await main.net.since();
      assertPreflight(seen, "/v1/buildings", "POST", ["authorization", "content-type", "idempotency-key"]);
      const [post] = assertCorsAnswered(seen, "/v1/buildings", "POST");
      assert(post.wireStatus === 201, `POST /v1/buildings answered ${post.wireStatus}`);
    }],
    ["record a lease comp in it (the worker paused: the read side cannot see it yet)", async () => {
      // Resumed in the next step, or at the end whatever happens.
      process.kill(WORKER_PID, "SIGSTOP");
      facts.comp = await call(main.page, "recordComp");
      const seen = await main.net.since();
      assertPreflight(seen, "/v1/comps/lease", "POST", ["authorization", "content-type", "idempotency-key"]);
      assertCorsAnswered(seen, "/v1/comps/lease", "POST");
    }],
    ["both in their lists on the first read with min_position (no polling)", async () => {
      let resume;
      let lists;
      try {
        // The control: without min_position the paused read side does not list the comp.
        const now = await call(main.page, "compsNow");
        assert(now.listed === false, "the comp was listed while the worker was paused: the control proves nothing");
        await main.net.since();
        // The reads with min_position are sent while the worker is still paused; they
        // must wait for it (resumed PAUSE_MS later) rather than answer without the comp.
        resume = setTimeout(() => process.kill(WORKER_PID, "SIGCONT"), PAUSE_MS);
        lists = await call(main.page, "lists");
      } finally {
        clearTimeout(resume);
        process.kill(WORKER_PID, "SIGCONT");
      }
      assert(lists.compsMs >= PAUSE_MS - 100, `the comp list answered in ${lists.compsMs} ms, before the worker was resumed`);
      log(`  the comp list waited ${lists.compsMs} ms for the worker (paused ${PAUSE_MS} ms)`);
      const seen = await main.net.since();
      const comps = assertCorsAnswered(seen, "/v1/comps", "GET");
      const buildings = assertCorsAnswered(seen, "/v1/buildings", "GET");
      assert(comps.length === 1 && buildings.length === 1, `${comps.length} comp lists and ${buildings.length} building lists were sent, not one each`);
      for (const r of [...comps, ...buildings]) {
        assert(new URL(r.url).searchParams.get("min_position") === String(lists.minPosition), `${r.url} lacks min_position=${lists.minPosition}`);
      }
    }],
    ["revalidate the detail from the browser's own cache (304 on the wire, 200 with the cached body in the page)", async () => {
      const detail = await call(main.page, "revalidate");
      const seen = await main.net.since();
      const reads = assertCorsAnswered(seen, `/v1/buildings/${facts.building.id}`, "GET");
      assert(reads.length === 2, `${reads.length} detail reads went to the API, not 2`);
      const [first, second] = reads;
      assert(first.wireStatus === 200 && first.sentHeaders["if-none-match"] === undefined, `the first read: ${first.wireStatus}, If-None-Match ${first.sentHeaders["if-none-match"]}`);
      assert(second.sentHeaders["if-none-match"] === detail.etag, `the browser revalidated with If-None-Match ${second.sentHeaders["if-none-match"]}, not ${detail.etag}`);
      assert(second.wireStatus === 304, `the revalidation was answered ${second.wireStatus}, not 304`);
      assert(second.pageStatus === 200, `the page saw ${second.pageStatus} for the revalidated read`);
    }],
    ["a stale If-Match is a 409 version-conflict with current_version (PATCH preflighted)", async () => {
      const conflict = await call(main.page, "conflict");
      const seen = await main.net.since();
      const pathname = `/v1/buildings/${facts.building.id}`;
      assertPreflight(seen, pathname, "PATCH", ["authorization", "content-type", "if-match"]);
      const patches = assertCorsAnswered(seen, pathname, "PATCH");
      assert(patches.map((r) => r.wireStatus).join(",") === "200,409", `PATCHes answered ${patches.map((r) => r.wireStatus)}`);
      assert(patches[1].sentHeaders["if-match"] === conflict.staleIfMatch, `the stale PATCH sent If-Match ${patches[1].sentHeaders["if-match"]}`);
    }],
    ["an impossible lease is a 422 validation-failed naming the field", async () => {
      const invalid = await call(main.page, "invalid");
      const seen = await main.net.since();
      const [post] = assertCorsAnswered(seen, "/v1/comps/lease", "POST");
      assert(post.wireStatus === 422, `answered ${post.wireStatus}`);
      log(`  422 errors: ${invalid.messages.join("; ")}`);
    }],
    ["a page from an origin not in ALLOWED_ORIGINS is refused by CORS (fetch rejects)", async () => {
      const other = await open(OTHER_ORIGIN);
      const refused = await call(other.page, "refused");
      assert(refused.rejected === true, `the refused origin's fetch was answered ${refused.status}`);
      const seen = await other.net.since();
      const preflight = toApi(seen, "/v1/buildings", "OPTIONS").find((r) => r.preflight);
      assert(preflight, "no preflight was sent from the refused origin");
      assert(preflight.sentHeaders.origin === OTHER_ORIGIN, `the preflight came from ${preflight.sentHeaders.origin}`);
      assert(preflight.wireHeaders["access-control-allow-origin"] === undefined,
        `the API allowed the refused origin: ${preflight.wireHeaders["access-control-allow-origin"]}`);
      const get = toApi(seen, "/v1/buildings", "GET").find((r) => !r.preflight);
      assert(get?.corsError, `the GET did not fail on CORS: ${JSON.stringify(get)}`);
      assert(get.wireStatus === undefined, `the GET reached the API (answered ${get.wireStatus})`);
      log(`  refused: preflight ${preflight.wireStatus}, ${get.corsError}; the page saw "${refused.message}"`);
      await other.page.close();
    }],
    ["calls until a 429, whose Retry-After the page reads", async () => {
      const limited = await call(main.page, "rateLimited", RATE_LIMIT);
      const seen = await main.net.since();
      const last = seen.filter((r) => !r.preflight && r.wireStatus === 429);
      assert(last.length === 1, `${last.length} answers were 429, not exactly the last one`);
      assert(last[0].wireHeaders["access-control-allow-origin"] === PAGE_ORIGIN, "the 429 carries no CORS headers");
      log(`  429 after ${limited.call} calls; Retry-After: ${limited.retryAfter}; ${limited.policy}`);
    }],
  ];
  for (const [name, run] of steps) {
    // A step sees only its own requests, even when the one before failed midway.
    await main?.net.since();
    try {
      await run();
      passed += 1;
      log(`ok: ${name}`);
    } catch (error) {
      failed += 1;
      log(`FAILED: ${name}: ${error.message.split("\n")[0]}`);
      for (const line of consoleLines) log(`  ${line}`);
    }
    consoleLines.length = 0;
  }
} finally {
  try {
    process.kill(WORKER_PID, "SIGCONT");
  } catch {
    // the worker is gone
  }
  await browser.close();
  for (const server of servers) server.close();
}
log(`${passed} steps passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
