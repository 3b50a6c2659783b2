"""Collect the commands of README.md and docs/*.md and run them as written (``tests/test_docs.py``).

What is collected
-----------------
- Fenced blocks tagged ``bash``, ``sh``, ``shell`` or ``console`` are shell (in a ``console`` block only
  the lines after a ``$`` prompt); so is an untagged block whose first line starts with a command
  (``rnnkit``, ``.venv/bin/...``, ``torchrun``, ``curl``, ``python``, ``make``, ...), so that leaving
  the tag off does not hide commands. Blocks tagged ``python`` or ``py`` are Python. Any other tag
  (``text`` for output, usage synopses and transcripts) is not run.
- A command is a line of a shell block with the lines its trailing backslashes join to it; blank lines
  and comment lines are dropped (the shell drops trailing comments).
- ``<!-- docs-test: skip REASON -->`` on the line before a block (blank lines between are allowed) skips
  the block: for commands that need GPUs or several machines, or run for long by design (``make demo``).
  A command that runs a script of ``bench/`` is skipped too: those print the figures of the docs over
  minutes or hours and are never run by the tests (README). Each skip is listed with its reason, as
  a skipped test, never counted as passed.
- ``<!-- docs-test: last -->`` on the line before a block runs the block after every other command of
  the page. A task page opens with a short Python example on a run that the page's commands train
  further down; the example runs, as written, once that run exists (with the page's budget, so its
  output is a barely trained model's). :func:`collect` returns the commands in the order they run.

How a file runs
---------------
- In a workspace of its own: a copy of the repository's tracked files in ``WS/repo`` (what a fresh clone
  has, with the working tree's edits) and ``WS/shared/data`` pointing at the shared datasets, so that
  ``../shared/data`` resolves as written. Commands run from ``WS/repo``.
- A file's commands run in order in one ``bash``, as typed in a terminal: a variable set by one command
  (``S=...``) reaches the later ones, in its block and in later blocks; quoting, globs, pipes (the exit
  status is the last command's) and ``$VAR`` are bash's own. Python blocks run in their place in that
  order.
- PATH: for README.md, the machine's PATH without any virtual environment (nor any folder holding an
  ``rnnkit`` or ``torchrun``): the README must call the tools it installs as ``.venv/bin/X``. For the
  pages of docs/, ``WS/repo/.venv/bin`` comes first, as after ``source .venv/bin/activate``; they write
  ``rnnkit`` for ``.venv/bin/rnnkit``.
- ``WS/repo/.venv/bin/rnnkit`` runs ``rnnkit.cli.main(argv)`` in a fork of one server process that has
  imported torch and rnnkit already (that saves the 1.5-3 s of imports of every command), with the
  caller's stdin, stdout, stderr, working folder and environment; its exit code is the command's. Python
  blocks run the same way. They run on one CPU thread (``$RNNKIT_DOCS_THREADS``; a ``--threads`` flag
  still wins), so that two pages can run side by side on two cores. ``.venv/bin/torchrun`` runs the
  real torchrun (real worker processes). Every other entry of ``.venv/bin`` is the real one.
- Budgets are shrunk here, at run time, so that the docs stay as a user types them: every training
  command (``rnnkit train``, ``rnnkit TASK train``, also under torchrun) gets ``--max-steps N`` appended
  (N is ``$RNNKIT_DOCS_BUDGET``, default 2; a ``--resume`` gets 2N, so that it trains on): it replaces
  the command's own ``--max-steps`` and ends training long before its ``--max-minutes``. ``rnnkit
  caption make-shapes`` draws ``--n 40`` pictures. ``RNNKIT_DOCS_BUDGET=0`` runs every command as
  written (hours).
- ``rnnkit serve`` runs in the background: the command returns once its port answers, and the servers
  stop when the file is done. The docs' ports 8000 and 9000 are mapped to free ports, in the server's
  ``--port`` and in ``localhost:PORT`` in curl's arguments (a bash function around curl, which also adds
  ``--fail-with-body``, so that an HTTP error fails the command).
- A page that uses run folders another page trains (:data:`PREREQUISITES`) starts with copies of that
  page's ``runs/`` (the other page runs first if it has not run yet).
- When the file is done, every file in the workspace outside ``runs/`` and ``.venv/`` that is new or
  changed is reported: commands must write under ``runs/``.

This module imports no third-party package at import time: the torchrun wrapper imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELL_TAGS = {"bash", "sh", "shell", "console"}
PYTHON_TAGS = {"python", "py"}
COMMAND_START = re.compile(r"^(\$ )?(\.venv/bin/|rnnkit |torchrun |curl |python|make |echo |cd |export )")
SKIP_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b\s*(.*?)\s*-->\s*$")
LAST_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*last\s*-->\s*$")
BENCH = re.compile(r"(^|\s)(\S*/)?bench/\S+\.py\b")
DEFAULT_BUDGET = 2
SHAPES = 40
DOC_PORTS = (8000, 9000)
PREREQUISITES = {
    # page: the pages whose runs/ it starts with (it uses their run folders)
    "docs/char-rnn.md": ("docs/shakespeare.md",),
    "docs/serve.md": ("docs/shakespeare.md", "docs/poems.md", "docs/code.md", "docs/tagging.md"),
}
TASK_GROUPS = {"classify", "tag", "forecast", "speech", "caption"}
PRELOAD = (
    "torch",
    "numpy",
    "rnnkit.cli",
    "rnnkit.console",
    "rich.table",
    "rich.progress",
    "_strptime",
    "rnnkit.tasks.lm",
    "rnnkit.tasks.classify",
    "rnnkit.tasks.tag",
    "rnnkit.tasks.forecast",
    "rnnkit.tasks.speech",
    "rnnkit.tasks.caption",
    "rnnkit.serve",
    "rnnkit.serve.app",
    "rnnkit.curves",
    "rnnkit.xray",
    "matplotlib.pyplot",
    "uvicorn",
    "fastapi",
    "sacrebleu",
    "seqeval.metrics",
    "scipy.signal",
    "soundfile",
    "PIL.Image",
)


# -------------------------------------------------------------------------------------------------
# collecting


@dataclass(frozen=True)
class Block:
    doc: str  # the file's name as reported, e.g. "docs/tagging.md"
    line: int  # line of the opening fence, 1-based
    kind: str  # "shell", "console" (commands after a $ prompt) or "python"
    lines: tuple[str, ...]  # the block's lines
    skip: str | None = None  # the reason of a skip marker
    last: bool = False  # a last marker: runs after the page's other commands

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass(frozen=True)
class Command:
    doc: str
    line: int  # the command's first line in the file
    kind: str  # "shell" or "python"
    text: str  # as bash reads it (continuations kept), or the Python code
    skip: str | None = None
    last: bool = False

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def collect_blocks(text: str, doc: str) -> list[Block]:
    """The shell and Python blocks of a Markdown text (see the module docstring)."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        mark, tag = fence.group(1), fence.group(2).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(mark):
            end += 1
        body = tuple(lines[i + 1 : end])
        kind = None
        if tag in SHELL_TAGS:
            kind = "shell" if tag != "console" else "console"
        elif tag in PYTHON_TAGS:
            kind = "python"
        elif not tag:
            first = next((b.strip() for b in body if b.strip()), "")
            kind = "shell" if COMMAND_START.match(first) else None
        if kind:
            marker = _marker(lines, i)
            skip = SKIP_MARKER.match(marker)
            reason = (skip.group(1) or "no reason given") if skip else None
            blocks.append(Block(doc, i + 1, kind, body, reason, bool(LAST_MARKER.match(marker))))
        i = end + 1
    return blocks


def _marker(lines: list[str], fence: int) -> str:
    """The last non-blank line before the fence (where a marker goes), or ``""``."""
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return lines[j] if j >= 0 else ""


def commands_of(block: Block) -> list[Command]:
    """The block's commands: one per line with its continuation lines; comments and blanks dropped."""
    if block.kind == "python":
        return [Command(block.doc, block.line + 1, "python", "\n".join(block.lines), block.skip, block.last)]
    found: list[Command] = []
    current: list[str] = []
    start = 0
    for offset, raw in enumerate(block.lines):
        number = block.line + 1 + offset
        line = raw
        if block.kind == "console" and not current:
            if not line.lstrip().startswith("$"):
                continue  # output
            line = line.lstrip()[1:].lstrip()
        if not current:
            if not line.strip() or line.strip().startswith("#"):
                continue
            start = number
        current.append(line)
        if not line.rstrip().endswith("\\"):
            found.append(_command(block, start, "\n".join(current)))
            current = []
    if current:
        found.append(_command(block, start, "\n".join(current)))
    return found


def _command(block: Block, line: int, text: str) -> Command:
    skip = block.skip
    if skip is None and BENCH.search(text.split("#")[0]):
        skip = "a benchmark script of bench/: prints the figures of the docs over minutes or hours"
    return Command(block.doc, line, "shell", text, skip, block.last)


def collect(path: Path, doc: str | None = None) -> list[Command]:
    """Every command of one Markdown file, skipped ones included, in the order they run: the file's,
    with the blocks marked ``last`` moved to the end (in their own order)."""
    name = doc or path.name
    found = [c for b in collect_blocks(path.read_text(encoding="utf-8"), name) for c in commands_of(b)]
    return [c for c in found if not c.last] + [c for c in found if c.last]


def doc_files(repo: Path = REPO) -> list[str]:
    """README.md, then docs/*.md, as paths relative to the repository."""
    return ["README.md", *sorted(f"docs/{p.name}" for p in (repo / "docs").glob("*.md"))]


# -------------------------------------------------------------------------------------------------
# shrinking budgets


def budget_from(env) -> int:
    value = env.get("RNNKIT_DOCS_BUDGET", "")
    return int(value) if value.strip() else DEFAULT_BUDGET


def shrink(argv: list[str], budget: int) -> list[str]:
    """The rnnkit arguments ``argv`` (without the program) with its budget shrunk to ``budget`` steps."""
    if budget <= 0:
        return list(argv)
    words = [a for a in argv if not a.startswith("-")][:2]
    command = words[:2] if words[:1] and words[0] in TASK_GROUPS else words[:1]
    if command in (["train"], *([g, "train"] for g in TASK_GROUPS)):
        steps = 2 * budget if any(a == "--resume" or a.startswith("--resume=") for a in argv) else budget
        return [*argv, "--max-steps", str(steps)]
    if command == ["caption", "make-shapes"]:
        kept, skip_next = [], False
        for a in argv:
            if skip_next:
                skip_next = False
            elif a == "--n":
                skip_next = True
            elif not a.startswith("--n="):
                kept.append(a)
        return [*kept, "--n", str(SHAPES)]
    return list(argv)


def shrink_torchrun(args: list[str], budget: int) -> list[str]:
    """torchrun's arguments with the budget of the rnnkit command after ``-m rnnkit`` shrunk."""
    for i in range(len(args) - 1):
        if args[i] in ("-m", "--module") and args[i + 1] == "rnnkit":
            return [*args[: i + 2], *shrink(args[i + 2 :], budget)]
    return list(args)


def remap_port(argv: list[str], ports: dict[int, int]) -> tuple[list[str], int]:
    """``rnnkit serve`` arguments with the docs' port (8000 when none is given) mapped to a free one;
    and that port. A value that is not a number is left for rnnkit to refuse."""
    out, port, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        value = argv[i + 1] if a == "--port" and i + 1 < len(argv) else a.partition("=")[2]
        if (a == "--port" or a.startswith("--port=")) and value.isdigit():
            port = ports.get(int(value), int(value))
            out += ["--port", str(port)]
            i += 2 if a == "--port" else 1
            continue
        out.append(a)
        i += 1
    if port is None:
        port = ports.get(8000, 8000)
        out += ["--port", str(port)]
    return out, port


def parse_ports(value: str) -> dict[int, int]:
    return {int(a): int(b) for a, b in (p.split(":") for p in value.split(",") if p)}


# -------------------------------------------------------------------------------------------------
# the server: forks that run rnnkit.cli.main or a Python block with torch already imported


CLIENT = """#!{python} -IS
import json, os, socket, sys

SOCKET = {socket!r}
KIND = {kind!r}


def main():
    args = sys.argv[1:]
    if KIND == "python":
        request = {{"kind": "python", "name": args[0], "line": int(args[1]), "code": sys.stdin.read()}}
    else:
        request = {{"kind": "rnnkit", "argv": args}}
    request.update(cwd=os.getcwd(), env=dict(os.environ))
    data = json.dumps(request).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(SOCKET)
    socket.send_fds(conn, [len(data).to_bytes(8, "big")], [0, 1, 2])
    conn.sendall(data)
    reply = b""
    while not reply.endswith(b"\\n"):
        chunk = conn.recv(64)
        if not chunk:
            sys.stderr.write("docs runner: the command's process ended without an exit code\\n")
            return 1
        reply += chunk
    return int(reply)


sys.exit(main())
"""

TORCHRUN = """#!{python} -I
import os, sys

sys.path.insert(0, {tests!r})
from docs_runner import budget_from, log_argv, shrink_torchrun

args = shrink_torchrun(sys.argv[1:], budget_from(os.environ))
log_argv(os.environ, ["torchrun", *args])
os.execv({real!r}, [{real!r}, *args])
"""


def log_argv(env, argv: list[str]) -> None:
    """Note the arguments a command really ran with (budget shrunk), for the failure report."""
    log = env.get("RNNKIT_DOCS_ARGV_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"command": env.get("RNNKIT_DOCS_COMMAND"), "argv": argv}) + "\n")


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    while len(header) < 8:
        more = conn.recv(8 - len(header))
        if not more:
            raise ConnectionError("short header")
        header += more
    size = int.from_bytes(header, "big")
    data = b""
    while len(data) < size:
        more = conn.recv(min(1 << 16, size - len(data)))
        if not more:
            raise ConnectionError("short request")
        data += more
    return json.loads(data), list(fds)


def _reply(conn: socket.socket, rc: int) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(f"{int(rc)}\n".encode())
        conn.close()


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> int:
    """In the forked child: become the command (folder, environment, stdio) and run it."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import torch

    torch.set_num_threads(int(os.environ.get("RNNKIT_DOCS_THREADS") or 1))  # --threads still wins
    if request["kind"] == "python":
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        return _run_python(request)

    from rnnkit.cli import main

    argv = shrink(request["argv"], budget_from(os.environ))
    serving = bool(argv) and argv[0] == "serve"
    if serving:
        argv, port = remap_port(argv, parse_ports(os.environ.get("RNNKIT_DOCS_PORTS", "")))
    log_argv(os.environ, ["rnnkit", *argv])
    sys.argv = ["rnnkit", *argv]
    if not serving:
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        rc = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        return rc
    return _serve_in_background(conn, argv, port, fds)


def _serve_in_background(conn: socket.socket, argv: list[str], port: int, fds: list[int]) -> int:
    """``rnnkit serve``: answer the caller once the port accepts connections, then go on serving, with
    the output in a log file (the caller's pipes must not be held open)."""
    import threading

    from rnnkit.cli import main

    logs = Path(os.environ.get("RNNKIT_DOCS_LOGS", tempfile.gettempdir()))
    log = os.open(logs / f"serve-{port}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for fd in (*fds, null, log):
        os.close(fd)
    lock = threading.Lock()
    answered = []

    def answer(rc: int) -> None:
        with lock:
            if not answered:
                answered.append(rc)
                _reply(conn, rc)

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            answer(0)
            return
        print(f"docs runner: nothing listening on port {port} after 120 s", file=sys.stderr, flush=True)
        answer(1)

    threading.Thread(target=watch, daemon=True).start()
    rc = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    answer(rc if rc else 1)  # a server that ends before it listens has failed
    return rc


def _run_python(request: dict) -> int:
    import traceback

    code = "\n" * (request["line"] - 1) + request["code"]  # tracebacks name the doc's own lines
    sys.argv = [request["name"]]
    try:
        exec(
            compile(code, request["name"], "exec", dont_inherit=True), {"__name__": "__main__"}
        )  # no future flags of ours
    except SystemExit as exc:  # as the interpreter would: None and False are 0, a message is 1
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def serve_forever(path: str) -> None:
    """The server's loop: import once, then fork for every request; "cleanup" stops a file's children."""
    import importlib
    import select

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import torch

    # what torch imports on first use (sympy, the decompositions: over a second), on the meta device,
    # which starts no thread: the children are forks of this process
    torch.empty(2, device="meta").normal_()
    with contextlib.suppress(ImportError):
        from PIL import Image

        Image.init()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    children: dict[int, tuple[str, str]] = {}  # pid: the harness folder and command it runs for
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("ready", flush=True)
    parent = os.getppid()
    while not stopping and os.getppid() == parent:  # the test process gone: stop too
        _reap(children)
        try:
            ready, _, _ = select.select([listener], [], [], 0.2)
        except InterruptedError:
            continue
        if not ready:
            continue
        conn, _ = listener.accept()
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        if request["kind"] == "cleanup":
            for fd in fds:
                os.close(fd)
            _stop(children, request.get("harness"))
            _reply(conn, 0)
            continue
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                listener.close()
                rc = _run_child(conn, request, fds)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                _reply(conn, rc if isinstance(rc, int) else 1)
                os._exit(rc if isinstance(rc, int) else 1)
        env = request.get("env", {})
        children[pid] = (env.get("RNNKIT_DOCS_HARNESS", ""), env.get("RNNKIT_DOCS_COMMAND", ""))
        conn.close()
        for fd in fds:
            os.close(fd)
    _stop(children)
    listener.close()


def _reap(children: dict[int, tuple[str, str]]) -> None:
    """Collect the children that ended; note each one's CPU time in its file's harness folder."""
    for pid in list(children):
        try:
            done, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            done, usage = pid, None
        if not done:
            continue
        harness, command = children.pop(pid)
        if usage is not None and harness and command:
            with contextlib.suppress(OSError), open(Path(harness) / "cpu.jsonl", "a") as f:
                cpu = usage.ru_utime + usage.ru_stime
                f.write(json.dumps({"command": int(command), "cpu": round(cpu, 3)}) + "\n")


def _stop(children: dict[int, tuple[str, str]], harness: str | None = None) -> None:
    """SIGTERM the children still running (those of one file's ``harness`` folder, or all), then
    SIGKILL what is left of them after 10 s."""

    def left() -> list[int]:
        return [pid for pid, (h, _) in children.items() if harness is None or h == harness]

    for pid in left():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while left() and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.05)
    for pid in left():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while left():
        _reap(children)
        time.sleep(0.01)


class Server:
    """The server process, seen from the test: start, clean up after a file, close."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rnnkit-docs-"))  # short: AF_UNIX paths are limited
        self.socket = str(self.root / "s")
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve", self.socket],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=self.root,
        )
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"the docs runner's server did not start: {self.server_log()}")

    def server_log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-4000:]

    def cleanup(self, harness: Path) -> None:
        """Stop the commands of one file still running (its background servers)."""
        data = json.dumps({"kind": "cleanup", "harness": str(harness)}).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.socket)
            conn.sendall(len(data).to_bytes(8, "big") + data)
            conn.recv(16)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


# -------------------------------------------------------------------------------------------------
# running one file


@dataclass
class Result:
    command: Command
    rc: int | None  # None: did not finish (time limit)
    seconds: float
    stdout: str
    stderr: str
    argv: list[list[str]] = field(default_factory=list)  # what rnnkit/torchrun really ran
    cpu: float | None = None  # CPU seconds of its in-process rnnkit and Python runs

    @property
    def failed(self) -> bool:
        return self.rc != 0

    def report(self) -> str:
        status = "did not finish in time" if self.rc is None else f"exit code {self.rc}"
        lines = [f"{self.command.where}: {status}", *("  $ " + s for s in self.command.text.split("\n"))]
        lines += [f"  ran as: {shlex.join(a)}" for a in self.argv]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            tail = text.strip().split("\n")[-15:]
            if text.strip():
                lines += [f"  {name}:", *("    " + t for t in tail)]
        return "\n".join(lines)


@dataclass
class DocRun:
    doc: str
    workspace: Path
    results: list[Result]
    skipped: list[Command]
    leftovers: list[str]  # files outside runs/ and .venv/ that the commands made or changed
    serve_logs: str = ""

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.failed]

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def report(self) -> str:
        parts = [r.report() for r in self.failures]
        if self.failures and self.serve_logs.strip():
            parts.append("servers' log (tail):\n" + self.serve_logs[-3000:])
        return "\n\n".join(parts)


def tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout.decode(
        "utf-8"
    )
    return [p for p in out.split("\0") if p]


def make_workspace(root: Path, repo: Path, data: Path) -> Path:
    """``root/repo``: the repository's tracked files; ``root/shared/data``: a link to the datasets."""
    work = root / "repo"
    for rel in tracked_files(repo):
        source = repo / rel
        if source.is_file():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (root / "shared").mkdir(exist_ok=True)
    (root / "shared" / "data").symlink_to(data.resolve(), target_is_directory=True)
    return work


def make_venv(work: Path, server: Server, harness: Path) -> None:
    """``work/.venv``: the real environment's entries, but rnnkit (the server's shim) and torchrun."""
    real = Path(sys.prefix)
    if real == Path(sys.base_prefix):
        raise RuntimeError("the docs test runs from the project's virtual environment (.venv/bin/pytest)")
    venv = work / ".venv"
    venv.mkdir()
    for entry in real.iterdir():
        if entry.name != "bin":
            (venv / entry.name).symlink_to(entry)
    bins = venv / "bin"
    bins.mkdir()
    for entry in (real / "bin").iterdir():
        if entry.name not in ("rnnkit", "torchrun"):
            (bins / entry.name).symlink_to(entry)
    python = str(real / "bin" / "python")
    _script(bins / "rnnkit", CLIENT.format(python=python, socket=server.socket, kind="rnnkit"))
    _script(harness / "docs-python", CLIENT.format(python=python, socket=server.socket, kind="python"))
    tests = str(Path(__file__).resolve().parent)
    _script(
        bins / "torchrun", TORCHRUN.format(python=python, tests=tests, real=str(real / "bin" / "torchrun"))
    )


def _script(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _plain_path(path: str) -> str:
    """PATH without virtual environments or folders that hold rnnkit or torchrun."""
    kept = []
    for entry in path.split(os.pathsep):
        d = Path(entry)
        if not entry or (d.parent / "pyvenv.cfg").exists() or (d / "activate").exists():
            continue
        if (d / "rnnkit").exists() or (d / "torchrun").exists():
            continue
        kept.append(entry)
    return os.pathsep.join(kept)


def _snapshot(work: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(work):
        rel = Path(dirpath).relative_to(work)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in ("runs", ".venv")]
        for name in filenames:
            stat = (Path(dirpath) / name).lstat()
            found[str(rel / name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _script_for(commands: list[Command], harness: Path) -> str:
    """One bash script: each command in braces, its output in files, its start and end in a status file."""
    out = [
        'exec 3>>"$RNNKIT_DOCS_HARNESS/status"',
        "curl() {",
        "  local args=() a p",
        '  for a in "$@"; do',
        "    for p in ${RNNKIT_DOCS_PORTS//,/ }; do",
        "      a=${a//localhost:${p%%:*}/localhost:${p#*:}}; a=${a//127.0.0.1:${p%%:*}/127.0.0.1:${p#*:}}",
        "    done",
        '    args+=("$a")',
        "  done",
        '  command curl --fail-with-body "${args[@]}"',
        "}",
    ]
    for index, command in enumerate(commands):
        log = f'"$RNNKIT_DOCS_HARNESS/{index}"'
        out += [
            f"# {command.where}",
            f"export RNNKIT_DOCS_COMMAND={index}",
            f'echo "start {index} $EPOCHREALTIME" >&3',
            "{",
        ]
        if command.kind == "python":
            delimiter = "__RNNKIT_DOCS_PYTHON__"
            if delimiter in command.text:
                raise ValueError(f"{command.where}: the Python block holds {delimiter}")
            name = shlex.quote(command.doc)
            out += [
                f"\"$RNNKIT_DOCS_HARNESS/docs-python\" {name} {command.line} <<'{delimiter}'",
                command.text,
                delimiter,
            ]
        else:
            out.append(command.text)
        out += [f"}} >{log}.out 2>{log}.err </dev/null", f'echo "end {index} $? $EPOCHREALTIME" >&3']
    return "\n".join(out) + "\n"


def run_doc(
    doc: str,
    path: Path,
    root: Path,
    server: Server,
    *,
    data: Path,
    repo: Path = REPO,
    runs_from: list[Path] = (),
    timeout: float = 900,
) -> DocRun:
    """Run every command of the Markdown file ``path`` (reported as ``doc``) in a workspace under ``root``."""
    commands = collect(path, doc)
    runnable = [c for c in commands if c.skip is None]
    skipped = [c for c in commands if c.skip is not None]
    root.mkdir(parents=True, exist_ok=True)
    work = make_workspace(root, repo, data)
    harness = root / "harness"
    harness.mkdir()
    make_venv(work, server, harness)
    for runs in runs_from:
        for run in sorted(runs.iterdir()) if runs.is_dir() else []:
            target = work / "runs" / run.name
            if not target.exists():
                shutil.copytree(run, target, symlinks=True)
    before = _snapshot(work)
    ports = dict(zip(DOC_PORTS, _free_ports(len(DOC_PORTS)), strict=True))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = _plain_path(env.get("PATH", ""))
    if doc != "README.md":
        env["PATH"] = str(work / ".venv" / "bin") + os.pathsep + env["PATH"]
    env.update(
        RNNKIT_DOCS_HARNESS=str(harness),
        RNNKIT_DOCS_LOGS=str(harness),
        RNNKIT_DOCS_ARGV_LOG=str(harness / "argv.jsonl"),
        RNNKIT_DOCS_PORTS=",".join(f"{a}:{b}" for a, b in ports.items()),
        RNNKIT_DOCS_BUDGET=str(budget_from(os.environ)),
    )
    script = harness / "run.sh"
    script.write_text(_script_for(runnable, harness), encoding="utf-8")
    timed_out = False
    try:
        with subprocess.Popen(
            ["bash", "--noprofile", "--norc", str(script)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as shell:
            try:
                shell.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(shell.pid, signal.SIGKILL)
                shell.wait()
    finally:
        server.cleanup(harness)
    results = _results(runnable, harness, timed_out)
    after = _snapshot(work)
    leftovers = sorted(p for p, s in after.items() if before.get(p) != s)
    serve_logs = "".join(p.read_text(errors="replace") for p in sorted(harness.glob("serve-*.log")))
    return DocRun(doc, work, results, skipped, leftovers, serve_logs)


def _results(commands: list[Command], harness: Path, timed_out: bool) -> list[Result]:
    starts, ends = {}, {}
    status = harness / "status"
    for line in status.read_text().split("\n") if status.exists() else []:
        parts = line.split()
        if parts and parts[0] == "start":
            starts[int(parts[1])] = float(parts[2])
        elif parts and parts[0] == "end":
            ends[int(parts[1])] = (int(parts[2]), float(parts[3]))
    argv: dict[int, list[list[str]]] = {}
    for entry in _json_lines(harness / "argv.jsonl"):
        argv.setdefault(int(entry["command"]), []).append(entry["argv"])
    cpu: dict[int, float] = {}
    for entry in _json_lines(harness / "cpu.jsonl"):
        cpu[int(entry["command"])] = cpu.get(int(entry["command"]), 0.0) + entry["cpu"]
    results = []
    for index, command in enumerate(commands):
        if index not in starts:
            if timed_out:
                results.append(Result(command, None, 0.0, "", "not reached: the file ran out of time"))
            continue
        rc, end = ends.get(index, (None, time.time()))
        out, err = _read(harness / f"{index}.out"), _read(harness / f"{index}.err")
        results.append(
            Result(command, rc, end - starts[index], out, err, argv.get(index, []), cpu.get(index))
        )
    return results


def _json_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


class Pages:
    """Runs pages on ``jobs`` threads (each command on one CPU thread), a page after the pages it builds on
    (:data:`PREREQUISITES`), each in a workspace under ``root``; :meth:`result` waits for one."""

    def __init__(self, server: Server, root: Path, data: Path, docs: list[str], jobs: int = 2) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.server, self.root, self.data = server, root, data
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="docs")
        self.futures: dict = {}
        for doc in docs:
            self._submit(doc)

    def _submit(self, doc: str):
        if doc not in self.futures:
            needs = [self._submit(p) for p in PREREQUISITES.get(doc, ())]  # queued first, so started first
            self.futures[doc] = self.pool.submit(self._run, doc, needs)
        return self.futures[doc]

    def _run(self, doc: str, needs: list) -> DocRun:
        runs = [future.result().workspace / "runs" for future in needs]
        root = self.root / re.sub(r"\W", "_", doc)
        return run_doc(doc, REPO / doc, root, self.server, data=self.data, runs_from=runs)

    def result(self, doc: str) -> DocRun:
        return self._submit(doc).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve_forever(sys.argv[2])
