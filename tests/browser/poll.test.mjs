// How the web page follows a task, in a real browser (headless Debian
// Chromium through playwright-core). Starts nothing itself: upload_test.cpp
// starts redis-server and resized with --http.max-poll-wait=0 and passes
// their URL.
//
//   node tests/browser/poll.test.mjs <base-url> <photo> <artifact-dir>
//
// On a node that takes no long-poll wait the page polls without ?wait= (a
// wait over the node's maximum is refused 400) and reaches SUCCESS. With
// status GETs answered by the test (page.route) in between: after a 503
// with Retry-After, a proxy's non-JSON 502 and a network error the page
// asks again (after the Retry-After) and reaches SUCCESS; a 404 ends it;
// transient failures for two minutes in a row (the page's clock run
// ahead) make it stop and say so; a result image that does not load is
// reported. Exits non-zero on any failure.
import {resolve} from 'node:path';

import {check, fail, launch, report} from './harness.mjs';

const [baseUrl, photo, artifactDir] = process.argv.slice(2);
if (!baseUrl || !photo || !artifactDir) {
  console.error('usage: poll.test.mjs <base-url> <photo> <artifact-dir>');
  process.exit(2);
}

const pollPath = /\/api\/v1\/resize\/[0-9a-f-]{36}/;
const isPoll = (url) => pollPath.test(url.pathname);
const finalStatus = '#status[data-status="SUCCESS"], ' +
  '#status[data-status="ERROR"], #status[data-status="FAILURE"], ' +
  '#status[data-status="STOPPED"]';
// Polls `cond` every 20 ms until it holds or `ms` have passed.
async function until(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline)
    await new Promise((done) => setTimeout(done, 20));
  return cond();
}

const apiError = (code, message) =>
  JSON.stringify({success: false, error: {code, message}});

const browser = await launch(artifactDir);
const {context} = browser;

// A fresh page of the service, the photo chosen; `polls` collects the
// status GETs it makes and their answers' codes. With `clock`, the page's
// timers and performance.now() run on Playwright's clock.
async function freshPage({clock = false} = {}) {
  const page = await context.newPage();
  if (clock) await page.clock.install();
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

  // Transient answers in between: the page goes on, after the Retry-After.
  {
    const {page} = await freshPage();
    const seen = []; // [what, time] of each status GET the test answered
    const transients = [
      (route) => route.fulfill({
        status: 503, headers: {'Retry-After': '2'},
        contentType: 'application/json',
        body: apiError('store_unavailable', 'Redis is not answering'),
      }),
      (route) => route.fulfill({
        status: 502, contentType: 'text/html',
        body: '<html><body>502 Bad Gateway</body></html>',
      }),
      (route) => route.abort('connectionreset'),
      (route) => route.fulfill({
        status: 504, contentType: 'application/json',
        body: apiError('timeout', 'the status store did not answer in time'),
      }),
    ];
    await page.route(isPoll, (route) => {
      seen.push(Date.now());
      const next = transients[seen.length - 1];
      return next ? next(route) : route.continue();
    });
    await page.click('#submit');
    // The note of the first one, while the page waits out its Retry-After.
    await page.waitForSelector('#error:not([hidden])', {timeout: 10000});
    const note = await page.textContent('#error');
    check(/503 store_unavailable.*asking again in 2\.0 s/.test(note),
          `the page says it asks again (${note})`);
    await page.waitForSelector(finalStatus, {timeout: 30000});
    const status = await page.getAttribute('#status', 'data-status');
    check(status === 'SUCCESS', `after 503, 502, a network error and 504 ` +
            `the task reaches SUCCESS (${status}: ` +
            `${await page.textContent('#error')})`);
    check(seen.length > transients.length,
          `it asked again after each (${seen.length} status GETs)`);
    check(seen.length >= 2 && seen[1] - seen[0] >= 1800,
          `it waited out the Retry-After (${seen[1] - seen[0]} ms)`);
    await page.waitForSelector('#result-img[data-loaded="true"]',
                               {timeout: 10000});
    check(await page.isHidden('#error'), 'no error left shown');
    await page.close();
  }

  // A 4xx is final.
  {
    const {page} = await freshPage();
    await page.route(isPoll, (route) => route.fulfill({
      status: 404, contentType: 'application/json',
      body: apiError('unknown_token', 'no such task (or it expired)'),
    }));
    await page.click('#submit');
    await page.waitForSelector(finalStatus, {timeout: 30000});
    const status = await page.getAttribute('#status', 'data-status');
    const text = await page.textContent('#error');
    check(status === 'ERROR' && /^404 unknown_token/.test(text),
          `a 404 ends it (${status}: ${text})`);
    await page.close();
  }

  // Transient failures without end: after two minutes of them (the page's
  // clock run ahead) the page stops and says the task may still finish.
  {
    const {page} = await freshPage({clock: true});
    let answered = 0;
    await page.route(isPoll, (route) => {
      answered++;
      return route.fulfill({
        status: 503, headers: {'Retry-After': '1'},
        contentType: 'application/json',
        body: apiError('shutting_down', 'the node is shutting down'),
      });
    });
    await page.click('#submit');
    await page.waitForSelector('#error:not([hidden])', {timeout: 10000});
    // Each step runs the page's clock a minute on, which fires the retry
    // due; its GET is answered before the next step (or the retry was
    // scheduled after the step and the next one fires it).
    for (let i = 0; i < 10 && await page.getAttribute(
        '#status', 'data-status') !== 'STOPPED'; i++) {
      const before = answered;
      await page.clock.runFor(61000);
      await until(() => answered > before, 5000);
    }
    const status = await page.getAttribute('#status', 'data-status');
    const text = await page.textContent('#error');
    check(status === 'STOPPED' && /no answer for \d+ s .*may still finish/.test(text),
          `after two minutes of 503s it stops and says so (${status}: ${text})`);
    check((await page.textContent('#steps li:last-child')).trim() === 'No answer',
          'the last step reads "No answer"');
    await page.close();
  }

  // A SUCCESS whose image does not load is reported.
  {
    const {page} = await freshPage();
    await page.route((url) => url.pathname.startsWith('/api/v1/images/'),
                     (route) => route.abort('connectionreset'));
    await page.click('#submit');
    // (The image stays hidden: only a loaded one is shown.)
    await page.waitForSelector('#result-img[data-loaded="error"]',
                               {state: 'attached', timeout: 30000});
    const text = await page.textContent('#error');
    check(await page.isVisible('#error') &&
            /result could not be loaded from \/api\/v1\/images\//.test(text),
          `an image that does not load is reported (${text})`);
    await page.close();
  }
} catch (err) {
  fail(err);
} finally {
  await browser.close();
}
report();
