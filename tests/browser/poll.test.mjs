// How the web page follows a task, in a real browser (headless Debian
// Chromium through playwright-core). Starts nothing itself: upload_test.cpp
// starts redis-server and resized with --http.max-poll-wait=0 and passes
// their URL.
//
//   node tests/browser/poll.test.mjs <base-url> <photo> <artifact-dir>
//
// On a node that takes no long-poll wait the page polls without ?wait= (a
// wait over the node's maximum is refused 400) and reaches SUCCESS. Exits
// non-zero on any failure.
import {mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import {chromium} from 'playwright-core';

const [baseUrl, photo, artifactDir] = process.argv.slice(2);
if (!baseUrl || !photo || !artifactDir) {
  console.error('usage: poll.test.mjs <base-url> <photo> <artifact-dir>');
  process.exit(2);
}

const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
let passed = 0;
let failed = 0;

function check(cond, what) {
  if (cond) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}`);
  }
}

const pollPath = /\/api\/v1\/resize\/[0-9a-f-]{36}/;

mkdirSync(artifactDir, {recursive: true});
const profile = mkdtempSync(join(tmpdir(), 'resized-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
  viewport: {width: 1280, height: 900},
  timeout: 60000,
});

// A fresh page of the service, the photo chosen; `polls` collects the
// status GETs it makes and their answers' codes.
async function freshPage() {
  const page = await context.newPage();
  const polls = [];
  page.on('response', (r) => {
    if (r.request().method() === 'GET' && pollPath.test(r.url()))
      polls.push({url: r.url(), status: r.status()});
  });
  const res = await page.goto(baseUrl + '/', {waitUntil: 'load'});
  check(res && res.status() === 200, 'GET / answers 200');
  await page.setInputFiles('#file', photo);
  await page.fill('#width', '64');
  await page.fill('#height', '48');
  return {page, polls};
}

try {
  // The node takes no wait: the page polls plainly and reaches SUCCESS.
  {
    const {page, polls} = await freshPage();
    const max = await page.getAttribute('#result', 'data-max-poll-wait');
    check(max === '0', `the page carries the node's max-poll-wait (${max})`);
    await page.click('#submit');
    await page.waitForSelector(
      '#status[data-status="SUCCESS"], #status[data-status="ERROR"], ' +
        '#status[data-status="FAILURE"]', {timeout: 30000});
    const status = await page.getAttribute('#status', 'data-status');
    check(status === 'SUCCESS', `the task reaches SUCCESS (${status}: ` +
            `${await page.textContent('#error')})`);
    await page.waitForSelector('#result-img[data-loaded="true"]',
                               {timeout: 10000});
    check(true, 'the result image loaded');
    check(polls.length > 0 && polls.every((p) => !/[?&]wait=/.test(p.url)),
          `no poll asks for a wait (${polls.map((p) => p.url).join(' ')})`);
    check(polls.every((p) => p.status === 200),
          `every poll answered 200 (${polls.map((p) => p.status)})`);
    await page.screenshot({path: resolve(artifactDir, 'browser-no-wait.png')});
    await page.close();
  }
} catch (err) {
  failed++;
  console.log(`not ok - ${err.stack || err}`);
} finally {
  await context.close();
  rmSync(profile, {recursive: true, force: true});
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
