"""The example project end to end, in real processes: ``replay`` over HTTP against
``runserver`` (then the outbox delivered by a dispatcher beside it), and ``migrate`` +
``demo`` as ``make demo`` runs them.

Each test gets its own SQLite file (the example project runs on SQLite), so they run in the
SQLite run of the suite only; no test database is involved.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from example_project.demo import replay, report
from tests import services

ROOT = Path(__file__).resolve().parents[2]
SECRET = "replay-test-secret"
#: Upper bound on any one subprocess; the whole module finishes well within a minute.
TIMEOUT = 120

# The example project runs on SQLite: the SQLite run covers it.
pytestmark = pytest.mark.run_on("sqlite")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The example project's settings on a fresh SQLite file, with a known secret."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_SQLITE_PATH": str(tmp_path / "example.sqlite3"),
        "BOT_SIGNING_SECRET": SECRET,
        "BOT_THINK_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``runserver`` (threaded, no reloader) on a migrated fresh database; its base URL."""
    migrated = manage(env, "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    port = services.free_port()
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                log.seek(0)
                assert process.poll() is None, f"runserver exited:\n{log.read()}"
                assert time.monotonic() < deadline, f"runserver never listened:\n{log.read()}"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


#: Prints what the example's store holds for each thread of the sample conversation.
THREADS = (
    "import json; from chatstate import get_adapter; from example_project.demo import replay; "
    "print(json.dumps(replay.final_threads(replay.load_steps(replay.SAMPLE), get_adapter())))"
)


def final_threads(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What the example's database holds for each thread of the sample, by thread id."""
    shown = manage(env, "shell", "-v", "0", "-c", THREADS)
    assert shown.returncode == 0, shown.stderr
    return {info["thread"]: info for info in json.loads(shown.stdout)}


POSTED = re.compile(r"^posted (\S+) to (\S+) \(re (m\d+)\): (.*)$", re.MULTILINE)


@pytest.mark.crossprocess
def test_replay_over_http_against_runserver(env: dict[str, str], server: str) -> None:
    replayed = manage(env, "replay", "--url", server, "--concurrency", "4")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    out = replayed.stdout
    assert f"{server}, sync view, 4 concurrent senders" in out
    assert "17 deliveries: " in out and "3 duplicates dropped, 0 errors." in out, out
    assert replayed.stderr == ""  # no progress bar: stderr is not a terminal
    assert "duplicate, dropped" in out and "slack:C-support:deploy-42" in out
    # The replies left through the outbox, delivered by the command after the replay (the
    # server posted none), each thread's in the order its messages were handled.
    posted = POSTED.findall(out)
    assert "12 replies sent, 0 to retry, 0 dead." in out
    threads = final_threads(env)
    deploy, lunch = threads["slack:C-support:deploy-42"], threads["slack:C-random:lunch-7"]
    for info in (deploy, lunch):
        sent = [mid for _, thread, mid, _ in posted if thread == info["thread"]]
        assert sent == report.replied(info) and info["waiting"] == 0

    order = report.processed(deploy)
    # Every accepted message processed exactly once; the bursts in any order the lock
    # decided, but each burst after what was sent before it and before what came after.
    assert sorted(order) == ["m01", "m02", "m03", "m04", "m05", "m06", "m07", "m09", "m10"]
    assert order[:2] == ["m01", "m02"]
    assert set(order[2:6]) == {"m03", "m04", "m05", "m06"}
    assert order[6] == "m07" and set(order[7:]) == {"m09", "m10"}
    assert deploy["subscribed"] is True
    assert deploy["state"] == {"turns": 9}
    assert report.replied(deploy) == order[1:]  # m01: not yet followed
    assert deploy["channel_state"] == {"messages": 9, "active_threads": [deploy["thread"]]}

    order = report.processed(lunch)
    assert order[0] == "m08" and set(order[1:3]) == {"m11", "m12"} and order[3:] == ["m13", "m14"]
    assert report.replied(lunch) == order[:4]  # m14: after "@bot stop"
    assert lunch["subscribed"] is False
    assert lunch["channel_state"] == {"messages": 5, "active_threads": []}

    # The server remembers: replaying again (through the async view) drops everything.
    again = manage(env, "replay", "--url", server, "--async")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "17 deliveries: 0 handled at once, 0 queued then handled in order, "
        "17 duplicates dropped, 0 errors." in again.stdout
    )
    assert "0 replies sent" in again.stdout and not POSTED.findall(again.stdout)
    assert final_threads(env) == threads


@pytest.mark.crossprocess
def test_replay_reports_an_unreachable_server(env: dict[str, str]) -> None:
    result = manage(env, "replay", "--url", f"http://127.0.0.1:{services.free_port()}")
    assert result.returncode == 1
    assert "cannot reach the server" in result.stderr


@pytest.mark.crossprocess
def test_make_demo_steps_on_a_fresh_database_twice(env: dict[str, str]) -> None:
    """What ``make demo`` runs, on a fresh database, and again (it is idempotent)."""
    outputs = []
    for _ in range(2):
        migrated = manage(env, "migrate", "--noinput", "-v", "0")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        demo = manage(env, "demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        outputs.append(demo.stdout)
    first, second = outputs
    for out in outputs:
        assert "17 deliveries: " in out and "3 duplicates dropped, 0 errors." in out
        assert ".venv/bin/python manage.py runserver" in out
        assert "http://127.0.0.1:8000/admin/" in out
        assert "a 503 is redelivered after its Retry-After" in out
        # The replies are sent by the outbox's dispatcher after the replay, and printed.
        outbox = out.index("The outbox: the replies, sent after their commits")
        assert "(12 waiting)" in out and "12 sent, 0 to retry, 0 dead." in out
        posted = POSTED.findall(out[outbox:])
        assert len(posted) == 12 and out.index("posted ") > outbox
        assert posted[0] == (
            "slack:m02:0",
            "slack:C-support:deploy-42",
            "m02",
            "Hi bob! I'm following this thread now and will answer every message in it.",
        )
        assert ("m13", "Okay frank, I'll stop following this thread. Mention me to bring me "
                "back.") in [(mid, text) for _, _, mid, text in posted]  # fmt: skip
        assert "  m14 grace: see you at noon" in out  # the histories
    assert "Superuser 'admin' (password 'admin') created." in first
    assert "Superuser 'admin' (password 'admin') already exists." in second
    assert "cleared" not in first and "cleared" in second


def test_conversation_file_errors_name_the_line(tmp_path: Path) -> None:
    good = replay.SAMPLE.read_text().splitlines()[0]
    cases = {
        "not json": ("{oops", "line 2: not JSON"),
        "no deliveries": ('{"note": "x"}', "line 2: expected an object with a 'deliveries' list"),
        "bad message": (
            '{"deliveries": [{"platform": "slack"}]}',
            "line 2: deliveries[0]: message_id is required",
        ),
    }
    for name, (line, error) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(f"{good}\n{line}\n")
        with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
            replay.load_steps(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no steps"):
        replay.load_steps(empty)
    assert len(replay.load_steps(replay.SAMPLE)) == 9


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = replay.Progress(4, stream)
        for _ in range(4):
            bar.advance()
        bar.close()
    assert "replay [###############...............] 2/4" in terminal.getvalue()
    assert "4/4" in terminal.getvalue() and terminal.getvalue().endswith("\r")
    assert pipe.getvalue() == ""


# -- what a replay reports ------------------------------------------------------------------


class FlakySender:
    """Answers 503 (``Retry-After: 0``) ``refusals`` times per message, then 200."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.sent = refusals, 0

    def post(self, message: dict[str, object]) -> replay.Reply:
        self.sent += 1
        if self.sent <= self.refusals:
            return (
                503,
                {"error": f"message {message['message_id']} is being handled now", "field": None},
                0.0,
            )
        return 200, {"status": "duplicate", "thread": "t", "handled": [], "outbox": []}, None

    def end_thread(self) -> None:
        return None


def test_a_503_is_redelivered_after_its_retry_after() -> None:
    step = replay.load_steps(replay.SAMPLE)[2]  # one delivery of m02
    [outcome] = replay.replay([step], FlakySender(refusals=2))
    assert (outcome.status, outcome.kind) == (200, "duplicate")
    assert outcome.refused == ["message m02 is being handled now"] * 2
    assert report.describe(outcome, {}) == (
        "503 (message m02 is being handled now) (2 times), redelivered: duplicate, dropped"
    )
    assert report.summary(report.counts([outcome], [])).endswith(
        "1 duplicates dropped, 0 errors. 1 answered 503 first, then redelivered."
    )


def test_redelivery_gives_up_after_max_redeliveries() -> None:
    step = replay.load_steps(replay.SAMPLE)[2]
    sender = FlakySender(refusals=99)
    [outcome] = replay.replay([step], sender)
    assert sender.sent == 1 + replay.MAX_REDELIVERIES
    assert (outcome.status, outcome.kind) == (503, "error")
    assert report.problems([outcome], []) == [
        "step 1 m02: HTTP 503 {'error': 'message m02 is being handled now', 'field': None}"
    ]


def _thread(*processed: str, waiting: int = 0) -> dict[str, Any]:
    return {
        "thread": "slack:C-support:deploy-42",
        "subscribed": True,
        "state": {},
        "history": [{"role": "user", "message_id": mid} for mid in processed],
        "waiting": waiting,
        "channel": "slack:C-support",
        "channel_state": {},
    }


def test_problems_reports_a_queued_message_overtaken() -> None:
    """A holder handles its own message, then what it drained, one after the other: a
    message processed in between (or the drained ones in another order) is a reordering."""
    burst = replay.load_steps(replay.SAMPLE)[3].deliveries  # m03..m06
    outcomes = [
        report.Outcome(4, burst[0], 200, {"status": "handled", "handled": ["m03", "m04", "m05"]}),
        report.Outcome(4, burst[1], 202, {"status": "queued"}),
        report.Outcome(4, burst[2], 202, {"status": "queued"}),
        report.Outcome(4, burst[3], 200, {"status": "handled", "handled": ["m06"]}),
    ]
    assert report.problems(outcomes, [_thread("m03", "m04", "m05", "m06")]) == []
    assert report.problems(outcomes, [_thread("m03", "m06", "m04", "m05")]) == [
        "slack:C-support:deploy-42: m03 m04 m05 were not processed in that order one after "
        "the other (m03 m06 m04 m05)"
    ]
    assert report.problems(outcomes, [_thread("m06", "m03", "m05", "m04")]) != []
    assert report.describe(outcomes[0], report.handled_by(outcomes)) == (
        "handled, then the queued m04, m05 in the order they queued"
    )
    assert report.describe(outcomes[1], report.handled_by(outcomes)) == (
        "queued, handled in turn by m03's delivery"
    )


def test_problems_reports_a_message_answered_twice_or_a_reply_left_waiting() -> None:
    """A delivery queued behind messages a dead holder left handles them, then its own; a
    reply found twice in a history, or still in the outbox after the dispatch, is reported."""
    burst = replay.load_steps(replay.SAMPLE)[3].deliveries
    late = report.Outcome(4, burst[2], 200, {"status": "handled", "handled": ["m03", "m04", "m05"]})
    assert report.describe(late, {}) == (
        "queued behind m03, m04 (left waiting), handled them, then it"
    )
    info = _thread("m03", "m04", "m05", waiting=2)
    info["history"] += [{"role": "bot", "in_reply_to": "m04"}] * 2
    assert report.problems([late], [info]) == [
        "slack:C-support:deploy-42: m04 answered more than once",
        "slack:C-support:deploy-42: 2 replies still in the outbox",
    ]
