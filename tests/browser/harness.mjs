// What the browser tests share: checks counted into one summary, and a
// headless Debian Chromium (playwright-core) with a fresh profile.
import {mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

let passed = 0;
let failed = 0;

export function check(cond, what) {
  if (cond) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}`);
  }
}

// An exception that ended the test's steps: one more failure.
export function fail(err) {
  failed++;
  console.log(`not ok - ${err.stack || err}`);
}

// A browser with a fresh profile directory (--user-data-dir) for this run;
// `close()` ends it and removes the profile. Artefacts go to `artifactDir`
// (made here).
export async function launch(artifactDir) {
  mkdirSync(artifactDir, {recursive: true});
  const profile = mkdtempSync(join(tmpdir(), 'resized-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
    viewport: {width: 1280, height: 900},
    timeout: 60000,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, {recursive: true, force: true});
    },
  };
}

// Prints the summary and exits: non-zero on any failure.
export function report() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
