// The web page in a real browser: headless Debian Chromium driven by
// playwright-core. Starts nothing itself: run-browser-test.sh (ctest) starts
// redis-server and resized and passes their URL.
//
//   node tests/browser/upload.test.mjs <base-url> <photo> <artifact-dir>
//        <max-body-bytes> <max-dimension>
//
// Checks the page shows the service's limits (the ones it was started with)
// and refuses a file over the upload limit before sending anything. Uploads
// <photo> through the page's file picker with width/height/mode
// chosen in the form, waits for the result image, asserts its natural size
// is the requested one, checks the cluster panel filled in, and saves
// screenshots at laptop (1280 px) and phone (390 px) widths, and one of the
// refused file, into <artifact-dir>. Then, from pages of other origins, calls
// the API with fetch: the origin resized lists in http.cors-origins
// (localhost:<port>, which upload_test.cpp starts it with) submits, polls and
// fetches the result; another one is refused by the browser. Exits non-zero
// on any failure.
import {readFileSync, statSync} from 'node:fs';
import {resolve} from 'node:path';

import {check, fail, launch, report} from './harness.mjs';

const [baseUrl, photo, artifactDir, maxBody, maxDimension] =
  process.argv.slice(2);
if (!baseUrl || !photo || !artifactDir || !maxBody || !maxDimension) {
  console.error('usage: upload.test.mjs <base-url> <photo> <artifact-dir> ' +
                '<max-body-bytes> <max-dimension>');
  process.exit(2);
}

const want = {width: 240, height: 180};

const browser = await launch(artifactDir);
const {context} = browser;

try {
  const page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  let uploads = 0; // POSTs to /api/v1/resize
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().includes('/api/v1/resize')) uploads++;
  });
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });

  const res = await page.goto(baseUrl + '/', {waitUntil: 'load'});
  check(res && res.status() === 200, 'GET / answers 200');
  check((await page.title()).includes('resized'), 'page title names resized');

  // The cluster panel fills in from /api/v1/cluster and /metrics.
  await page.waitForFunction(
    () => /^\d+ \/ \d+$/.test(
      document.getElementById('m-workers').textContent.trim()),
    null, {timeout: 10000});
  const workers = await page.textContent('#m-workers');
  check(/^\d+ \/ [1-9]\d*$/.test(workers.trim()),
        `cluster panel shows workers busy/total (${workers.trim()})`);
  // Throws on a timeout (counted as a failure below); passed if it is seen.
  await page.waitForSelector('#health[data-state="ready"]', {timeout: 10000});
  check(true, 'readiness badge says ready');

  // The node's limits are in the page.
  for (const id of ['width', 'height']) {
    const max = await page.getAttribute(`#${id}`, 'max');
    check(max === maxDimension, `#${id} max is ${maxDimension} (${max})`);
  }
  const hint = (await page.textContent('#dz-empty')).replace(/\s+/g, ' ');
  check(hint.includes('up to 1 MiB'), `drop zone names the limit (${hint})`);

  // A file over the upload limit is refused before it is sent: the photo
  // with zeros after its end (a JPEG decoder stops at the end marker, so
  // the preview still shows it).
  const jpeg = readFileSync(photo);
  const big = Math.round(Number(maxBody) * 1.5);
  await page.setInputFiles('#file', {
    name: 'big.jpg', mimeType: 'image/jpeg',
    buffer: Buffer.concat([jpeg, Buffer.alloc(big - jpeg.length)]),
  });
  await page.waitForSelector('#file-error:not([hidden])', {timeout: 5000});
  const tooBig = (await page.textContent('#file-error')).trim();
  check(tooBig === "1.5 MiB is over this server's 1 MiB limit",
        `says the file is too big: "${tooBig}"`);
  check(await page.isDisabled('#submit'), 'Resize is off for that file');
  check(uploads === 0, `nothing was uploaded (${uploads} POSTs)`);
  await page.screenshot({path: resolve(artifactDir, 'browser-too-big.png')});

  // Choose the photo and the options, then submit.
  await page.setInputFiles('#file', photo);
  check(await page.isHidden('#file-error'), 'a photo under the limit is fine');
  await page.fill('#width', String(want.width));
  await page.fill('#height', String(want.height));
  await page.selectOption('#mode', 'fill');
  await page.selectOption('#format', 'jpeg');
  await page.click('#submit');

  // Live status, then the result image.
  await page.waitForSelector('#result-img[data-loaded="true"]',
                             {timeout: 30000});
  const status = await page.getAttribute('#status', 'data-status');
  check(status === 'SUCCESS', `status badge is SUCCESS (${status})`);
  const natural = await page.$eval('#result-img', (img) => ({
    width: img.naturalWidth,
    height: img.naturalHeight,
    complete: img.complete,
  }));
  check(natural.complete, 'result image loaded');
  check(natural.width === want.width && natural.height === want.height,
        `result image is ${want.width}x${want.height} ` +
          `(natural ${natural.width}x${natural.height})`);
  const dims = (await page.textContent('#result-dims')).trim();
  check(dims === `${want.width} × ${want.height}`, `caption shows ${dims}`);
  const bytesText = (await page.textContent('#result-bytes')).trim();
  check(/^[\d\u2009]+ bytes$/.test(bytesText) && !/^0 bytes/.test(bytesText),
        `caption shows the size in bytes (${bytesText})`);

  // The task shows up in the metrics-driven counter within a refresh.
  await page.waitForFunction(
    () => Number(document.getElementById('m-done').textContent
                   .replace(/\D/g, '')) >= 1,
    null, {timeout: 5000}).catch(() => {});
  const done = (await page.textContent('#m-done')).trim();
  check(Number(done.replace(/\D/g, '')) >= 1,
        `cluster panel counts the finished task (${done})`);

  await page.waitForTimeout(1200); // one more cluster refresh for the rate
  const laptop = resolve(artifactDir, 'browser-upload.png');
  await page.screenshot({path: laptop, fullPage: true});
  check(statSync(laptop).size > 0, 'laptop screenshot written');
  console.log(`screenshot: ${laptop}`);

  // Phone width: the layout stacks and nothing scrolls sideways.
  await page.setViewportSize({width: 390, height: 844});
  // Laid out again at that width: the next frame after the resize.
  await page.waitForFunction(() => window.innerWidth === 390);
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(done)));
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal scroll at 390 px (overflow ${overflow})`);
  const phone = resolve(artifactDir, 'browser-upload-phone.png');
  await page.screenshot({path: phone, fullPage: true});
  console.log(`screenshot: ${phone}`);

  check(pageErrors.length === 0,
        `no script errors on the page${pageErrors.length
          ? ': ' + pageErrors.join(' | ') : ''}`);

  // Pages of other origins calling the API, with the browser enforcing
  // CORS. resized runs with http.cors-origins=http://localhost:<port>: the
  // same server named localhost is that origin; named unlisted.localhost
  // (loopback too, in Chromium) it is one not listed.
  const apiPort = new URL(baseUrl).port;
  const b64 = jpeg.toString('base64');
  // Runs `script(arg)` in a page of `origin` (a fresh tab on its /healthz).
  const onPageOf = async (origin, script, arg) => {
    const other = await context.newPage();
    try {
      await other.goto(`${origin}/healthz`);
      return await other.evaluate(script, arg);
    } finally {
      await other.close();
    }
  };
  const crossOrigin = (origin) =>
    onPageOf(origin, async ([api, imageData]) => {
      try {
        const post = await fetch(`${api}/api/v1/resize`, {
          method: 'POST',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({imageData, width: 32, height: 24}),
        });
        const token = (await post.json()).token;
        const location = post.headers.get('Location');
        let rec = {};
        for (let i = 0; i < 100 && !/SUCCESS|FAILURE/.test(rec.status); i++)
          rec = await (await fetch(`${api}/api/v1/resize/${token}?wait=5`))
            .json();
        const img = await fetch(`${api}${rec.resized_image_url}`);
        const blob = await img.blob();
        return {status: post.status, location, final: rec.status,
                etag: img.headers.get('ETag'), bytes: blob.size};
      } catch (e) {
        return {error: String(e)};
      }
    }, [baseUrl, b64]);
  const listed = await crossOrigin(`http://localhost:${apiPort}`);
  check(listed.status === 202 && /^\/api\/v1\/resize\//.test(listed.location),
        `a listed origin's page submits and reads the 202 and its Location ` +
          `(${JSON.stringify(listed)})`);
  check(listed.final === 'SUCCESS' && listed.bytes > 0 && listed.etag,
        'it polls the task and fetches the thumbnail and its ETag');
  // Uploads over limits.max-body-bytes, from the listed origin: one read
  // and refused by the handler (under twice the limit), one refused by the
  // socket at its header block (over twice): the page reads both 413s.
  const tooLarge = (origin, bytes) =>
    onPageOf(origin, async ([api, size]) => {
      try {
        const r = await fetch(`${api}/api/v1/resize`, {
          method: 'POST',
          headers: {'Content-Type': 'image/jpeg'},
          body: new Uint8Array(size),
        });
        return {status: r.status, code: (await r.json()).error.code};
      } catch (e) {
        return {error: String(e)};
      }
    }, [baseUrl, bytes]);
  for (const bytes of [Math.floor(Number(maxBody) * 1.5), Number(maxBody) * 3]) {
    const r = await tooLarge(`http://localhost:${apiPort}`, bytes);
    check(r.status === 413 && r.code === 'payload_too_large',
          `a listed origin's page reads the 413 of a ${bytes}-byte upload ` +
            `(${JSON.stringify(r)})`);
  }
  // Refused by the browser because resized answered its preflight 403 (as
  // /metrics counts), not for any other network failure.
  const refusals = async () => {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    return text.split('\n')
      .filter((line) => line.startsWith('resized_http_requests_total{') &&
                        line.includes('code="403"'))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  };
  const refusedBefore = await refusals();
  const unlisted = await crossOrigin(`http://unlisted.localhost:${apiPort}`);
  const refused = (await refusals()) - refusedBefore;
  check(/TypeError/.test(unlisted.error || '') && refused === 1,
        `an origin not listed is refused by the browser after resized ` +
          `refused its preflight (${JSON.stringify(unlisted)}, ` +
          `${refused} refusal(s) counted)`);
} catch (err) {
  fail(err);
} finally {
  await browser.close();
}
report();
