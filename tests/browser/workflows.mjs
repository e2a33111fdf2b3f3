// Drives the dashboard's workflows in headless Chromium:
//   node workflows.mjs <daemon url> <admin token> <screenshot.png>
// The daemon has the `step` plugin's jobs `emit`, `echo` and `slow` (3 s)
// and two workflows, never run: `diamond` (extract -> left and right (slow)
// -> load) and `guarded` (on Feb 29 at 06:00; fetch -> store -> alert on failure,
// cleanup always). Exits 0 when every step passed; the runs it starts are
// two of diamond (the second cancelled, then retried) and one of guarded.

import { expect, session, signIn, step } from "./browser.mjs";

const [url, token, screenshotPath] = process.argv.slice(2);

/** Every step box's status, by step id. */
const statuses = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll("#wf-graph .step")].map((box) => [box.dataset.step, box.dataset.status])));
/** Waits until every step box shows `status`. */
const allSteps = (page, status) => page.waitForFunction((wanted) => {
  const boxes = [...document.querySelectorAll("#wf-graph .step")];
  return boxes.length > 0 && boxes.every((box) => box.dataset.status === wanted
    && box.querySelector(".step-state").textContent === wanted);
}, status, { timeout: 30000 });
const opened = (page, name) => page.waitForFunction((wanted) => document.querySelector("#wf-name").textContent === wanted, name);

await session(url, async (page) => {
  const polls = [];
  page.on("request", (request) => { if (request.url().includes("/v1/workflow-runs/")) polls.push(request.url()); });

  step("the workflows tab lists both with steps, on_failure, max_parallel, schedule and next run");
  await signIn(page, url, token);
  await page.click("#tabs button[data-tab=workflows]");
  const diamondRow = page.locator("#workflows tr[data-workflow=diamond]");
  await diamondRow.waitFor();
  const diamond = await diamondRow.locator("td").allInnerTexts();
  expect(diamond[1] === "4" && diamond[2] === "stop" && diamond[3] === "2" && diamond[4] === "on demand" && diamond[5] === "–",
    "diamond row: " + diamond.join(" | "));
  const guarded = await page.locator("#workflows tr[data-workflow=guarded] td").allInnerTexts();
  expect(guarded[1] === "4" && guarded[2] === "continue" && guarded[4].includes("0 6 29 2 *") && /\d/.test(guarded[5]),
    "guarded row: " + guarded.join(" | "));

  step("guarded: failure and always edges are drawn apart from plain needs");
  await page.click("#workflows tr[data-workflow=guarded] button[data-action=open]");
  await opened(page, "guarded");
  for (const [selector, count] of [["#wf-graph .step", 4], ["#wf-graph .edge", 3], ["#wf-graph .edge-success", 1],
    ["#wf-graph .edge-failure", 1], ["#wf-graph .edge-always", 1]]) {
    expect((await page.locator(selector).count()) === count, selector + " should count " + count);
  }
  const dashes = await page.evaluate(() => ["success", "failure", "always"].map((kind) =>
    getComputedStyle(document.querySelector("#wf-graph .edge-" + kind)).strokeDasharray));
  expect(new Set(dashes).size === 3, "three edge styles: " + dashes.join(" | "));
  expect((await page.locator("#wf-graph .step[data-step=alert] .step-when").textContent()) === "when failure", "alert is tagged");
  await page.waitForSelector("#wf-run[data-status=none]");
  await page.waitForSelector("#wf-runs tbody:has-text('No runs yet')");
  expect(await page.isDisabled("#wf-cancel") && await page.isDisabled("#wf-retry"), "nothing to cancel or retry");

  step("diamond: four boxes in three columns by depth, an arrow per need");
  await page.click("#workflows tr[data-workflow=diamond] button[data-action=open]");
  await opened(page, "diamond");
  expect((await page.locator("#wf-graph .step").count()) === 4, "four step boxes");
  expect((await page.locator("#wf-graph .edge-success").count()) === 4, "four arrows");
  const columns = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("#wf-graph .step")]
    .map((box) => [box.dataset.step, Math.round(box.getBoundingClientRect().left)])));
  expect(columns.extract < columns.left && columns.left === columns.right && columns.right < columns.load,
    "columns: " + JSON.stringify(columns));

  step("run now: the slow step shows running, then all four succeed");
  await page.click("#wf-run-now");
  await page.waitForSelector("#wf-graph .step[data-step=right][data-status=running]");
  expect((await page.locator("#wf-graph .step[data-step=right] .step-state").textContent()) === "running", "running label");
  expect(!(await page.isDisabled("#wf-cancel")), "a running run can be cancelled");
  await allSteps(page, "succeeded");
  await page.waitForSelector("#wf-run[data-status=succeeded]");
  const first = await page.getAttribute("#wf-run", "data-run");
  const row = page.locator(`#wf-runs tr[data-workflow-run="${first}"]`);
  await row.waitFor();
  const cells = await row.locator("td").allInnerTexts();
  expect(cells[1] === "succeeded" && cells[2] === "manual" && /\d/.test(cells[4]) && !cells[4].includes("so far"), "history row: " + cells.join(" | "));
  expect((await row.getAttribute("class")).includes("selected"), "the run is the selected one");
  expect(await page.isDisabled("#wf-cancel") && await page.isDisabled("#wf-retry"), "a succeeded run: no cancel, no retry");

  step("polling stopped when the run ended");
  const polled = polls.length;
  expect(polls.some((address) => address.endsWith("/v1/workflow-runs/" + first)), "the run was polled");
  await page.waitForTimeout(2500); // more than two poll intervals
  expect(polls.length === polled, "still polling: " + polls.slice(polled).join(", "));

  step("a step opens its run: output and log, by click and by keyboard");
  await page.click("#wf-graph .step[data-step=load]");
  await page.waitForSelector("#run-detail:not(.hidden)");
  await page.waitForSelector("#d-output:has-text('slow done')");
  await page.waitForSelector(`#d-fields:has-text('load of workflow run ${first}')`);
  expect(await page.isVisible("#d-log"), "the log is shown");
  await page.focus("#wf-graph .step[data-step=extract]");
  await page.keyboard.press("Enter");
  await page.waitForSelector(`#d-fields:has-text('extract of workflow run ${first}')`);
  await page.waitForSelector("#d-output:has-text('rows')");

  step("a second run: cancelled while the slow step runs, then retried to success");
  await page.click("#wf-run-now");
  await page.waitForSelector("#wf-graph .step[data-step=right][data-status=running]");
  const second = await page.getAttribute("#wf-run", "data-run");
  expect(second && second !== first, "a new run is selected");
  await page.click("#wf-cancel");
  await page.waitForSelector("#wf-run[data-status=cancelled]");
  const stopped = await statuses(page);
  expect(stopped.extract === "succeeded" && stopped.right === "cancelled" && stopped.load === "cancelled",
    "after cancel: " + JSON.stringify(stopped));
  await page.click("#wf-retry:not([disabled])");
  await allSteps(page, "succeeded");
  await page.waitForSelector("#wf-run[data-status=succeeded]");
  const history = await page.locator("#wf-runs tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.workflowRun));
  expect(history.length === 2 && history[0] === second && history[1] === first, "newest first: " + history.join(", "));

  step("the history selects the first run again");
  await page.click(`#wf-runs tr[data-workflow-run="${first}"] button`);
  await page.waitForSelector(`#wf-run[data-run="${first}"][data-status=succeeded]`);
  await page.waitForSelector(`#wf-runs tr[data-workflow-run="${first}"].selected`);
  await allSteps(page, "succeeded");

  step("run now in the list opens that workflow on its new run: a handler skipped, an always step run");
  await page.click("#workflows tr[data-workflow=guarded] button[data-action=run]");
  await opened(page, "guarded");
  await page.waitForSelector("#run-detail", { state: "hidden" });
  await page.waitForSelector("#wf-run[data-status=succeeded]");
  const handled = await statuses(page);
  expect(handled.fetch === "succeeded" && handled.store === "succeeded" && handled.alert === "skipped" && handled.cleanup === "succeeded",
    "guarded: " + JSON.stringify(handled));

  step("screenshot of diamond, reopened on its newest run");
  await page.click("#workflows tr[data-workflow=diamond] button[data-action=open]");
  await opened(page, "diamond");
  await page.waitForSelector(`#wf-run[data-run="${second}"]`);
  await allSteps(page, "succeeded");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshotPath, fullPage: true });
});
