/*
 * nats_cluster.test.mjs — the black-box NATS cluster helper itself (issue
 * 13): three real nats-server nodes form one JetStream cluster with a meta
 * leader, the two left after a kill -9 elect one again, the killed node
 * rejoins, and a machine without nats-server gets a clear failure rather
 * than a skip. Clustered Wharf's black-box runs will stand on this helper.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { NatsCluster } from './nats_cluster.mjs';

const cluster = new NatsCluster();
after(() => cluster.stop());

test('three nodes form one JetStream cluster with a meta leader', async () => {
  await cluster.start();
  assert.match(cluster.urls, /^nats:\/\/127\.0\.0\.1:\d+(,nats:\/\/127\.0\.0\.1:\d+){2}$/);
  const leaders = await Promise.all([0, 1, 2].map((i) => cluster.metaLeader(i)));
  assert.ok(leaders[0]);
  assert.deepEqual(leaders, [leaders[0], leaders[0], leaders[0]]);
});

test('after kill -9 of the leader the other two elect one, and it rejoins', async () => {
  const leader = await cluster.metaLeader(0);
  const victim = Number(leader.slice(1)) - 1;
  await cluster.kill(victim);
  const next = await cluster.waitReady();
  assert.notEqual(next, leader);
  await cluster.restart(victim);
  assert.equal(await cluster.waitReady(), next);
});

test('without nats-server in PATH, start fails saying so', async () => {
  const bare = new NatsCluster({ env: { ...process.env, PATH: '/nonexistent' } });
  await assert.rejects(bare.start(), /nats-server is not in PATH/);
});
