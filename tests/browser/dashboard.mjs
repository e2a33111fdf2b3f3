// Drives the dashboard end to end in headless Chromium:
//   node dashboard.mjs <daemon url> <admin token> <plugin.wasm to upload> <screenshot.png>
// The daemon has the `hello` plugin and a cron job `greet` already. Exits 0
// when every step passed; prints what it did and, on failure, why.

import { expect, session, step } from "./browser.mjs";

const [url, token, pluginPath, screenshotPath] = process.argv.slice(2);

await session(url, async (page) => {
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
  expect(greetText.includes("0 8 * * MON-FRI") && greetText.includes("active"), "greet row: " + greetText);

  step("a new job: the cron preview follows the typing");
  await page.click("#new-job");
  await page.fill("#f-name", "ui-job");
  await page.selectOption("#f-plugin", "hello");
  await page.fill("#f-value", "*/5 * * * *");
  await page.waitForSelector("#preview li");
  expect((await page.locator("#preview li").count()) === 5, "the preview shows 5 fires");
  await page.fill("#f-value", "61 * * * *");
  await page.waitForSelector("#preview .error");
  await page.fill("#f-value", "30 9 * * *");
  await page.fill("#f-zone", "Europe/Berlin");
  await page.waitForFunction(() => document.querySelectorAll("#preview li").length === 5
    && document.querySelector("#preview li").textContent.includes(":30:00"));
  await page.fill("#f-input", '{"name": "browser"}');
  await page.check("#f-record");
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

  step("the run recorded its host calls: replayed, it is identical");
  await page.waitForSelector("#d-fields:has-text('host calls')");
  await page.click("#d-replay");
  await page.waitForSelector("#d-replayed[data-identical=true]");
  expect((await page.locator("#d-replayed").innerText()).includes("Hello, browser!"), "the replay's output is shown");

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

  step("the next 7 days show each job's fires as the daemon computes them, frequent ones folded per hour");
  await page.click("#tabs button[data-tab=calendar]");
  await page.waitForSelector("#calendar[data-to] .day");
  const shown = await page.evaluate(() => ({
    from: document.querySelector("#calendar").dataset.from,
    to: document.querySelector("#calendar").dataset.to,
    entries: [...document.querySelectorAll("#calendar .fire")].map((node) => ({ ...node.dataset })),
  }));
  const jobs = (await (await fetch(url + "/v1/jobs", { headers: { authorization: "Bearer " + token } })).json()).jobs;
  for (const job of jobs.filter((job) => job.state === "active" && job.schedule)) {
    const range = "from=" + encodeURIComponent(shown.from) + "&to=" + encodeURIComponent(shown.to) + "&limit=1000";
    const answer = await (await fetch(url + "/v1/jobs/" + job.id + "/fires?" + range, { headers: { authorization: "Bearer " + token } })).json();
    const mine = shown.entries.filter((entry) => entry.job === job.name);
    const singles = mine.filter((entry) => entry.at), folds = mine.filter((entry) => entry.hour);
    const listed = new Set(answer.fires.map((fire) => Date.parse(fire.at)));
    const hours = new Map(answer.hours.map((hour) => [Date.parse(hour.hour), hour.count]));
    const total = singles.length + folds.reduce((sum, entry) => sum + Number(entry.count), 0);
    expect(total === answer.total, job.name + ": " + total + " shown, the daemon says " + answer.total);
    expect(singles.every((entry) => listed.has(Date.parse(entry.at))), job.name + ": a fire the daemon does not list: " + JSON.stringify(singles));
    expect(folds.every((entry) => hours.get(Date.parse(entry.hour)) === Number(entry.count)), job.name + ": folds " + JSON.stringify(folds));
    console.log("  " + job.name + ": " + singles.length + " fires and " + folds.length + " hours folded, " + total + " in all");
  }
  const byJob = (name) => shown.entries.filter((entry) => entry.job === name);
  expect(byJob("tick").length > 0 && byJob("tick").every((entry) => entry.hour), "the every-10s job is folded per hour");
  const anchor = new Date(jobs.find((job) => job.name === "half-hourly").created_at);
  expect(byJob("half-hourly").length > 0 && byJob("half-hourly").every((entry) => {
    const at = new Date(entry.at);
    return entry.at && at.getUTCSeconds() === anchor.getUTCSeconds() && at.getUTCMinutes() % 30 === anchor.getUTCMinutes() % 30;
  }), "the every-30m job fires on its own anchor: " + JSON.stringify(byJob("half-hourly").slice(0, 3)));
  expect(byJob("greet").length >= 4 && byJob("once").length === 1 && byJob("breather").length === 1, "greet, once and breather are shown");

  step("a job's rules are shown, and kept when the form edits its schedule");
  await page.click("#tabs button[data-tab=jobs]");
  const kolkata = page.locator("#jobs tr[data-job=kolkata]");
  await kolkata.waitFor();
  const kolkataText = await kolkata.innerText();
  expect(kolkataText.includes("exclude") && kolkataText.includes("max_fires 4"), "kolkata row: " + kolkataText);
  await kolkata.locator("button[data-action=edit]").click();
  await page.fill("#f-value", "0 10 * * *");
  await page.click("#save-job");
  await page.waitForSelector("#jobs tr[data-job=kolkata]:has-text('0 10 * * *')");
  const edited = await (await fetch(url + "/v1/jobs/kolkata", { headers: { authorization: "Bearer " + token } })).json();
  expect(edited.schedule.cron === "0 10 * * *" && edited.schedule.max_fires === 4 && edited.schedule.exclude.length === 1,
    "the rules survive the edit: " + JSON.stringify(edited.schedule));

  step("screenshot");
  await page.click("#tabs button[data-tab=jobs]");
  await page.waitForSelector("#jobs tr[data-job=greet]");
  await page.screenshot({ path: screenshotPath, fullPage: true });
});
