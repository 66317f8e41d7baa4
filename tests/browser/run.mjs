// Drives index.html in Debian's headless Chromium (playwright-core) against a
// running broker, and checks that MQTT.js over WebSocket and a client over TCP
// see each other's messages:
//
//   1. serves index.html and MQTT.js's browser bundle on 127.0.0.1;
//   2. opens the page, which connects to ws://127.0.0.1:WS_PORT/mqtt,
//      subscribes to browser/# at QoS 1 and publishes "hello from chromium"
//      to browser/test at QoS 1; waits for its own message to come back;
//   3. publishes "hello from tcp" to browser/tcp over TCP with mosquitto_pub
//      (or the command given after `--`, which takes mosquitto_pub's flags)
//      and waits for it in the page;
//   4. checks both messages are listed once, at QoS 1, in view, and writes a
//      screenshot.
//
// Usage:
//   node run.mjs --ws-port N --tcp-port N --screenshot FILE.png
//                [--mqtt-version 4|5] [--http-port N] [-- PUBLISHER...]
//
// Exits 0 when every check passed; otherwise prints what failed (with the
// page's status and console) and exits 1. Each wait has a deadline, and the
// whole run another.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps dialling Google's
// hosts, which this machine's closed network refuses.
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STEP = 10_000; // ms for any one wait
const WHOLE_RUN = 25_000; // ms for everything
const VIEWPORT = { width: 800, height: 600 };

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "ws-port": { type: "string" },
      "tcp-port": { type: "string" },
      "http-port": { type: "string", default: "0" },
      "mqtt-version": { type: "string", default: "4" },
      screenshot: { type: "string" },
    },
  });
  const port = (name) => {
    const text = values[name];
    if (!/^[0-9]+$/.test(text ?? "") || Number(text) > 65535) {
      fail(`--${name} PORT is required (got ${text ?? "nothing"})`);
    }
    return Number(text);
  };
  if (!["4", "5"].includes(values["mqtt-version"])) {
    fail(`--mqtt-version is 4 or 5, not ${values["mqtt-version"]}`);
  }
  if (!values.screenshot) {
    fail("--screenshot FILE.png is required");
  }
  return {
    wsPort: port("ws-port"),
    tcpPort: port("tcp-port"),
    httpPort: port("http-port"),
    version: values["mqtt-version"],
    screenshot: values.screenshot,
    publisher: positionals.length ? positionals : ["mosquitto_pub"],
  };
}

// The files the page needs, read once; a missing one means `npm ci` has not run.
function pageFiles() {
  const mqttJs = join(here, "node_modules", "mqtt", "dist", "mqtt.min.js");
  if (!existsSync(mqttJs)) {
    fail(`${mqttJs} is missing: run scripts/test (it runs npm ci in tests/browser)`);
  }
  if (!existsSync(CHROMIUM)) {
    fail(`${CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)`);
  }
  return new Map([
    ["/", { type: "text/html; charset=utf-8", body: readFileSync(join(here, "index.html")) }],
    ["/index.html", { type: "text/html; charset=utf-8", body: readFileSync(join(here, "index.html")) }],
    ["/mqtt.min.js", { type: "text/javascript; charset=utf-8", body: readFileSync(mqttJs) }],
  ]);
}

function serve(files, port) {
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://127.0.0.1").pathname;
    const file = files.get(path);
    if (request.method !== "GET" || !file) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    response.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e) => reject(new Failure(`cannot serve the page on 127.0.0.1:${port}: ${e.message}`)));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

// Runs the publisher (mosquitto_pub's flags) to its end, within STEP.
function publish(publisher, port, topic, message) {
  const [program, ...prefix] = publisher;
  const args = [...prefix, "-h", "127.0.0.1", "-p", String(port), "-t", topic, "-m", message, "-q", "1"];
  const shown = [program, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Failure(`\`${shown}\` did not exit within ${STEP} ms; it printed:\n${output}`));
    }, STEP);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Failure(`cannot run \`${shown}\`: ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve(shown);
      } else {
        reject(new Failure(`\`${shown}\` failed (${signal ?? `exit ${code}`}); it printed:\n${output}`));
      }
    });
  });
}

// What the page shows: its status and the messages listed.
function pageState(page) {
  return page.evaluate(() => ({
    state: document.getElementById("status").dataset.state,
    status: document.getElementById("status").textContent,
    reached: window.reached ?? [],
    failure: window.failure ?? null,
    messages: [...document.querySelectorAll("#messages li")].map((li) => ({
      topic: li.dataset.topic,
      payload: li.dataset.payload,
      qos: li.dataset.qos,
    })),
  }));
}

// Waits until the page has reached `step` ("connected", ...), failing at
// once if it reports an error first.
async function reach(page, step) {
  try {
    await page.waitForFunction(
      (step) => window.failure !== null || (window.reached ?? []).includes(step),
      step,
      { timeout: STEP, polling: 20 },
    );
  } catch (e) {
    if (e.name !== "TimeoutError") throw e;
    const { status } = await pageState(page);
    fail(`the page did not get to "${step}" within ${STEP} ms; its status: ${status}`);
  }
  const { failure } = await pageState(page);
  if (failure !== null) {
    fail(`the page failed before "${step}": ${failure}`);
  }
}

// Waits until the page lists a message on `topic` with `payload`.
async function received(page, topic, payload) {
  const selector = `#messages li[data-topic="${topic}"][data-payload="${payload}"]`;
  try {
    await page.waitForSelector(selector, { state: "visible", timeout: STEP });
  } catch (e) {
    if (e.name !== "TimeoutError") throw e;
    const { status, messages } = await pageState(page);
    fail(
      `the page did not show ${topic} "${payload}" within ${STEP} ms; ` +
        `its status: ${status}; it listed: ${JSON.stringify(messages)}`,
    );
  }
}

async function main(opts, log) {
  const files = pageFiles();
  const server = await serve(files, opts.httpPort);
  const httpPort = server.address().port;
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "starling-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: VIEWPORT,
      timeout: STEP,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => log.push(`request failed: ${r.url()}: ${r.failure()?.errorText}`));
    page.on("websocket", (ws) => {
      log.push(`websocket opened: ${ws.url()}`);
      ws.on("close", () => log.push(`websocket closed: ${ws.url()}`));
      ws.on("socketerror", (e) => log.push(`websocket error: ${e}`));
    });
    try {
      const address = `http://127.0.0.1:${httpPort}/?port=${opts.wsPort}&v=${opts.version}`;
      console.log(`opening ${address}`);
      await page.goto(address, { timeout: STEP });

      for (const step of ["connected", "subscribed", "published"]) {
        await reach(page, step);
        console.log(`page: ${step}`);
      }
      await received(page, "browser/test", "hello from chromium");
      console.log('page: received browser/test "hello from chromium"');

      const shown = await publish(opts.publisher, opts.tcpPort, "browser/tcp", "hello from tcp");
      console.log(`ran ${shown}`);
      await received(page, "browser/tcp", "hello from tcp");
      console.log('page: received browser/tcp "hello from tcp"');

      const { state, status, messages } = await pageState(page);
      if (state !== "published") {
        fail(`the page's status changed to: ${status}`);
      }
      const expected = [
        { topic: "browser/test", payload: "hello from chromium", qos: "1" },
        { topic: "browser/tcp", payload: "hello from tcp", qos: "1" },
      ];
      if (JSON.stringify(messages) !== JSON.stringify(expected)) {
        fail(`the page listed ${JSON.stringify(messages)}, not ${JSON.stringify(expected)}`);
      }
      // What the screenshot is for: the status and both messages in view.
      for (const selector of ["#status", "#messages li:nth-child(1)", "#messages li:nth-child(2)"]) {
        const box = await page.locator(selector).boundingBox();
        if (!box || box.y < 0 || box.y + box.height > VIEWPORT.height || box.width === 0) {
          fail(`${selector} is not in view: ${JSON.stringify(box)}`);
        }
      }
    } finally {
      // Also on failure: the picture helps to see what went wrong.
      await page.screenshot({ path: opts.screenshot, timeout: STEP }).catch((e) => {
        log.push(`screenshot failed: ${e.message}`);
      });
    }
    console.log(`screenshot: ${opts.screenshot}`);
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    server.close();
  }
}

const log = [];
const deadline = setTimeout(() => {
  console.error(`run.mjs: error: the run took more than ${WHOLE_RUN} ms`);
  for (const line of log) console.error(`  ${line}`);
  process.exit(1);
}, WHOLE_RUN);

try {
  await main(options(), log);
  clearTimeout(deadline);
  console.log("run.mjs: ok");
} catch (e) {
  clearTimeout(deadline);
  console.error(`run.mjs: error: ${e instanceof Failure ? e.message : e.stack}`);
  if (log.length) {
    console.error("what the page logged:");
    for (const line of log) console.error(`  ${line}`);
  }
  process.exitCode = 1;
}
