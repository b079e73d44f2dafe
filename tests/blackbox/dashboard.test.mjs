/*
 * dashboard.test.mjs — GET / serves the web dashboard: one static page that
 * holds no data and no secret (it asks for a token and calls the REST API),
 * with headers that keep it from being framed or loading anything foreign.
 * Then a person's tasks in headless Chromium (browser.mjs) against this
 * real server, each action's effect checked through the REST API, a
 * screenshot of each page in build/test-output/dashboard/: queues, the
 * account picker, each queue tab, the charts' axes, keyboard-only use, each
 * page at a phone's width, and the errors a user can meet.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, REPO, screenshot } from './browser.mjs';
import { assertError, startServer } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.dispose();
});

const DESKTOP = { width: 1280, height: 800 };

/* A fresh tab with the dashboard of server at; on close, script errors or
 * a request anywhere but that server fail the test. */
async function openPage(viewport = DESKTOP, at = server) {
  const context = await browser.newContext({ viewport, timezoneId: 'UTC', locale: 'en-GB' });
  const page = await context.newPage();
  const scriptErrors = [];
  const foreign = [];
  page.on('pageerror', (e) => scriptErrors.push(e.message));
  page.on('request', (r) => { if (!r.url().startsWith(at.url + '/')) foreign.push(r.url()); });
  page.on('close', () => {
    assert.deepEqual(scriptErrors, [], 'no script errors');
    assert.deepEqual(foreign, [], 'nothing loaded from elsewhere');
  });
  await page.goto(at.url + '/');
  return page;
}

/* A fresh tab on server at, signed in with token; errors in the page's
 * script fail. The browser's clock reads UTC, so tests can say which times
 * the page labels. */
async function signIn(token = server.token, viewport = DESKTOP, at = server) {
  const page = await openPage(viewport, at);
  await page.fill('#token', token);
  await page.press('#token', 'Enter'); // the keyboard signs in
  return page;
}

const queueByName = async (name) =>
  (await server.api('GET', server.acct('/queues?per_page=100'))).json.result.find((q) => q.queue_name === name);
const errorText = (page) => page.locator('#error');

async function openQueue(page, name) {
  await page.click(`button[aria-label="Open ${name}"]`);
  await page.locator('#detail-title', { hasText: name }).waitFor();
}

test('GET / is the dashboard page, with no secret in it', async () => {
  const res = await server.api('GET', '/', undefined, { token: null, root: true });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html; charset=utf-8/);
  assert.match(res.text, /^<!doctype html>/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'none'.*connect-src 'self'.*frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.ok(!res.text.includes(server.token), 'no token in the page');
  assert.ok(!res.text.includes(server.accountId), 'no account id in the page');
  const bytes = Buffer.byteLength(res.text);
  const stated = Number(readFileSync(path.join(REPO, 'README.md'), 'utf8').match(/It is one file of ([\d,]+) bytes/)[1].replace(/,/g, ''));
  assert.ok(Math.abs(stated - bytes) <= bytes * 0.05, `the README says the page is ${stated} bytes, it is ${bytes}: update it`);
  const script = res.text.slice(res.text.indexOf('<script>') + 8, res.text.indexOf('</script>'));
  assert.doesNotThrow(() => new Function(script), 'the page script compiles'); // eslint-disable-line no-new-func
});

test('only GET: other methods on / get the envelope', async () => {
  assertError(assert, await server.api('POST', '/', '{}', { root: true }), 404);
});

test('queues: list with backlog, search, create with settings', async () => {
  await server.api('POST', server.acct('/queues'), { queue_name: 'orders-list' });
  const page = await signIn();
  await page.locator('#queues tr', { hasText: 'orders-list' }).waitFor();
  await page.fill('#new-name', 'created-in-browser');
  await page.fill('#new-delay', '30');
  await page.fill('#new-retention', '7200');
  await page.click('#create button');
  await page.locator('#queues tr', { hasText: 'created-in-browser' }).waitFor();
  const q = await queueByName('created-in-browser');
  assert.equal(q.settings.delivery_delay, 30);
  assert.equal(q.settings.message_retention_period, 7200);
  await page.fill('#search', 'created');
  await page.locator('#queues tr', { hasText: 'orders-list' }).waitFor({ state: 'detached' });
  assert.equal(await page.locator('#queues tr').count(), 1);
  await screenshot(page, 'queues');
  await page.close();
});

test('accounts: a token that sees two accounts picks each and sees its queues, and the pick survives a reload', async () => {
  const two = await startServer();
  try {
    const second = await two.api('POST', '/accounts', { name: 'second account' });
    assert.equal(second.status, 200, second.text);
    const secondId = second.json.result.id;
    const made = await two.api('POST', '/user/tokens', { name: 'sees both' }); // no account_id: every account
    assert.equal(made.status, 200, made.text);
    const token = made.json.result.value;
    for (const [id, name] of [[two.accountId, 'first-only'], [secondId, 'second-only']]) {
      const q = await two.api('POST', `/accounts/${id}/queues`, { queue_name: name });
      assert.equal(q.status, 200, q.text);
    }
    const memberships = (await two.api('GET', '/memberships', undefined, { token })).json.result;
    assert.deepEqual(memberships.map((m) => m.account.id).sort(), [two.accountId, secondId].sort());
    const queueNames = async (id) => (await two.api('GET', `/accounts/${id}/queues`)).json.result.map((q) => q.queue_name);
    const page = await signIn(token, DESKTOP, two);
    await page.locator('#queues tr').first().waitFor();
    assert.deepEqual((await page.locator('#account option').evaluateAll((os) => os.map((o) => o.value))).sort(),
      memberships.map((m) => m.account.id).sort());
    assert.equal(await page.locator('#account').isEnabled(), true, 'several accounts: the user picks');
    for (const id of [secondId, two.accountId]) {
      await page.selectOption('#account', id);
      const names = await queueNames(id);
      await page.locator('#queues tr', { hasText: names[0] }).waitFor();
      assert.deepEqual(await page.locator('#queues tr td:first-child').allTextContents(), names);
    }
    await page.selectOption('#account', secondId);
    await openQueue(page, 'second-only');
    await page.click('#tab-messages');
    await page.fill('#send-body', '"to the second account"');
    await page.click('#send button');
    const secondQueue = (await two.api('GET', `/accounts/${secondId}/queues`)).json.result[0];
    await assertEventually(async () =>
      (await two.api('GET', `/accounts/${secondId}/queues/${secondQueue.queue_id}/metrics`)).json.result.backlog_count === 1);
    await page.reload();
    await page.locator('#queues tr', { hasText: 'second-only' }).waitFor();
    assert.equal(await page.locator('#account').inputValue(), secondId, 'the pick is kept in the tab');
    await screenshot(page, 'accounts');
    await page.close();

    const bound = await signIn(await two.createToken('queues_read', secondId), DESKTOP, two);
    await bound.locator('#queues tr', { hasText: 'second-only' }).waitFor();
    assert.equal(await bound.locator('#account option').count(), 1);
    assert.equal(await bound.locator('#account').isDisabled(), true, 'one account: nothing to pick');
    await bound.close();
  } finally {
    await two.dispose();
  }
});

test('messages: send text, JSON and a file with a delay; preview changes nothing; select and acknowledge', async () => {
  const { json } = await server.api('POST', server.acct('/queues'), { queue_name: 'messages-q' });
  const id = json.result.queue_id;
  const page = await signIn();
  await openQueue(page, 'messages-q');
  await page.click('#tab-messages');
  await page.fill('#send-body', '{"order": 7, "name": "wörld"}');
  await page.click('#send button');
  await page.locator('#queues tr', { hasText: 'messages-q' }).locator('td.n').first().filter({ hasText: '1' }).waitFor();
  await page.selectOption('#send-type', 'text');
  await page.fill('#send-body', 'plain words');
  await page.click('#send button');
  await page.locator('#queues tr', { hasText: 'messages-q' }).locator('td.n').first().filter({ hasText: '2' }).waitFor();
  await page.setInputFiles('#send-file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: Buffer.from([0, 1, 255]) });
  await page.fill('#send-delay', '600');
  await page.click('#send button');
  await page.locator('#queues tr', { hasText: 'messages-q' }).locator('td.n').first().filter({ hasText: '3' }).waitFor();

  const peek = async () => (await server.api('POST', server.acct(`/queues/${id}/messages/peek`), { batch_size: 100 })).json.result.messages;
  const before = await peek();
  assert.equal(before.length, 3);
  await page.click('#peek');
  await page.locator('#messages tr').nth(2).waitFor();
  const bodies = await page.locator('#messages pre').allTextContents();
  assert.deepEqual(bodies, [JSON.stringify({ order: 7, name: 'wörld' }, null, 2), 'plain words', '3 bytes: 00 01 ff']);
  assert.deepEqual((await page.locator('#messages tr td:nth-child(5)').allTextContents()), ['json', 'text', 'bytes']);
  const after = await peek();
  assert.deepEqual(after.map((m) => [m.id, m.attempts]), before.map((m) => [m.id, m.attempts]), 'preview has no side effect');
  await screenshot(page, 'queue-messages');

  await page.check(`#messages input[aria-label="select ${before[0].id}"]`);
  await page.click('#ack-selected');
  await page.locator('#messages tr').nth(2).waitFor({ state: 'detached' });
  const left = await peek();
  assert.deepEqual(left.map((m) => m.id), [before[1].id, before[2].id], 'the selected message is acknowledged');
  const consumer = await server.api('POST', server.acct(`/queues/${id}/consumers`), { type: 'http_pull' });
  assert.equal(consumer.status, 200, consumer.text);
  const pulled = (await server.api('POST', server.acct(`/queues/${id}/messages/pull`), { batch_size: 10 })).json.result;
  assert.deepEqual(pulled.messages.map((m) => m.id), [before[1].id], 'the file waits out its 600 s delay');
  await page.close();
});

test('keyboard only: sign in, open a queue, move across the tabs (arrows, Home, End) and send a message', async () => {
  const { json } = await server.api('POST', server.acct('/queues'), { queue_name: 'keys-q' });
  const id = json.result.queue_id;
  const page = await openPage();
  const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.getAttribute('aria-label'));
  /* Tab until the focus is on selector; fails if it never gets there. */
  const tabTo = async (selector) => {
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((s) => document.activeElement.matches(s), selector)) return;
    }
    assert.fail(`Tab never reaches ${selector} (stuck at ${await focused()})`);
  };
  await tabTo('#token');
  await page.keyboard.type(server.token);
  await page.keyboard.press('Enter');
  await page.locator('#queues tr', { hasText: 'keys-q' }).waitFor();
  await tabTo('button[aria-label="Open keys-q"]');
  await page.keyboard.press('Enter');
  await page.locator('#detail-title', { hasText: 'keys-q' }).waitFor();
  await tabTo('[role=tab]');
  assert.equal(await focused(), 'tab-overview', 'Tab reaches the selected tab');
  const shown = () => page.evaluate(() => ({
    focus: document.activeElement.id,
    selected: [...document.querySelectorAll('[role=tab][aria-selected=true]')].map((t) => t.id),
    inTabOrder: [...document.querySelectorAll('[role=tab]')].filter((t) => t.tabIndex === 0).map((t) => t.id),
    panes: [...document.querySelectorAll('[role=tabpanel]')].filter((p) => !p.hidden).map((p) => p.id),
  }));
  for (const [key, tab] of [['ArrowRight', 'messages'], ['ArrowRight', 'consumers'], ['End', 'settings'], ['ArrowRight', 'overview'],
    ['ArrowLeft', 'settings'], ['Home', 'overview'], ['ArrowLeft', 'settings'], ['ArrowLeft', 'subscriptions'], ['Home', 'overview'],
    ['ArrowRight', 'messages']]) {
    await page.keyboard.press(key);
    assert.deepEqual(await shown(), { focus: `tab-${tab}`, selected: [`tab-${tab}`], inTabOrder: [`tab-${tab}`], panes: [`pane-${tab}`] }, key);
  }
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'send-body', 'the other tabs are not in the tab order: Tab goes into the pane');
  await page.keyboard.type('{"typed": "by keys"}');
  await tabTo('#send button');
  await page.keyboard.press('Enter');
  await page.locator('#queues tr', { hasText: 'keys-q' }).locator('td.n').first().filter({ hasText: '1' }).waitFor();
  const { messages } = (await server.api('POST', server.acct(`/queues/${id}/messages/peek`), { batch_size: 10 })).json.result;
  assert.deepEqual(messages.map((m) => JSON.parse(Buffer.from(m.body, 'base64').toString())), [{ typed: 'by keys' }]);
  assert.equal(await errorText(page).textContent(), '');
  await screenshot(page, 'keyboard');
  await page.close();
});

test('settings: delay, retention, pause/resume, purge and delete with the name typed', async () => {
  const { json } = await server.api('POST', server.acct('/queues'), { queue_name: 'settings-q' });
  const id = json.result.queue_id;
  await server.api('POST', server.acct(`/queues/${id}/messages`), { body: 'x', content_type: 'text' });
  const page = await signIn();
  await openQueue(page, 'settings-q');
  await page.click('#tab-settings');
  await page.fill('#set-delay', '45');
  await page.fill('#set-retention', '3600');
  await page.click('#settings button');
  const settings = async () => (await server.api('GET', server.acct(`/queues/${id}`))).json.result.settings;
  await assertEventually(async () => (await settings()).delivery_delay === 45);
  assert.equal((await settings()).message_retention_period, 3600);

  await page.click('#toggle-pause');
  await page.locator('#paused-state', { hasText: 'paused' }).waitFor();
  assert.equal((await settings()).delivery_paused, true);
  await screenshot(page, 'queue-settings');
  await page.click('#toggle-pause');
  await page.locator('#paused-state', { hasText: 'running' }).waitFor();
  assert.equal((await settings()).delivery_paused, false);

  await page.click('#purge-all');
  await errorText(page).filter({ hasText: "type the queue's name (settings-q) to confirm" }).waitFor();
  const backlog = async () => (await server.api('GET', server.acct(`/queues/${id}/metrics`))).json.result.backlog_count;
  assert.equal(await backlog(), 1, 'nothing purged unconfirmed');
  await page.fill('#confirm-name', 'settings-q');
  await page.click('#purge-all');
  await assertEventually(async () => (await backlog()) === 0);

  await page.click('#delete-queue');
  await errorText(page).filter({ hasText: 'to confirm' }).waitFor();
  assert.ok(await queueByName('settings-q'), 'not deleted unconfirmed');
  await page.fill('#confirm-name', 'settings-q');
  await page.click('#delete-queue');
  await page.locator('#detail').waitFor({ state: 'hidden' });
  assert.equal(await queueByName('settings-q'), undefined);
  await page.close();
});

test('consumers: add, edit and remove worker and HTTP pull consumers with every setting', async () => {
  const { json } = await server.api('POST', server.acct('/queues'), { queue_name: 'consumers-q' });
  const id = json.result.queue_id;
  await server.api('POST', server.acct('/queues'), { queue_name: 'consumers-dlq' });
  const consumers = async () => (await server.api('GET', server.acct(`/queues/${id}/consumers`))).json.result;
  const page = await signIn();
  await openQueue(page, 'consumers-q');
  await page.click('#tab-consumers');
  await page.fill('#c-script', 'my-worker');
  await page.fill('#c-batch', '20');
  await page.fill('#c-retries', '5');
  await page.fill('#c-retry-delay', '30');
  await page.fill('#c-wait', '2000');
  await page.fill('#c-concurrency', '7');
  await page.fill('#c-dlq', 'consumers-dlq');
  await page.click('#c-save');
  await page.locator('#consumers tr', { hasText: 'my-worker' }).waitFor();
  let [c] = await consumers();
  assert.equal(c.type, 'worker');
  assert.equal(c.script_name, 'my-worker');
  assert.equal(c.dead_letter_queue, 'consumers-dlq');
  assert.deepEqual(c.settings, { batch_size: 20, max_retries: 5, retry_delay: 30, max_wait_time_ms: 2000, max_concurrency: 7 });

  await page.click('button[aria-label="Edit worker consumer my-worker"]');
  await page.fill('#c-concurrency', ''); // autoscale
  await page.fill('#c-batch', '50');
  await page.click('#c-save');
  await page.locator('#consumers tr', { hasText: 'batch_size 50' }).waitFor();
  [c] = await consumers();
  assert.deepEqual(c.settings, { batch_size: 50, max_retries: 5, retry_delay: 30, max_wait_time_ms: 2000 });
  await screenshot(page, 'queue-consumers');
  await page.click('button[aria-label="Remove worker consumer my-worker"]');
  await page.locator('#consumers tr').waitFor({ state: 'detached' });
  assert.deepEqual(await consumers(), []);

  await page.selectOption('#c-type', 'http_pull');
  await page.fill('#c-visibility', '60000');
  await page.fill('#c-batch', '25');
  await page.click('#c-save');
  await page.locator('#consumers tr', { hasText: 'http_pull' }).waitFor();
  [c] = await consumers();
  assert.equal(c.type, 'http_pull');
  assert.equal(c.settings.visibility_timeout_ms, 60000);
  assert.equal(c.settings.batch_size, 25);
  await page.click('button[aria-label="Edit http_pull consumer"]');
  await page.fill('#c-visibility', '90000');
  await page.click('#c-save');
  await page.locator('#consumers tr', { hasText: 'visibility_timeout_ms 90000' }).waitFor();
  assert.equal((await consumers())[0].settings.visibility_timeout_ms, 90000);
  await page.close();
});

test('subscriptions: create, disable and enable, delete', async () => {
  const { json } = await server.api('POST', server.acct('/queues'), { queue_name: 'subs-q' });
  const id = json.result.queue_id;
  const subs = async () => (await server.api('GET', server.acct(`/event_subscriptions/subscriptions?queue_id=${id}`))).json.result;
  const page = await signIn();
  await openQueue(page, 'subs-q');
  await page.click('#tab-subscriptions');
  await page.fill('#s-name', 'buckets');
  await page.selectOption('#s-source', 'r2');
  await page.fill('#s-events', 'bucket.created, bucket.deleted');
  await page.click('#subscription button');
  await page.locator('#subscriptions tr', { hasText: 'buckets' }).waitFor();
  await page.fill('#s-name', 'models');
  await page.selectOption('#s-source', { label: 'workersAi.model' });
  await page.fill('#s-resource', '@cf/x');
  await page.fill('#s-events', 'batch.queued');
  await page.click('#subscription button');
  await page.locator('#subscriptions tr', { hasText: 'models' }).waitFor();
  let list = await subs();
  const byName = (n) => list.find((x) => x.name === n);
  assert.deepEqual([byName('buckets').source, byName('buckets').events, byName('buckets').enabled], [{ type: 'r2' }, ['bucket.created', 'bucket.deleted'], true]);
  assert.deepEqual(byName('models').source, { type: 'workersAi.model', model_name: '@cf/x' });
  assert.deepEqual(byName('models').destination, { type: 'queues.queue', queue_id: id });

  await page.uncheck('input[aria-label="enabled buckets"]');
  await assertEventually(async () => { list = await subs(); return byName('buckets').enabled === false; });
  await page.check('input[aria-label="enabled buckets"]');
  await assertEventually(async () => { list = await subs(); return byName('buckets').enabled === true; });
  await screenshot(page, 'queue-subscriptions');
  await page.click('button[aria-label="Delete subscription models"]');
  await page.locator('#subscriptions tr', { hasText: 'models' }).waitFor({ state: 'detached' });
  assert.deepEqual((await subs()).map((x) => x.name), ['buckets']);
  await page.close();
});

test('overview: backlog, operations and concurrency charts from the GraphQL Analytics API', async () => {
  const minute = Math.floor(Date.now() / 60000) * 60000 - 120000; // a fixed clock two minutes ago
  const clocked = await startServer({ env: { WHARF_TEST_CLOCK_MS: String(minute) } });
  try {
    const { json } = await clocked.api('POST', clocked.acct('/queues'), { queue_name: 'charts-q' });
    const id = json.result.queue_id;
    for (let i = 0; i < 3; i++) await clocked.api('POST', clocked.acct(`/queues/${id}/messages`), { body: i });
    const moved = await clocked.setTestClock(minute + 60000); // the minute is written (on every node)
    assert.equal(moved.status, 200, moved.text);
    const page = await signIn(clocked.token, DESKTOP, clocked);
    await page.click('button[aria-label="Open charts-q"]');
    await page.locator('#pane-overview[data-loaded="hour"]').waitFor().catch(async (e) => {
      throw new Error(`no charts (${e.message.split('\n')[0]}); the page says: ${await page.locator('#error').textContent()}`);
    });
    const points = async (chart) => JSON.parse((await page.locator(chart).getAttribute('data-points')) || '[]');
    assert.deepEqual(await points('#chart-backlog'), [[minute, 3]]);
    assert.deepEqual(await points('#chart-operations'), [[minute, 3]], 'three writes');
    assert.deepEqual(await points('#chart-concurrency'), [[minute, 0]], 'no consumer');
    const drawnAt = Date.now();
    await assertAxes(page, '#chart-backlog', { values: ['0', '1', '2', '3'], tick: 600e3, length: 3600e3, now: drawnAt,
      label: (t) => new Date(t).toISOString().slice(11, 16), point: [minute, 3] });
    await assertAxes(page, '#chart-concurrency', { values: ['0', '0.5', '1'], tick: 600e3, length: 3600e3, now: drawnAt,
      label: (t) => new Date(t).toISOString().slice(11, 16), point: [minute, 0] });
    await page.selectOption('#range', 'day');
    await page.locator('#pane-overview[data-loaded="day"]').waitFor();
    await assertAxes(page, '#chart-operations', { values: ['0', '1', '2', '3'], tick: 4 * 3600e3, length: 86400e3, now: Date.now(),
      label: (t) => new Date(t).toISOString().slice(11, 16), point: [minute - (minute % 900e3), 3] });
    await page.selectOption('#range', 'week');
    await page.locator('#pane-overview[data-loaded="week"]').waitFor();
    assert.deepEqual(await points('#chart-backlog'), [[minute - (minute % 3600000), 3]]);
    const weekday = (t) => ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][new Date(t).getUTCDay()];
    await assertAxes(page, '#chart-backlog', { values: ['0', '1', '2', '3'], tick: 86400e3, length: 604800e3, now: Date.now(),
      label: (t) => `${weekday(t)} ${new Date(t).getUTCDate()}`, point: [minute - (minute % 3600000), 3] });
    await screenshot(page, 'queue-overview');
    await page.close();
  } finally {
    await clocked.dispose();
  }
});

const PHONE = { width: 390, height: 844 };
const PHONE_QUEUE = 'a-queue-with-a-name-long-enough-to-overflow-a-phone-screen';
let phoneQueue; // the queue the phone-width tests show, with something in each tab

function phoneQueueReady() {
  phoneQueue ??= (async () => {
    const made = async (method, path, body) => {
      const res = await server.api(method, server.acct(path), body);
      assert.equal(res.status, 200, res.text);
      return res.json.result;
    };
    const id = (await made('POST', '/queues', { queue_name: PHONE_QUEUE })).queue_id;
    await made('POST', `/queues/${id}/messages`, { body: { order: 'x'.repeat(60), nested: { list: [1, 2, 3] } } });
    await made('POST', `/queues/${id}/messages`, { body: 'averyveryverylongwordwithoutanyspacesinitatall'.repeat(3), content_type: 'text' });
    await made('POST', '/queues', { queue_name: PHONE_QUEUE + '-dlq' });
    await made('POST', `/queues/${id}/consumers`, { type: 'http_pull', dead_letter_queue: PHONE_QUEUE + '-dlq', settings: { batch_size: 10 } });
    await made('POST', '/event_subscriptions/subscriptions', {
      name: 'a-subscription-with-a-long-name', enabled: true, source: { type: 'r2' },
      events: ['bucket.created', 'bucket.deleted'], destination: { type: 'queues.queue', queue_id: id },
    });
  })();
  return phoneQueue;
}

test('phone width: the sign-in page fits 390 px', async () => {
  const page = await openPage(PHONE);
  await page.locator('#token').waitFor();
  await assertFitsPhone(page, 'sign-in');
  await page.close();
});

test('phone width: the queue list fits 390 px', async () => {
  await phoneQueueReady();
  const page = await signIn(server.token, PHONE);
  await page.locator('#queues tr', { hasText: PHONE_QUEUE }).first().waitFor();
  await assertFitsPhone(page, 'queues');
  await page.close();
});

for (const tab of ['overview', 'messages', 'consumers', 'subscriptions', 'settings']) {
  test(`phone width: the queue's ${tab} tab fits 390 px`, async () => {
    await phoneQueueReady();
    const page = await signIn(server.token, PHONE);
    await openQueue(page, PHONE_QUEUE);
    await page.click(`#tab-${tab}`);
    if (tab === 'overview') await page.locator('#pane-overview[data-loaded="hour"]').waitFor();
    if (tab === 'messages') {
      await page.click('#peek');
      await page.locator('#messages tr').nth(1).waitFor();
    }
    if (tab === 'consumers') await page.locator('#consumers tr').first().waitFor();
    if (tab === 'subscriptions') await page.locator('#subscriptions tr').first().waitFor();
    await assertFitsPhone(page, tab);
    await page.close();
  });
}

test('errors: a token that expires while the page is open is shown as expired', async () => {
  const now = Math.floor(Date.now() / 60000) * 60000;
  const clocked = await startServer({ env: { WHARF_TEST_CLOCK_MS: String(now) } });
  try {
    const expiresOn = new Date(now + 60000).toISOString();
    const created = await clocked.api('POST', '/user/tokens', { account_id: clocked.accountId, expires_on: expiresOn });
    assert.equal(created.status, 200, created.text);
    await clocked.api('POST', clocked.acct('/queues'), { queue_name: 'before-expiry' });
    const page = await signIn(created.json.result.value, DESKTOP, clocked);
    await page.locator('#queues tr', { hasText: 'before-expiry' }).waitFor();
    const moved = await clocked.api('PUT', '/wharf/test-clock', { now_ms: now + 60000 }); // the token's last moment passes
    assert.equal(moved.status, 200, moved.text);
    await page.click('#refresh');
    await errorText(page).filter({ hasText: `401: Authentication error: the API token expired at ${expiresOn}` }).waitFor();
    await screenshot(page, 'expired-token');
    await page.close();
  } finally {
    await clocked.dispose();
  }
});

test('errors: a wrong token, a 403 and a server that went away are shown as clear messages', async () => {
  let page = await signIn('not-a-token');
  await errorText(page).filter({ hasText: /^401: / }).waitFor();
  assert.equal(await page.locator('#main').isHidden(), true);
  await screenshot(page, 'wrong-token');
  await page.close();

  const reader = await server.createToken('queues_read');
  page = await signIn(reader);
  await page.locator('#queues tr').first().waitFor();
  await page.fill('#new-name', 'not-allowed');
  await page.click('#create button');
  await errorText(page).filter({ hasText: /^403: .*\(code \d+\)$/ }).waitFor();
  assert.equal(await queueByName('not-allowed'), undefined);
  await page.close();

  page = await signIn();
  await page.locator('#queues tr').first().waitFor();
  await server.stop();
  await page.click('#refresh');
  await errorText(page).filter({ hasText: 'The Wharf server cannot be reached' }).waitFor();
  await page.close();
});

/* A chart's axes (the browser runs in UTC): value labels from 0 up to the
 * data's nice ceiling; time labels at every whole tick of the range ending
 * at about now, written as label(t); the point drawn where the time labels
 * put it along the axis and at its value against the value labels. */
async function assertAxes(page, chart, { values, tick, length, now, label, point }) {
  const labels = (axis, key) => page.locator(`${chart} .${axis} text`).evaluateAll((ts, k) =>
    ts.map((t) => ({ value: Number(t.dataset[k]), text: t.textContent, x: Number(t.getAttribute('x')), y: Number(t.getAttribute('y')) })), key);
  const ys = await labels('axis-y', 'value');
  assert.deepEqual(ys.map((l) => l.text), values, `${chart}: value axis labels`);
  assert.deepEqual(ys.map((l) => l.value), values.map(Number));
  const xs = await labels('axis-x', 'time');
  const times = xs.map((l) => l.value);
  assert.ok(times.length >= 5, `${chart}: ${times.length} time labels`);
  assert.ok(times.every((t, i) => t % tick === 0 && (i === 0 || t - times[i - 1] === tick)), `${chart}: a label every ${tick} ms`);
  // the page drew at most 5 s before now: its range began in [now - length - 5 s, now - length]
  assert.ok(times[0] >= now - length - 5000 && times[0] - tick < now - length, `${chart}: the first label is the range's first whole tick`);
  assert.ok(times[times.length - 1] <= now && times[times.length - 1] + tick > now - 5000, `${chart}: the last is the last before now`);
  assert.deepEqual(xs.map((l) => l.text), times.map(label), `${chart}: time labels`);
  const mark = await page.locator(`${chart} circle`).evaluate((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))]);
  const [a, b] = [xs[0], xs[xs.length - 1]];
  const expectedX = a.x + ((point[0] - a.value) / (b.value - a.value)) * (b.x - a.x);
  assert.ok(Math.abs(mark[0] - expectedX) < 0.5, `${chart}: the point at x ${mark[0]}, its time says ${expectedX}`);
  const [low, high] = [ys[0], ys[ys.length - 1]];
  const expectedY = low.y + ((point[1] - low.value) / (high.value - low.value)) * (high.y - low.y);
  assert.ok(Math.abs(mark[1] - expectedY) < 0.5, `${chart}: the point at y ${mark[1]}, its value says ${expectedY}`);
}

/* At a phone's width nothing scrolls sideways: the document is no wider
 * than the viewport and no element reaches past either edge (a table in a
 * scrolling box counts too). The page's screenshot is phone-<name>.png. */
async function assertFitsPhone(page, name) {
  const fit = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue; // not shown
      if (r.left < -0.5 || r.right > width + 0.5) wide.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
    return { scrollWidth: document.documentElement.scrollWidth, width, wide };
  });
  await screenshot(page, `phone-${name}`);
  assert.ok(fit.scrollWidth <= fit.width, `${name}: the page is ${fit.scrollWidth} px wide at ${fit.width}`);
  assert.deepEqual(fit.wide, [], `${name}: elements wider than the ${fit.width} px viewport`);
}

async function assertEventually(check, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail('the change never showed through the REST API');
    await new Promise((r) => setTimeout(r, 50));
  }
}
