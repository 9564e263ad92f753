// Programs in a real headless Chromium: Debian's /usr/bin/chromium driven by playwright-core
// (which never downloads a browser of its own). A program is an ES module bundled for the
// browser; it is served from a made-up origin through request interception, so no server
// and no network are involved. Its console lines are returned for comparison with Node's.
import { existsSync } from "node:fs";
import { build } from "esbuild";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.DEVREF_CHROMIUM ?? "/usr/bin/chromium";
const ORIGIN = "http://devref.test";

/** Launches headless Chromium; a fresh profile each time (playwright makes a temporary one). */
export async function launchChromium() {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)`,
    );
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Bundles an ES module for the browser (`contents` resolved from `resolveDir`): Node
 * built-ins are not available there, so a package that needs one fails here.
 */
export async function bundleForBrowser(contents, resolveDir) {
  const result = await build({
    stdin: { contents, resolveDir, sourcefile: "entry.mjs", loader: "js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

/**
 * Runs a bundled module in a new page and resolves to `{ ok, why, lines }`; the module sets
 * `globalThis.__devrefDone = true` when it has finished (top-level await included).
 */
export async function runInChromium(browser, code, timeoutMs = 60_000) {
  const page = await browser.newPage();
  const lines = [];
  const errors = [];
  page.on("console", (msg) => lines.push(msg.text()));
  page.on("pageerror", (err) => errors.push(err.stack ?? String(err)));
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === "/") {
      return route.fulfill({
        contentType: "text/html",
        body: `<!doctype html><meta charset="utf-8"><script>${PROLOGUE}</script><script type="module" src="/main.js"></script>`,
      });
    }
    if (path === "/main.js") return route.fulfill({ contentType: "text/javascript", body: code });
    return route.fulfill({ status: 404, body: "" });
  });
  try {
    await page.goto(`${ORIGIN}/`, { waitUntil: "commit" });
    await page.waitForFunction(
      () => globalThis.__devrefDone === true || globalThis.__devrefFailed === true,
      undefined,
      { timeout: timeoutMs, polling: 50 },
    );
    const rejected = await page.evaluate(() => globalThis.__devrefError);
    if (rejected && errors.length === 0) errors.push(rejected);
  } catch (err) {
    if (errors.length === 0) errors.push(String(err));
  } finally {
    await page.close();
  }
  return { ok: errors.length === 0, why: errors.join("\n"), lines };
}

/** The statement that ends a browser program's entry module. */
export const BROWSER_DONE = "globalThis.__devrefDone = true;";

// Runs before the module graph: an uncaught error or rejection ends the wait at once.
const PROLOGUE =
  'addEventListener("error", () => { globalThis.__devrefFailed = true; });' +
  'addEventListener("unhandledrejection", (e) => { globalThis.__devrefFailed = true;' +
  " globalThis.__devrefError = String((e.reason && e.reason.stack) || e.reason); });";
