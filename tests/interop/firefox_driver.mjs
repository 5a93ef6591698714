// Drives Debian's firefox-esr for tests/interop: puppeteer-core over WebDriver BiDi, one page.
// Protocol on stdin/stdout, one JSON object a line:
//   in:  {"id": 1, "op": "goto", "url": "..."} | {"id": 2, "op": "eval", "expr": "..."}
//   out: {"id": 1, "ok": true, "value": ...} | {"id": 1, "ok": false, "error": "..."}
//        {"event": "ready"} once the browser runs; {"event": "console", "text": "..."}.
// `expr` is the body of an async function evaluated in the page (use `return`).
import puppeteer from 'puppeteer-core';
import readline from 'node:readline';

const PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  // Loopback candidates, shown as addresses (no mDNS names): everything stays on 127.0.0.1.
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.autoplay.default': 0,
  // Nothing of Firefox's own should try the network.
  'app.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
};

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  protocol: 'webDriverBiDi',
  extraPrefsFirefox: PREFS,
  timeout: 60000,
});
const page = await browser.newPage();
page.on('console', (msg) => send({ event: 'console', text: msg.text() }));
page.on('pageerror', (err) => send({ event: 'console', text: 'pageerror: ' + err.message }));
send({ event: 'ready', version: await browser.version() });

async function handle(request) {
  if (request.op === 'goto') {
    await page.goto(request.url, { waitUntil: 'load' });
    return null;
  }
  if (request.op === 'eval') {
    // A string goes through BiDi's script.evaluate, which the pages' CSP (no eval) allows.
    return await page.evaluate(`(async () => {\n${request.expr}\n})()`);
  }
  throw new Error('unknown op ' + request.op);
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  try {
    send({ id: request.id, ok: true, value: (await handle(request)) ?? null });
  } catch (err) {
    send({ id: request.id, ok: false, error: String(err && err.stack || err) });
  }
}
await browser.close();
