/*
 * graphql_parse.test.mjs — differential test of Wharf's GraphQL parser
 * (src/graphql/) against the reference implementation, graphql-js 16 (the
 * `graphql` npm package): on a corpus of valid and invalid documents, and
 * on thousands of deterministic mutations of them, the server refuses a
 * document as a syntax error (extensions.code GRAPHQL_PARSE_FAILED) exactly
 * when graphql-js cannot parse it or it holds a definition that is not
 * executable (the spec's ExecutableDefinitions rule).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Kind, parse } from 'graphql';
import { startServer } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = path.join(HERE, '../fuzz/corpus/graphql');

const valid = [
  '{ a }',
  'query { a }',
  'query Q { a b c }',
  'query Q($x: Int = 1, $y: [String!]! @d) @op { a(x: $x) { b } }',
  'mutation M { a }',
  'subscription S { a }',
  '{ a: b(c: 1, d: "e", f: 1.5, g: -0, h: 1e10, i: 2.5E-3, j: true, k: false, l: null, m: ENUM) }',
  '{ a(list: [1, [2, [3]]], obj: {x: {y: [$v]}}) }',
  '{ ...F } fragment F on T { a }',
  '{ ... on T { a } ... @skip(if: true) { b } ... { c } }',
  'fragment F on T @d(x: 1) { a }',
  '{ a @include(if: $x) @skip(if: false) }',
  '# only a comment\n{ a }',
  '\uFEFF{ a }',
  '{ a,,, b\r\n c\r d\t}',
  '{ a(s: "\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r") }',
  '{ a(s: "\\u{1F600}") }',
  '{ a(s: "\\uD83D\\uDE00") }',
  '{ a(s: """block\n  "quoted" \\""" string""") }',
  '{ a(s: "é ünïcödé 😀") }',
  '{ a # comment with é\n }',
  'query ($a: A) { b }',
  '{ on: a fragment: b query: c }',
  '{ a(on: 1, fragment: 2) }',
  'query Q($x: [[Int!]!]! = [[1]]) { a }',
  '{ __typename }',
  '{ a(x: $var) }',
  '{ a(x: {}) b(y: []) }',
  '{ a(x: "") }',
  '{ a(x: """""") }',
  'query true { a }',
  '{ a } { b }',
  'query A { a } query B { b }',
  '{ a(x: 0) b(y: -1.0e+5) }',
  '{ ... on on { a } }',
  'fragment on1 on on { a }',
  '"description" query { a }',
  '"""block""" mutation M { a }',
  '"d" fragment F on T { a }',
  'query Q("d" $a: Int, """e""" $b: Int) { a }',
];

const invalid = [
  '',
  '   ',
  '# nothing',
  '{',
  '{ }',
  '{ a',
  'query',
  'query Q',
  'query Q()',
  'query Q($x) { a }',
  'query Q($x: ) { a }',
  'query Q(x: Int) { a }',
  'query Q($x: Int = $y) { a }',
  'query Q($x: Int @d(a: $v)) { a }',
  '{ a() }',
  '{ a(x) }',
  '{ a(x:) }',
  '{ a(x: 1,) b }'.replace(',)', ')') + ' }',
  '{ a: }',
  '{ a: 1 }',
  '{ a { } }',
  '{ ... }',
  '{ ...on }',
  '{ ... on { a } }',
  'fragment on on T { a }',
  'fragment F { a }',
  'fragment F on { a }',
  'fragment F on T',
  '{ a(x: 01) }',
  '{ a(x: 1.) }',
  '{ a(x: .5) }',
  '{ a(x: 1e) }',
  '{ a(x: 1a) }',
  '{ a(x: 1.5.5) }',
  '{ a(x: -) }',
  '{ a(x: 0x10) }',
  '{ a(x: "unterminated) }',
  '{ a(x: "line\nbreak") }',
  '{ a(x: "\\q") }',
  '{ a(x: "\\u12") }',
  '{ a(x: "\\uD83D") }',
  '{ a(x: "\\uDE00") }',
  '{ a(x: "\\u{110000}") }',
  '{ a(x: "\\u{}") }',
  '{ a(x: "\\u{D800}") }',
  '{ a(x: """unterminated) }',
  '{ a(x: [1, 2) }',
  '{ a(x: {b}) }',
  '{ a(x: {b: }) }',
  '{ a @ }',
  '{ a @d( }',
  '{ a } }',
  '{ a } x',
  'type T { a: Int }',
  'schema { query: Q }',
  'scalar S',
  'extend type T { a: Int }',
  'directive @d on FIELD',
  '"description" { a }',
  '"description" type T { a: Int }',
  '"d" "e" query { a }',
  'query ($a: Int "d") { a }',
  '{ a } type T { a: Int }',
  'query Q { a } enum E { A }',
  '{ a ? }',
  '{ a € }',
  '{ a .. }',
  '{ a ..b }',
  '{ a(x: $) }',
  '{ a(x: $ 1) }',
  'query Q($x: [Int) { a }',
  'query Q($x: Int!!) { a }',
  '{ a(x: 1) @d @ }',
  'subscription',
];

/* A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['{', '}', '(', ')', '[', ']', ':', '$', '@', '!', '=', '|', '&', '...', '.', '"', '"""', '\\', '#',
  '\n', ' ', ',', '0', '1', '-', 'e', '.5', 'on', 'query', 'fragment', 'type', 'a', '_', 'é', '\u00a0', '\\u', '{a}'];

function mutate(text, next) {
  const at = Math.floor(next() * (text.length + 1));
  const piece = PIECES[Math.floor(next() * PIECES.length)];
  switch (Math.floor(next() * 3)) {
    case 0: return text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 3));
    case 1: return text.slice(0, at) + piece + text.slice(at);
    default: return text.slice(0, at) + piece + text.slice(at + piece.length);
  }
}

function referenceAccepts(text) {
  try {
    const document = parse(text);
    return document.definitions.every((d) => d.kind === Kind.OPERATION_DEFINITION || d.kind === Kind.FRAGMENT_DEFINITION);
  } catch {
    return false;
  }
}

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

async function wharfAccepts(text) {
  const res = await server.api('POST', '/graphql', { query: text });
  assert.equal(res.status, 200, res.text);
  const error = res.json.errors?.[0];
  return error?.extensions?.code !== 'GRAPHQL_PARSE_FAILED';
}

/* What JSON can carry to the server: no NUL (the API's JSON parser refuses
 * it) and no lone surrogate (UTF-8 has none). */
const transportable = (text) => !text.includes('\u0000') && text.isWellFormed();

async function differences(documents) {
  documents = documents.filter(transportable);
  const found = [];
  for (let i = 0; i < documents.length; i += 16) {
    const slice = documents.slice(i, i + 16);
    const answers = await Promise.all(slice.map(wharfAccepts));
    slice.forEach((text, j) => {
      if (answers[j] !== referenceAccepts(text)) found.push({ text, wharf: answers[j] });
    });
  }
  return found;
}

test('the hand-written corpus is what it says it is', () => {
  for (const text of valid) assert.ok(referenceAccepts(text), `graphql-js refuses ${JSON.stringify(text)}`);
  for (const text of invalid) assert.ok(!referenceAccepts(text), `graphql-js accepts ${JSON.stringify(text)}`);
});

test('Wharf agrees with graphql-js on the corpus', async () => {
  const files = readdirSync(CORPUS).map((f) => readFileSync(path.join(CORPUS, f), 'utf8'));
  assert.deepEqual(await differences([...valid, ...invalid, ...files]), []);
});

test('Wharf agrees with graphql-js on 4,000 mutations of the valid documents', async () => {
  const next = random(16);
  const seeds = [...valid, ...readdirSync(CORPUS).map((f) => readFileSync(path.join(CORPUS, f), 'utf8'))];
  const documents = [];
  for (let i = 0; i < 4000; i++) {
    let text = seeds[i % seeds.length];
    for (let m = 1 + Math.floor(next() * 3); m > 0; m--) text = mutate(text, next);
    documents.push(text);
  }
  const accepted = documents.filter(referenceAccepts).length;
  assert.ok(accepted > 400 && accepted < 3600, `a mix of valid (${accepted}) and invalid documents`);
  assert.deepEqual((await differences(documents)).slice(0, 10), []);
});
