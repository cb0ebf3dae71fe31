// chatstate_bench --server-work's peer side: @chat-adapter/state-pg running the message cycle
// of cycle.mjs on one connection, a fresh thread and message id per cycle. It warms up,
// prints "ready", waits for "go" on stdin (the observer zeroes pg_stat_statements meanwhile),
// runs --cycles cycles, prints one JSON line, then waits for "clean" (or stdin's end) and
// removes its rows.
//
//   node serverwork.mjs --url postgres://postgres@127.0.0.1:5499/bench --cycles 2000
import { createInterface } from "node:readline";
import { createPostgresState } from "@chat-adapter/state-pg";
import pg from "pg";

const WARMUP = 20;
const DEDUPE_TTL_MS = 5 * 60 * 1000;
const LOCK_TTL_MS = 300 * 1000;

function options(argv) {
  const opts = { url: process.env.DATABASE_URL, cycles: 2000 };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === "--url") opts.url = argv[++i];
    else if (argv[i] === "--cycles") opts.cycles = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!opts.url) throw new Error("--url (or DATABASE_URL) is required");
  return opts;
}

async function main() {
  const opts = options(process.argv);
  const runId = `sw${process.pid}x${Date.now()}`;
  const prefix = `bench-${runId}`;
  const pool = new pg.Pool({ connectionString: opts.url, max: 1 });
  const state = createPostgresState({ client: pool, keyPrefix: prefix });
  await state.connect();
  const cycle = async (i) => {
    const thread = `${runId}-t${i}`;
    if (!(await state.setIfNotExists(`dedupe:bench:${runId}-m${i}`, true, DEDUPE_TTL_MS))) return;
    await state.isSubscribed(thread);
    const lock = await state.acquireLock(thread, LOCK_TTL_MS);
    if (!lock) return;
    const value = (await state.get(`thread-state:${thread}`)) ?? {};
    value.n = (value.n ?? 0) + 1;
    await state.set(`thread-state:${thread}`, value);
    await state.releaseLock(lock);
  };
  for (let i = 0; i < WARMUP; i++) await cycle(-1 - i);
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  console.log("ready");
  await lines.next();
  for (let i = 0; i < opts.cycles; i++) await cycle(i);
  console.log(JSON.stringify({ adapter: "@chat-adapter/state-pg", cycles: opts.cycles }));
  await lines.next();
  for (const table of ["chat_state_subscriptions", "chat_state_locks", "chat_state_cache"]) {
    await pool.query(`DELETE FROM ${table} WHERE key_prefix = $1`, [prefix]);
  }
  await pool.end();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
