/*
 * browser.mjs — headless Chromium for the dashboard's tests (playwright-core
 * driving Debian's /usr/bin/chromium, or $CHROMIUM). A browser that cannot
 * start fails the test with what to install; it never skips.
 * Screenshots go to $WHARF_TEST_OUTPUT/dashboard (default
 * build/test-output/dashboard in the repository).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHOT_DIR = path.join(process.env.WHARF_TEST_OUTPUT || path.join(REPO, 'build/test-output'), 'dashboard');

export async function launchBrowser() {
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  } catch (e) {
    throw new Error(`Chromium cannot start from ${CHROMIUM} (install Debian's chromium: make deps, ` +
      `or set CHROMIUM): ${e.message.split('\n')[0]}`);
  }
}

/* Writes the page's screenshot as SHOT_DIR/<name>.png; returns the path. */
export async function screenshot(page, name) {
  mkdirSync(SHOT_DIR, { recursive: true });
  const file = path.join(SHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
