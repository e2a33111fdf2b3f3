// Drives the dashboard end to end in headless Chromium:
//   node dashboard.mjs <daemon url> <admin token> <plugin.wasm to upload> <screenshot.png>
// The daemon has the `hello` plugin and a cron job `greet` already. Exits 0
// when every step passed; prints what it did and, on failure, why.

import { chromium } from "playwright-core";

const [url, token, pluginPath, screenshotPath] = process.argv.slice(2);
const step = (text) => console.log("step: " + text);

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

  step("sign in is asked for, a bad token refused");
  await page.goto(url + "/");
  await page.fill("#token", "sc_wrong");
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#signin-error:has-text('not accepted')");
  await page.fill("#token", token);
  await page.click("#signin-form button[type=submit]");

  step("the jobs table lists greet with its schedule and next fire");
  const greet = page.locator("#jobs tr[data-job=greet]");
  await greet.waitFor();
  const greetText = await greet.innerText();
  if (!greetText.includes("0 8 * * MON-FRI") || !greetText.includes("active")) throw new Error("greet row: " + greetText);

  step("a new job: the cron preview follows the typing");
  await page.click("#new-job");
  await page.fill("#f-name", "ui-job");
  await page.selectOption("#f-plugin", "hello");
  await page.fill("#f-value", "*/5 * * * *");
  await page.waitForSelector("#preview li");
  if ((await page.locator("#preview li").count()) !== 5) throw new Error("the preview shows 5 fires");
  await page.fill("#f-value", "61 * * * *");
  await page.waitForSelector("#preview .error");
  await page.fill("#f-value", "30 9 * * *");
  await page.fill("#f-zone", "Europe/Berlin");
  await page.waitForFunction(() => document.querySelectorAll("#preview li").length === 5
    && document.querySelector("#preview li").textContent.includes(":30:00"));
  await page.fill("#f-input", '{"name": "browser"}');
  await page.click("#save-job");
  const row = page.locator("#jobs tr[data-job=ui-job]");
  await row.waitFor();

  step("run it: the runs tab shows it finish live, the detail has output and log");
  await row.locator("button[data-action=run]").click();
  await page.waitForSelector("#tab-runs:not(.hidden)");
  const done = page.locator("#runs tbody tr", { hasText: "ui-job" }).filter({ hasText: "succeeded" });
  await done.first().waitFor({ timeout: 15000 });
  await done.first().click();
  await page.waitForSelector("#d-output:has-text('Hello, browser!')");
  await page.waitForSelector("#d-log:has-text('browser')");

  step("pause, resume, edit, delete");
  await page.click("#tabs button[data-tab=jobs]");
  await row.locator("button[data-action=pause]").click();
  await page.waitForSelector("#jobs tr[data-job=ui-job] .s-paused");
  await row.locator("button[data-action=resume]").click();
  await page.waitForSelector("#jobs tr[data-job=ui-job] .s-active");
  await row.locator("button[data-action=edit]").click();
  await page.selectOption("#f-kind", "every");
  await page.fill("#f-value", "15m");
  await page.click("#save-job");
  await page.waitForSelector("#jobs tr[data-job=ui-job]:has-text('every 15m')");
  await row.locator("button[data-action=delete]").click();
  await page.waitForSelector("#jobs tr[data-job=ui-job]", { state: "detached" });

  step("upload a plugin");
  await page.click("#tabs button[data-tab=plugins]");
  await page.setInputFiles("#u-file", pluginPath);
  await page.fill("#u-name", "uploaded");
  await page.click("#upload-form button[type=submit]");
  await page.waitForSelector("#plugins tr[data-plugin=uploaded]");

  step("the next 7 days show greet's weekday fires");
  await page.click("#tabs button[data-tab=calendar]");
  await page.waitForSelector("#calendar .day");
  await page.waitForFunction(() => document.querySelectorAll("#calendar .fire").length >= 4);
  const fires = await page.locator("#calendar .fire").allInnerTexts();
  if (!fires.every((text) => text.includes("greet"))) throw new Error("calendar: " + fires.join(" | "));

  step("screenshot");
  await page.click("#tabs button[data-tab=jobs]");
  await page.waitForSelector("#jobs tr[data-job=greet]");
  await page.screenshot({ path: screenshotPath, fullPage: true });

  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  if (outside.length) throw new Error("requests beyond the daemon: " + outside.join(", "));
  step("all passed");
} catch (error) {
  failed = true;
  console.error("FAILED: " + (error && error.stack ? error.stack : error));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
