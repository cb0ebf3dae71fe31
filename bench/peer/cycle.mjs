// The TypeScript peers, @chat-adapter/state-pg (a postgres:// URL) and
// @chat-adapter/state-redis (a redis:// URL), running chatstate's message cycle through
// its public API: setIfNotExists (dedupe) -> isSubscribed -> acquireLock -> get -> set ->
// releaseLock. M cycles split over N worker processes (each with its own one-connection
// pool, as chatstate_bench's workers each hold one connection), released together, each on
// its own 100 threads with unique message ids. Prints one JSON object like chatstate_bench.
//
//   node cycle.mjs --url postgres://postgres@127.0.0.1:5432/chatstate_bench_db \
//   node cycle.mjs --url redis://127.0.0.1:6379/15 \
//        --workers 8 --cycles 4000
//
// --inproc runs the N workers as concurrent async loops in one process over a pool of N
// connections instead (the way a Node server would share one pool).
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createPostgresState } from "@chat-adapter/state-pg";
import { createRedisState } from "@chat-adapter/state-redis";
import pg from "pg";

const isRedis = (url) => url.startsWith("redis");

const THREADS_PER_WORKER = 100;
const WARMUP = 20;
const DEDUPE_TTL_MS = 5 * 60 * 1000;
const LOCK_TTL_MS = 300 * 1000;

function options(argv) {
  const opts = { url: process.env.DATABASE_URL, workers: 1, cycles: 1000, inproc: false };
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--url") opts.url = argv[++i];
    else if (arg === "--workers") opts.workers = Number(argv[++i]);
    else if (arg === "--cycles") opts.cycles = Number(argv[++i]);
    else if (arg === "--inproc") opts.inproc = true;
    else if (arg === "--child") opts.child = JSON.parse(argv[++i]);
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!opts.url) throw new Error("--url (or DATABASE_URL) is required");
  return opts;
}

async function adapterFor(url, prefix, connections) {
  if (isRedis(url)) {
    const state = createRedisState({ url, keyPrefix: prefix });
    await state.connect();
    return { state, pool: { end: () => state.disconnect() } };
  }
  const pool = new pg.Pool({ connectionString: url, max: connections });
  const state = createPostgresState({ client: pool, keyPrefix: prefix });
  await state.connect();
  return { state, pool };
}

// Remove what the run stored under its key prefix.
async function cleanUp(url, state, pool, prefix) {
  if (isRedis(url)) {
    const client = state.getClient();
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length) await client.unlink(keys);
    }
    return;
  }
  for (const table of ["chat_state_subscriptions", "chat_state_locks", "chat_state_cache"]) {
    await pool.query(`DELETE FROM ${table} WHERE key_prefix = $1`, [prefix]);
  }
}

// One worker's cycle i: the peer's equivalent of chatstate's handle_message.
function cycleFor(state, worker, runId) {
  const threads = [];
  for (let j = 0; j < THREADS_PER_WORKER; j++) threads.push(`bench-w${worker}-t${j}`);
  return async (i) => {
    const thread = threads[((i % threads.length) + threads.length) % threads.length];
    const fresh = await state.setIfNotExists(`dedupe:bench:${runId}-w${worker}-m${i}`, true,
      DEDUPE_TTL_MS);
    if (!fresh) return;
    await state.isSubscribed(thread);
    const lock = await state.acquireLock(thread, LOCK_TTL_MS);
    if (!lock) return;
    const value = (await state.get(`thread-state:${thread}`)) ?? {};
    value.n = (value.n ?? 0) + 1;
    await state.set(`thread-state:${thread}`, value);
    await state.releaseLock(lock);
  };
}

async function runLoop(cycle, first, count) {
  const latencies = new Float64Array(count);
  const start = performance.now();
  for (let k = 0; k < count; k++) {
    const t0 = performance.now();
    await cycle(first + k);
    latencies[k] = performance.now() - t0;
  }
  return { start: start + performance.timeOrigin, end: performance.now() + performance.timeOrigin,
    latencies: Array.from(latencies) };
}

async function prepare(state, workers) {
  for (let w = 0; w < workers; w++) {
    for (let j = 0; j < THREADS_PER_WORKER; j++) await state.subscribe(`bench-w${w}-t${j}`);
  }
}

function shares(cycles, workers) {
  const out = [];
  let first = 0;
  for (let w = 0; w < workers; w++) {
    const count = Math.floor(cycles / workers) + (w < cycles % workers ? 1 : 0);
    out.push({ worker: w, first, count });
    first += count;
  }
  return out;
}

function summarize(opts, results) {
  const seconds = (Math.max(...results.map((r) => r.end)) -
    Math.min(...results.map((r) => r.start))) / 1000;
  const all = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const q = (p) => all[Math.min(all.length - 1, Math.max(0, Math.ceil(p * all.length) - 1))];
  return {
    ...(isRedis(opts.url)
      ? { adapter: "@chat-adapter/state-redis", database_vendor: null, round_trips_per_cycle: 6 }
      : { adapter: "@chat-adapter/state-pg", database_vendor: "postgresql",
          statements_per_cycle: 6, commits_per_cycle: 6, write_commits_per_cycle: 4 }),
    mode: "cycle",
    workers: opts.workers, cycles: opts.cycles, seconds: Number(seconds.toFixed(4)),
    cycles_per_s: Number((opts.cycles / seconds).toFixed(1)),
    p50_ms: Number(q(0.5).toFixed(4)), p99_ms: Number(q(0.99).toFixed(4)),
    inproc: opts.inproc,
  };
}

async function child({ url, prefix, runId, worker, first, count }) {
  const { state, pool } = await adapterFor(url, prefix, 1);
  const cycle = cycleFor(state, worker, runId);
  for (let i = 0; i < WARMUP; i++) await cycle(-1 - i);
  process.send({ ready: true });
  await new Promise((resolve) => process.once("message", resolve)); // the start barrier
  const result = await runLoop(cycle, first, count);
  await pool.end();
  process.send({ result });
}

async function main() {
  const opts = options(process.argv);
  if (opts.child) return child(opts.child);
  const runId = `${process.pid}x${Date.now()}`;
  const prefix = `bench-${runId}`;
  const { state, pool } = await adapterFor(opts.url, prefix, Math.max(1, opts.workers));
  await prepare(state, opts.workers);
  let results;
  if (opts.inproc) {
    const loops = shares(opts.cycles, opts.workers).map(({ worker, first, count }) => {
      const cycle = cycleFor(state, worker, runId);
      return { cycle, first, count };
    });
    for (const { cycle } of loops) for (let i = 0; i < WARMUP; i++) await cycle(-1 - i);
    results = await Promise.all(loops.map(({ cycle, first, count }) =>
      runLoop(cycle, first, count)));
  } else {
    const self = fileURLToPath(import.meta.url);
    const kids = shares(opts.cycles, opts.workers).map((share) => fork(self,
      ["--url", opts.url, "--child", JSON.stringify({ url: opts.url, prefix, runId, ...share })]));
    const ready = kids.map((kid) => new Promise((resolve) => kid.once("message", resolve)));
    await Promise.all(ready);
    const done = kids.map((kid) => new Promise((resolve) => kid.once("message",
      (msg) => resolve(msg.result))));
    for (const kid of kids) kid.send({ go: true });
    results = await Promise.all(done);
  }
  await cleanUp(opts.url, state, pool, prefix);
  await pool.end();
  console.log(JSON.stringify(summarize(opts, results)));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
