"""``chatstate_bench --server-work --adapter redis``: the Redis server's work per message cycle.

Counts, not rates: the server's own time per command (``INFO commandstats``, reset with
``CONFIG RESETSTAT`` after the warm-up), which does not swing with the client machine's load.
Each run is one client, one cycle at a time, a fresh thread per cycle (chatstate's after
enough cycles to fill its dedupe window: each claim then trims one), on a private server
(its counters are reset: never point it at a shared one). Runs: chatstate's cycle
(``handle_message``), with ``effects`` also chatstate's cycle staging a channel counter
increment and a history append, and the TypeScript peer (``@chat-adapter/state-redis``,
``bench/peer/serverwork_redis.mjs``) when it is installed. ``cpu_us``: the server's main
thread's CPU time per cycle (``INFO cpu``) — robust to preemption, but it also holds the
network's system calls (one per round trip) and the server's timers. With ``callgrind`` (a
server run under valgrind, :class:`Callgrind`): instructions per cycle, which do not swing
with the machine's load at all.

A command a script calls is counted twice by Redis: in the script's own time and in the
command's. ``server_us`` counts each once: the scripts' time and the commands the client sent
itself (a command sent both ways is shared out by its calls). ``inner`` lists what the scripts
called, per cycle.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

PEER = Path(__file__).with_name("peer")
PEER_SCRIPT = PEER / "serverwork_redis.mjs"
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
#: What the measuring itself sends.
IGNORED = ("config", "info", "scan", "unlink", "hello", "client", "script", "select", "ping")
#: The commands the peer's client sends itself per cycle, besides its release script.
PEER_SENT = {"set": 3, "sismember": 1, "get": 1}
_WARMUP = 20


def commandstats(client: Any) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` as command → (calls, usec); the measuring's own left out."""
    stats: dict[str, tuple[int, int]] = {}
    for name, fields in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] in IGNORED:
            continue
        stats[command] = (int(fields["calls"]), int(fields["usec"]))
    return stats


class Callgrind:
    """Instruction counts of a server run under callgrind, which do not swing with the load:
    ``valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT redis-server …``
    (``OUT`` without ``%p``). Counted only between :meth:`start` and :meth:`stop`."""

    def __init__(self, client: Any, out: str) -> None:
        self.pid = str(client.info("server")["process_id"])
        self.out = out

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, self.pid], check=True, capture_output=True)

    def start(self) -> None:
        self._control("-i", "on")
        self._control("-z")

    def stop(self, cycles: int) -> dict[str, float]:
        """Per cycle: ``instructions`` in command processing (what commandstats times),
        ``instructions_all`` of everything but the server's timers (reading, replying)."""
        before = set(glob.glob(self.out + ".*"))
        self._control("-d")
        self._control("-i", "off")
        dump = max(set(glob.glob(self.out + ".*")) - before, key=os.path.getmtime)
        text = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", dump], capture_output=True, text=True
        ).stdout
        os.remove(dump)

        def count(name: str) -> float:
            found = re.search(rf"^\s*([\d,]+) \([^)]*\)\s+\S*:{name} ", text, re.MULTILINE)
            return int(found.group(1).replace(",", "")) / cycles if found else 0.0

        total = re.search(r"^\s*([\d,]+) \([^)]*\)\s+PROGRAM TOTALS", text, re.MULTILINE)
        everything = int(total.group(1).replace(",", "")) / cycles if total else 0.0
        return {
            "instructions": round(count("processCommand")),
            "instructions_all": round(everything - count("serverCron")),
        }


def cpu_seconds(client: Any) -> float:
    """The server's main thread's CPU time so far (``INFO cpu``; the process's on Redis < 7)."""
    cpu = client.info("cpu")
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def per_cycle(
    stats: dict[str, tuple[int, int]], cycles: int, sent: dict[str, int]
) -> dict[str, Any]:
    """The server's work per cycle from ``stats``; ``sent``: commands the client sent itself
    per cycle (besides scripts), the rest of their calls made by scripts."""
    server = 0.0
    inner: dict[str, tuple[float, float]] = {}
    for command, (calls, usec) in stats.items():
        if command in SCRIPT_COMMANDS:
            server += usec
            continue
        own = min(calls, sent.get(command, 0) * cycles)
        server += usec * own / calls if calls else 0
        if calls > own:
            inner[command] = ((calls - own) / cycles, usec * (calls - own) / calls / cycles)
    scripts = {c: stats[c][0] / cycles for c in stats if c in SCRIPT_COMMANDS}
    ranked = sorted(inner.items(), key=lambda item: -item[1][1])
    return {
        "server_us": round(server / cycles, 2),
        "all_commands_us": round(sum(u for _, u in stats.values()) / cycles, 2),
        "scripts_per_cycle": {c: round(n, 2) for c, n in scripts.items()},
        "inner": {c: {"calls": round(n, 2), "us": round(u, 2)} for c, (n, u) in ranked},
    }


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def run_chatstate(
    url: str, cycles: int, effects: bool, callgrind: str | None = None
) -> dict[str, Any]:
    """``cycles`` message cycles of chatstate on ``url``; the server's work per cycle."""
    from chatstate import conf
    from chatstate.adapters.redis import RedisStateAdapter
    from chatstate.adapters.redis.connection import retryless_client

    admin = _client(url)
    namespace = f"sw-{time.time_ns() % 10**12}"
    adapter = RedisStateAdapter(
        namespace=namespace, alias="serverwork", client=retryless_client(_client(url))
    )
    limit = conf.get("DEDUPE_LIMIT")
    channel = "sw-c" if effects else None

    def cycle(i: int) -> None:
        with adapter.handle_message(
            ("bench", f"m{i}"),
            thread_id=f"sw-t{i}",  # a fresh thread per cycle
            owner="bench-worker-0",
            dedupe_limit=limit,
            channel_id=channel,
        ) as msg:
            if msg.acquired:
                msg.state["n"] = msg.state.get("n", 0) + 1
                if effects:
                    msg.channel.incr("messages")
                    msg.history.append({"role": "user", "n": i})

    try:
        # the steady state: the window full (each claim then trims one), the namespace's
        # hashes and sorted sets past their compact encodings
        for i in range(limit + _WARMUP):
            cycle(-1 - i)
        counter = Callgrind(admin, callgrind) if callgrind else None
        admin.config_resetstat()
        cpu = cpu_seconds(admin)
        if counter:
            counter.start()
        start = time.perf_counter()
        for i in range(cycles):
            cycle(i)
        seconds = time.perf_counter() - start
        counted = counter.stop(cycles) if counter else {}
        cpu = cpu_seconds(admin) - cpu
        stats = commandstats(admin)
    finally:
        _clear(admin, adapter.keys.prefix)
    figures = per_cycle(stats, cycles, {})
    label = "chatstate effects" if effects else "chatstate"
    rate = round(cycles / seconds, 1)
    cpu_us = round(cpu * 1e6 / cycles, 2)
    return {"run": label, "cycles_per_s": rate, "cpu_us": cpu_us, **counted, **figures}


def peer_available() -> bool:
    """Whether node and the peer's package (``cd bench/peer && npm ci``) are installed."""
    installed = (PEER / "node_modules" / "@chat-adapter" / "state-redis").is_dir()
    return installed and shutil.which("node") is not None


def run_peer(url: str, cycles: int, callgrind: str | None = None) -> dict[str, Any]:
    """``cycles`` cycles of the TypeScript peer on ``url``; the server's work per cycle."""
    admin = _client(url)
    command = ["node", str(PEER_SCRIPT), "--url", url, "--cycles", str(cycles)]
    with subprocess.Popen(
        command, cwd=PEER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            _expect(proc, "ready")
            counter = Callgrind(admin, callgrind) if callgrind else None
            admin.config_resetstat()
            cpu = cpu_seconds(admin)
            if counter:
                counter.start()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            seconds = float(_expect(proc, "done").split()[1])
            counted = counter.stop(cycles) if counter else {}
            cpu = cpu_seconds(admin) - cpu
            stats = commandstats(admin)
            proc.stdin.write("end\n")
            proc.stdin.flush()
        finally:
            if proc.wait(timeout=60) != 0:
                raise RuntimeError(f"the peer exited with {proc.returncode}")
    figures = per_cycle(stats, cycles, PEER_SENT)
    rate = round(cycles / seconds, 1)
    cpu_us = round(cpu * 1e6 / cycles, 2)
    return {"run": "peer", "cycles_per_s": rate, "cpu_us": cpu_us, **counted, **figures}


def _expect(proc: Any, word: str) -> str:
    line: str = proc.stdout.readline()
    if not line.startswith(word):
        proc.kill()
        raise RuntimeError(f"the peer said {line!r}, not {word!r}")
    return line


def _clear(client: Any, prefix: str) -> None:
    pattern = prefix.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") + "*"
    batch = [key for key in client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(batch), 1000):
        client.unlink(*batch[start : start + 1000])


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Every run on the server at ``redis_url`` (chatstate, with ``effects`` chatstate staging
    effects, the peer when installed), ``cycles`` each, ``rounds`` interleaved rounds; each
    run's figures from its round of median server time, its median CPU, and the ratios."""
    url, cycles, effects = options.get("redis_url"), options["cycles"], options["effects"]
    callgrind = options.get("callgrind")
    if not url:
        raise ValueError("--server-work resets the server's counters: give --redis-url")
    rounds: dict[str, list[dict[str, Any]]] = {}
    for _ in range(max(1, options.get("rounds") or 1)):
        runs = [run_chatstate(url, cycles, False, callgrind)]
        if effects:
            runs.append(run_chatstate(url, cycles, True, callgrind))
        if peer_available():
            runs.append(run_peer(url, cycles, callgrind))
        for r in runs:
            rounds.setdefault(r["run"], []).append(r)
    by = {}
    for name, results in rounds.items():
        ranked = sorted(results, key=lambda r: r["server_us"])
        cpu = sorted(r["cpu_us"] for r in results)[len(results) // 2]
        rounds_us = [r["server_us"] for r in results]
        by[name] = {**ranked[len(ranked) // 2], "cpu_us": cpu, "rounds_us": rounds_us}
    ratios = {}
    figures = [("server_us", ""), ("cpu_us", " (CPU)")]
    if callgrind:
        figures += [("instructions", " (instructions)"), ("instructions_all", " (all instr.)")]
    for figure, label in figures:
        if "peer" in by:
            ours, theirs = by["chatstate"][figure], by["peer"][figure]
            ratios[f"chatstate / peer{label}"] = round(ours / theirs, 2)
        if effects:
            plain, more = by["chatstate"][figure], by["chatstate effects"][figure]
            ratios[f"effects / plain{label}"] = round(more / plain, 2)
    return {"adapter": "redis", "cycles": cycles, "runs": list(by.values()), "ratios": ratios}


def format_figures(figures: dict[str, Any]) -> str:
    """The figures as tables for humans."""
    lines = [f"Redis server work per message cycle ({figures['cycles']:,} cycles, 1 client)"]
    lines.append(
        f"{'run':<18} {'server µs':>10} {'all cmds µs':>12} {'CPU µs':>8} {'cycles/s':>10}"
        "  rounds (server µs)"
    )
    for r in figures["runs"]:
        lines.append(
            f"{r['run']:<18} {r['server_us']:>10.2f} {r['all_commands_us']:>12.2f}"
            f" {r['cpu_us']:>8.2f} {r['cycles_per_s']:>10.1f}"
            f"  {' · '.join(f'{u:.1f}' for u in r['rounds_us'])}"
        )
    for name, value in figures["ratios"].items():
        lines.append(f"{name}: {value:.2f}×")
    for r in figures["runs"]:
        if "instructions" in r:
            lines.append(
                f"{r['run']}: {r['instructions']:,} instructions per cycle in commands,"
                f" {r['instructions_all']:,} in all (callgrind)"
            )
    for r in figures["runs"]:
        inner = ", ".join(f"{c} {v['calls']:g}× {v['us']:.2f} µs" for c, v in r["inner"].items())
        lines.append(f"{r['run']} — scripts {r['scripts_per_cycle']}; inside: {inner}")
    return "\n".join(lines)
