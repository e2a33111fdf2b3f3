// What the browser tests share: Debian's headless Chromium (no browser
// download), a page that records script errors and every request beyond
// the daemon, sign-in, and a runner that prints each step and exits 0 only
// when every step passed.

import { chromium } from "playwright-core";

/** Prints a step; the Rust side looks for "step: all passed". */
export const step = (text) => console.log("step: " + text);

/** Throws `message` unless `holds`. */
export function expect(holds, message) {
  if (!holds) throw new Error(message);
}

/** Opens a 1300x900 page, hands it to `body`, and exits with its outcome. */
export async function session(url, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  let failed = false;
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("dialog", (dialog) => dialog.accept());
    // Nothing may be fetched from anywhere but the daemon.
    const outside = [];
    page.on("request", (request) => { if (!request.url().startsWith(url)) outside.push(request.url()); });
    await body(page);
    expect(!errors.length, "page errors: " + errors.join("; "));
    expect(!outside.length, "requests beyond the daemon: " + outside.join(", "));
    step("all passed");
  } catch (error) {
    failed = true;
    console.error("FAILED: " + (error && error.stack ? error.stack : error));
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

/** Signs in with `token` and waits for the tabs. */
export async function signIn(page, url, token) {
  await page.goto(url + "/");
  await page.fill("#token", token);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#tabs:not(.hidden)");
}
