"""Follow ``docs/tutorial.rst`` as written, in a fresh directory: its code blocks are the steps.

The walk reads the tutorial's ``code-block`` directives in order and does what each says:

- a ``python`` block whose first line is ``# <path>`` is that file's new content, or, when
  the line reads ``# <path>: add at the end``, is appended to it;
- a ``sh`` block is commands, run in order (``\\`` continues a line, ``&&`` chains, a
  trailing ``# …`` is a comment). A full-line comment holding JSON right after a command is
  the output it must print. A trailing comment naming a system check (``chatstate.W003``)
  is a message its output must contain.

Commands the walk does not know fail it: a new command in the tutorial needs a rule here.
Where a person would type into a terminal, the walk does the same without one:
``runserver`` starts in the background on a free port (the ``curl`` commands go to it),
``createsuperuser`` takes its answers from ``--noinput`` and the environment, and the admin
page the tutorial opens is fetched by logging in over HTTP.

Two modes:

- ``checkout`` (``tests/docs/test_tutorial.py``): ``python`` is the interpreter running the test,
  chatstate already installed in it (the checkout, editable, or the tox env's build). The
  virtualenv and ``pip`` lines are checked, not run: ``pip install`` must name the wheel
  ``pip wheel`` writes (its version read from ``pyproject.toml``).
- ``literal`` (``ci/wheel-smoke.sh``): every line runs as written, ``path/to/chatstate``
  being this checkout: a new virtualenv, the wheel built from the clone and installed with
  its dependencies, then the project.

Standard library only (the ``literal`` walk starts before anything is installed)::

    python tests/docs/tutorial_walk.py --literal WORKDIR [--python python3.13]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.rst"
CLONE = "path/to/chatstate"  # the tutorial's name for the reader's clone
STEP_TIMEOUT = 300
SUPERUSER = ("admin", "admin@example.com", "tutorial-pass-1")
CHECK_ID = re.compile(r"\bchatstate\.[EW]\d{3}\b")


class WalkFailed(AssertionError):
    """A step of the tutorial did not do what the tutorial says."""


@dataclass
class Block:
    language: str
    text: str
    line: int  # of the directive, 1-based


def code_blocks(rst: str) -> list[Block]:
    """The ``.. code-block:: LANG`` directives of ``rst``, their bodies dedented."""
    lines = rst.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        directive = re.match(r"\.\. code-block:: (\w+)\s*$", lines[i])
        i += 1
        if directive is None:
            continue
        start = i
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            i += 1
        body = lines[start:i]
        indent = min(len(x) - len(x.lstrip()) for x in body if x.strip())
        text = "\n".join(x[indent:] for x in body).strip("\n") + "\n"
        blocks.append(Block(directive[1], text, start))
    return blocks


@dataclass
class Command:
    argv: list[str]
    line: str
    comment: str = ""  # the trailing comment
    expected: object = None  # the JSON output it must print, if given


def split_comment(line: str) -> tuple[str, str]:
    """``line`` and its trailing ``# comment`` (outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line, ""


def commands(block: Block) -> list[Command]:
    """The commands of a ``sh`` block, with their expected outputs."""
    joined: list[str] = []
    for raw in block.text.splitlines():
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + raw.strip()
        else:
            joined.append(raw.strip())
    found: list[Command] = []
    for line in filter(None, joined):
        code, comment = split_comment(line)
        if not code:  # a full-line comment: the previous command's output, if JSON
            if found and comment.startswith(("{", "[")):
                found[-1].expected = json.loads(comment)
            continue
        for part in code.split(" && "):
            found.append(Command(shlex.split(part), part, comment))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected_wheel() -> str:
    """The file name ``pip wheel`` gives this checkout's pure-Python wheel."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    name = re.search(r'^name = "([^"]+)"', text, re.M)
    version = re.search(r'^version = "([^"]+)"', text, re.M)
    assert name and version
    return f"{name[1]}-{version[1]}-py3-none-any.whl"


@dataclass
class Walk:
    """One walk through the tutorial in ``workdir`` (see the module's docstring)."""

    workdir: Path
    python: str = sys.executable
    literal: bool = False
    cwd: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    server: subprocess.Popen[bytes] | None = None
    port: int = 0
    log: list[str] = field(default_factory=list)
    wheel_dir: str | None = None
    admin_pages: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cwd = self.workdir
        # A new user's shell: none of the test run's Django or chatstate settings.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")
            and not k.startswith("CHATSTATE_")
        }

    # -- the walk --------------------------------------------------------------------------

    def run(self) -> list[str]:
        """Every block of the tutorial, in order; what each step did, one line each."""
        try:
            for block in code_blocks(TUTORIAL.read_text(encoding="utf-8")):
                if block.language == "python":
                    self.write(block)
                elif block.language == "sh":
                    for command in commands(block):
                        self.command(command, block)
                else:
                    raise WalkFailed(f"tutorial.rst:{block.line}: a {block.language} block")
            if self.server is None:
                raise WalkFailed("the tutorial never starts the server")
        finally:
            self.stop_server()
        return self.log

    def write(self, block: Block) -> None:
        first, _, body = block.text.partition("\n")
        target = re.fullmatch(r"# (\S+?)(: add at the end)?", first.strip())
        if target is None:
            raise WalkFailed(f"tutorial.rst:{block.line}: a python block names no file")
        path = self.cwd / target[1]
        if target[2]:
            if not path.exists():
                raise WalkFailed(f"tutorial.rst:{block.line}: {target[1]} does not exist yet")
            with path.open("a", encoding="utf-8") as f:
                f.write("\n" + body)
            self.log.append(f"appended to {target[1]}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            self.log.append(f"wrote {target[1]}")

    def command(self, command: Command, block: Block) -> None:
        argv, where = command.argv, f"tutorial.rst:{block.line}: {command.line}"
        if argv[:3] == ["python", "-m", "venv"]:
            self.venv(argv[3])
        elif argv[:2] == [".", ".venv/bin/activate"] or argv[:2] == [
            "source",
            ".venv/bin/activate",
        ]:
            self.activate()
        elif argv[:4] == ["python", "-m", "pip", "wheel"]:
            self.pip_wheel(argv[4:], where)
        elif argv[:2] == ["pip", "install"]:
            self.pip_install(argv[2:], where)
        elif argv[:2] == ["django-admin", "startproject"]:
            self.check_output([self.python, "-m", "django", *argv[1:]], where)
        elif argv[0] == "cd":
            self.cwd = self.cwd / argv[1]
        elif argv[:3] == ["python", "manage.py", "runserver"]:
            self.start_server(where)
        elif argv[:3] == ["python", "manage.py", "createsuperuser"]:
            self.createsuperuser(where)
        elif argv[:2] == ["python", "manage.py"]:
            output = self.check_output([self.python, *argv[1:]], where)
            for check in CHECK_ID.findall(command.comment):
                if check not in output:
                    raise WalkFailed(f"{where}: the tutorial says {check}; got:\n{output}")
        elif argv[0] == "curl":
            self.curl(argv[1:], command.expected, where)
        else:
            raise WalkFailed(f"{where}: a command this walk does not know")
        self.log.append(command.line)

    # -- installing --------------------------------------------------------------------------

    def venv(self, name: str) -> None:
        if self.literal:
            self.check_output([self.python, "-m", "venv", name], "python -m venv")

    def activate(self) -> None:
        if self.literal:
            bin_dir = self.cwd / ".venv" / "bin"
            self.python = str(bin_dir / "python")
            self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
            self.env["VIRTUAL_ENV"] = str(self.cwd / ".venv")

    def pip_wheel(self, args: list[str], where: str) -> None:
        if "-w" not in args or args[-1] != CLONE:
            raise WalkFailed(f"{where}: expected `-w DIR {CLONE}`")
        self.wheel_dir = args[args.index("-w") + 1]
        if self.literal:
            argv = [*args[:-1], str(ROOT)]
            self.check_output([self.python, "-m", "pip", "wheel", *argv], where)
            built = sorted(p.name for p in (self.cwd / self.wheel_dir).glob("*.whl"))
            if built != [expected_wheel()]:
                raise WalkFailed(f"{where}: built {built}, the tutorial installs another")

    def pip_install(self, args: list[str], where: str) -> None:
        (target,) = args
        wanted = f"{self.wheel_dir}/{expected_wheel()}"
        if target.split("[")[0] != wanted:
            raise WalkFailed(f"{where}: installs {target!r}; pip wheel writes {wanted}")
        if self.literal:
            self.check_output([self.python, "-m", "pip", "install", target], where)

    # -- the project ---------------------------------------------------------------------

    def check_output(self, argv: list[str], where: str) -> str:
        done = subprocess.run(
            argv,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise WalkFailed(f"{where}: exit status {done.returncode}\n{output}")
        return output

    def start_server(self, where: str) -> None:
        self.port = free_port()
        log = (self.workdir / "runserver.log").open("wb")
        self.server = subprocess.Popen(
            [self.python, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise WalkFailed(f"{where}: the server did not start\n{self.server_log()}")

    def server_log(self) -> str:
        path = self.workdir / "runserver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def url(self, given: str) -> str:
        """``given`` (``localhost:8000/webhook``) on the walk's server."""
        parts = urllib.parse.urlsplit(given if "//" in given else f"http://{given}")
        if parts.hostname not in ("localhost", "127.0.0.1") or parts.port != 8000:
            raise WalkFailed(f"{given}: not the development server of the tutorial")
        return f"http://127.0.0.1:{self.port}{parts.path or '/'}"

    def curl(self, args: list[str], expected: object, where: str) -> None:
        method, data, url = "GET", None, None
        rest = iter(args)
        for arg in rest:
            if arg == "-X":
                method = next(rest)
            elif arg in ("-d", "--data"):
                data = next(rest).encode()
                method = "POST" if method == "GET" else method
            elif arg.startswith("-"):
                raise WalkFailed(f"{where}: a curl option this walk does not know")
            else:
                url = arg
        if url is None or self.server is None:
            raise WalkFailed(f"{where}: no URL, or no server running")
        request = urllib.request.Request(self.url(url), data=data, method=method)
        # curl's default for -d; the view reads the body whatever its type.
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise WalkFailed(f"{where}: HTTP {exc.code}\n{self.server_log()[-3000:]}") from exc
        if expected is not None and json.loads(body) != expected:
            raise WalkFailed(f"{where}: printed {body}, the tutorial says {json.dumps(expected)}")

    def createsuperuser(self, where: str) -> None:
        """What a person answers at the prompts, then the admin the tutorial opens."""
        name, email, password = SUPERUSER
        self.env["DJANGO_SUPERUSER_PASSWORD"] = password
        argv = ["manage.py", "createsuperuser", "--noinput", "--username", name]
        self.check_output([self.python, *argv, "--email", email], where)
        self.admin_pages = self.open_admin(where)
        self.admin_shows_the_conversation(where)

    def open_admin(self, where: str) -> dict[str, str]:
        """Log in as the superuser; the admin pages the tutorial's step describes, by path."""
        if self.server is None:
            raise WalkFailed(f"{where}: the tutorial opens the admin before runserver")
        base = f"http://127.0.0.1:{self.port}"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        try:
            login = opener.open(f"{base}/admin/login/?next=/admin/", timeout=30).read().decode()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)
            if token is None:
                raise WalkFailed(f"{where}: no login form at /admin/login/")
            form = urllib.parse.urlencode(
                {
                    "csrfmiddlewaretoken": token[1],
                    "username": SUPERUSER[0],
                    "password": SUPERUSER[2],
                    "next": "/admin/",
                }
            ).encode()
            opener.open(urllib.request.Request(f"{base}/admin/login/", data=form), timeout=30)
            pages = {}
            for path in (
                "/admin/",
                "/admin/chatstate/",
                "/admin/chatstate/threadstate/",
                "/admin/chatstate/subscription/",
                "/admin/chatstate/dedupeentry/",
                "/admin/chatstate/lock/",
                "/admin/chatstate/lock/overview/",
            ):
                with opener.open(f"{base}{path}", timeout=30) as response:
                    if response.geturl() != f"{base}{path}":  # sent to the login page
                        raise WalkFailed(f"{where}: {path} went to {response.geturl()}")
                    pages[path] = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise WalkFailed(f"{where}: HTTP {exc.code} for {exc.url}") from exc
        return pages

    def admin_shows_the_conversation(self, where: str) -> None:
        """What the tutorial says the admin shows after its three deliveries."""
        pages = self.admin_pages
        shown = {
            "/admin/chatstate/": ["Namespace overview"],
            "/admin/chatstate/threadstate/": ["T1", "turns: 2"],
            "/admin/chatstate/subscription/": ["T1"],
            "/admin/chatstate/dedupeentry/": ["m1", "m2"],
            "/admin/chatstate/lock/overview/": ["mybot"],
        }
        for path, texts in shown.items():
            missing = [text for text in texts if text not in pages[path]]
            if missing:
                raise WalkFailed(f"{where}: {path} does not show {missing}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="an empty directory to walk in")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to start with")
    parser.add_argument("--literal", action="store_true", help="run the install lines too")
    args = parser.parse_args()
    if args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"{args.workdir} is not empty")
    python = shutil.which(args.python) or args.python
    walk = Walk(args.workdir, python=python, literal=args.literal)
    try:
        steps = walk.run()
    except WalkFailed as exc:
        print(f"tutorial walk FAILED: {exc}", file=sys.stderr)
        return 1
    for step in steps:
        print(f"  {step}")
    print(f"tutorial walk passed: {len(steps)} steps, the admin pages included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
