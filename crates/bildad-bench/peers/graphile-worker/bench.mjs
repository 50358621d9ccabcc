#!/usr/bin/env node
// Peer benchmark: graphile-worker enqueue + processing throughput.
//
// Mirrors the bench table row
//   "graphile-worker, concurrency 24, batched (localQueue size 500,
//    completeJobBatchDelay 0)".
//
// Creates a throw-away database on the given server, runs graphile-worker's
// migrations in it, bulk-enqueues N no-op jobs (timed), then runs a worker
// pool until every job has completed (timed), and drops the database again
// (also on failure / SIGINT / SIGTERM).
//
// Output (stdout, exactly one line):
//   graphile-worker enqueue_jobs_per_s=<int> process_jobs_per_s=<int> N=<n> concurrency=<c>

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";

const { values: args } = parseArgs({
  options: {
    "database-url": {
      type: "string",
      default: "postgres://postgres@127.0.0.1:5432/postgres",
    },
    n: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "24" },
    "local-queue-size": { type: "string", default: "500" },
    "complete-job-batch-delay": { type: "string", default: "0" },
    "fail-job-batch-delay": { type: "string", default: "0" },
    "poll-interval": { type: "string", default: "10" },
    // graphile-worker's default pool size is 10; kept as default.
    "max-pool-size": { type: "string", default: "10" },
    "chunk-size": { type: "string", default: "5000" },
    // Bulk enqueue path; both call the same SQL function
    // graphile_worker.add_jobs(job_spec[]) once per chunk:
    // "sql"   (default, fastest): the documented SQL function called directly
    //         via `select count(*) from graphile_worker.add_jobs(...)`, so the
    //         inserted rows are not shipped back and decoded in JS.
    // "utils": WorkerUtils.addJobs(), the JS batch API, which returns every
    //         inserted job row (measured ~2x slower to enqueue here).
    enqueue: { type: "string", default: "sql" },
    "timeout-s": { type: "string", default: "600" },
  },
  strict: true,
});

function int(name, min = 0) {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < min) {
    throw new Error(`--${name} must be an integer >= ${min}, got ${args[name]}`);
  }
  return v;
}

const N = int("n", 1);
const CONCURRENCY = int("concurrency", 1);
const LOCAL_QUEUE_SIZE = int("local-queue-size", -1);
const COMPLETE_DELAY = Number(args["complete-job-batch-delay"]);
const FAIL_DELAY = Number(args["fail-job-batch-delay"]);
const POLL_INTERVAL = int("poll-interval", 1);
const MAX_POOL_SIZE = int("max-pool-size", 2);
const CHUNK = int("chunk-size", 1);
const TIMEOUT_MS = int("timeout-s", 1) * 1000;
const ENQUEUE_MODE = args.enqueue;
if (!["utils", "sql"].includes(ENQUEUE_MODE)) {
  throw new Error(`--enqueue must be "utils" or "sql"`);
}

const TASK = "noop";
const SCHEMA = "graphile_worker";

// No-op logger: graphile-worker logs every job start/completion otherwise.
const logger = new Logger(() => () => {});

const adminUrl = args["database-url"];
const dbName = `gw_bench_${randomBytes(6).toString("hex")}`;
const benchUrl = (() => {
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  return u.toString();
})();

let runner = null;
let dbCreated = false;
let cleanupPromise = null;

async function withAdmin(fn) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

// Idempotent; concurrent callers (signal handler + main's error path) all
// await the same drop.
function cleanup() {
  cleanupPromise ??= doCleanup();
  return cleanupPromise;
}

async function doCleanup() {
  if (runner) {
    try {
      await runner.stop();
    } catch {
      /* already stopped */
    }
    try {
      await runner.promise;
    } catch {
      /* ignore */
    }
    runner = null;
  }
  if (dbCreated) {
    await withAdmin((c) =>
      c.query(`drop database if exists ${pg.escapeIdentifier(dbName)} with (force)`),
    );
    dbCreated = false;
  }
}

let signalled = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    signalled = true;
    cleanup()
      .catch((e) => console.error(`cleanup failed: ${e?.stack ?? e}`))
      .finally(() => process.exit(130));
  });
}

async function main() {
  // Mark first: a signal arriving mid-CREATE must still lead to a drop attempt.
  dbCreated = true;
  await withAdmin((c) => c.query(`create database ${pg.escapeIdentifier(dbName)}`));

  const common = { connectionString: benchUrl, logger, maxPoolSize: MAX_POOL_SIZE };

  // Install graphile-worker's schema (untimed).
  await runMigrations(common);

  // ---- enqueue (timed) ----------------------------------------------------
  const specs = new Array(N);
  for (let i = 0; i < N; i++) specs[i] = { identifier: TASK, payload: {} };

  const utils = await makeWorkerUtils(common);
  let enqueueSecs;
  try {
    const t0 = process.hrtime.bigint();
    if (ENQUEUE_MODE === "utils") {
      for (let off = 0; off < N; off += CHUNK) {
        await utils.addJobs(specs.slice(off, off + CHUNK));
      }
    } else {
      await utils.withPgClient(async (client) => {
        for (let off = 0; off < N; off += CHUNK) {
          const chunk = specs.slice(off, off + CHUNK);
          await client.query(
            `select count(*) from ${SCHEMA}.add_jobs(
               array(select json_populate_recordset(null::${SCHEMA}.job_spec, $1::json))
             )`,
            [JSON.stringify(chunk)],
          );
        }
      });
    }
    enqueueSecs = Number(process.hrtime.bigint() - t0) / 1e9;

    const { rows } = await utils.withPgClient((c) =>
      c.query(`select count(*)::int as n from ${SCHEMA}._private_jobs`),
    );
    if (rows[0].n !== N) throw new Error(`expected ${N} queued jobs, found ${rows[0].n}`);
  } finally {
    await utils.release();
  }

  // ---- process (timed) ----------------------------------------------------
  let handled = 0;
  let allHandled;
  const allHandledP = new Promise((resolve) => (allHandled = resolve));
  const taskList = {
    [TASK]: async () => {
      if (++handled === N) allHandled();
    },
  };

  // Sanity check that the batched configuration really is in effect.
  const events = new EventEmitter();
  let localQueueSeen = false;
  events.on("localQueue:init", () => (localQueueSeen = true));

  const checker = new pg.Client({ connectionString: benchUrl });
  await checker.connect();
  try {
    const t0 = process.hrtime.bigint();
    runner = await run({
      ...common,
      taskList,
      noHandleSignals: true,
      parsedCronItems: [],
      preset: {
        worker: {
          events,
          concurrentJobs: CONCURRENCY,
          pollInterval: POLL_INTERVAL,
          localQueue: { size: LOCAL_QUEUE_SIZE },
          completeJobBatchDelay: COMPLETE_DELAY,
          failJobBatchDelay: FAIL_DELAY,
        },
      },
    });
    let runnerError = null;
    runner.promise.catch((e) => (runnerError = e));

    const deadline = Date.now() + TIMEOUT_MS;
    const timeout = sleep(TIMEOUT_MS).then(() => {
      throw new Error(`timed out: ${handled}/${N} jobs handled`);
    });
    timeout.catch(() => {});
    await Promise.race([allHandledP, timeout]);

    // Every handler has returned; wait until the (batched) completions have
    // actually been written, i.e. the jobs table is empty.
    for (;;) {
      if (runnerError) throw runnerError;
      const { rows } = await checker.query(
        `select exists(select 1 from ${SCHEMA}._private_jobs) as any`,
      );
      if (!rows[0].any) break;
      if (Date.now() > deadline) throw new Error("timed out waiting for empty jobs table");
      await sleep(5);
    }
    const processSecs = Number(process.hrtime.bigint() - t0) / 1e9;

    if (handled !== N) throw new Error(`handled ${handled} jobs, expected ${N}`);
    if (LOCAL_QUEUE_SIZE >= 1 && !localQueueSeen) {
      throw new Error("local queue was not initialised; option not applied?");
    }

    return (
      `graphile-worker enqueue_jobs_per_s=${Math.round(N / enqueueSecs)} ` +
      `process_jobs_per_s=${Math.round(N / processSecs)} N=${N} concurrency=${CONCURRENCY}`
    );
  } finally {
    await checker.end().catch(() => {});
  }
}

try {
  const line = await main();
  await cleanup();
  console.log(line);
  process.exit(0);
} catch (e) {
  if (signalled) {
    // The signal handler's cleanup (shared promise) is dropping the database.
    await cleanup().catch(() => {});
    process.exit(130);
  }
  console.error(`graphile-worker bench failed: ${e?.stack ?? e}`);
  try {
    await cleanup();
  } catch (e2) {
    console.error(`cleanup failed (database ${dbName} may remain): ${e2?.stack ?? e2}`);
  }
  process.exit(1);
}
