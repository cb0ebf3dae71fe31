// The server's work per message cycle of @chat-adapter/state-redis, for
// `chatstate_bench --server-work --adapter redis` (bench/serverwork_redis.py drives it).
// The same cycle as cycle.mjs (setIfNotExists -> isSubscribed -> acquireLock -> get -> set ->
// releaseLock), each cycle on a fresh thread, one connection, one cycle at a time.
//
//   node serverwork_redis.mjs --url redis://127.0.0.1:6499/0 --cycles 2000
//
// Handshake on stdin/stdout, so the driver reads the server's counters around the run only:
// after the warm-up it prints "ready" and waits for a line; after the run it prints "done"
// (with the run's seconds) and waits for a line; then it removes its keys and exits.
import { createInterface } from "node:readline";
import { createRedisState } from "@chat-adapter/state-redis";

const WARMUP = 20;
const DEDUPE_TTL_MS = 5 * 60 * 1000;
const LOCK_TTL_MS = 300 * 1000;

function options(argv) {
  const opts = { url: null, cycles: 2000 };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === "--url") opts.url = argv[++i];
    else if (argv[i] === "--cycles") opts.cycles = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!opts.url) throw new Error("--url is required");
  return opts;
}

async function main() {
  const opts = options(process.argv);
  const runId = `${process.pid}x${Date.now()}`;
  const prefix = `sw-${runId}`;
  const state = createRedisState({ url: opts.url, keyPrefix: prefix });
  await state.connect();
  const cycle = async (i) => {
    const thread = `sw-t${i}`; // a fresh thread per cycle
    const fresh = await state.setIfNotExists(`dedupe:bench:${runId}-m${i}`, true, DEDUPE_TTL_MS);
    if (!fresh) return;
    await state.isSubscribed(thread);
    const lock = await state.acquireLock(thread, LOCK_TTL_MS);
    if (!lock) return;
    const value = (await state.get(`thread-state:${thread}`)) ?? {};
    value.n = (value.n ?? 0) + 1;
    await state.set(`thread-state:${thread}`, value);
    await state.releaseLock(lock);
  };
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  for (let i = 0; i < WARMUP; i++) await cycle(-1 - i);
  console.log("ready");
  await lines.next();
  const start = performance.now();
  for (let i = 0; i < opts.cycles; i++) await cycle(i);
  console.log(`done ${((performance.now() - start) / 1000).toFixed(4)}`);
  await lines.next();
  const client = state.getClient();
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    if (keys.length) await client.unlink(keys);
  }
  await state.disconnect();
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
