"""The documentation is executed: every command of README.md and docs/*.md runs as written.

``tests/docs_runner.py`` collects the shell and Python blocks and runs them (its docstring says how:
the workspace, the budgets cut to a few steps, skip markers, background servers). Here: one test per
file, one skipped test per skipped command (with its reason), and the runner's own tests, a broken
command among them.
"""

from __future__ import annotations

import re
import shutil

import pytest

import docs_runner
from conftest import data_dir
from docs_runner import REPO, Command, collect, collect_blocks, commands_of, shrink, shrink_torchrun

DOCS = docs_runner.doc_files()
COLLECTED = {doc: collect(REPO / doc, doc) for doc in DOCS}
RUNNABLE = [doc for doc in DOCS if any(c.skip is None for c in COLLECTED[doc])]
SKIPPED = [c for doc in DOCS for c in COLLECTED[doc] if c.skip is not None]

# Files a page's commands may leave outside runs/, each with why (none today). The set must match
# exactly, so that a fixed page drops its entry.
ALLOWED_LEFTOVERS: dict[str, set[str]] = {}

JOBS = 2  # pages run at once; each command runs on one CPU thread

# A page whose command fails because of the code, not the page: strict, so that the fix shows.
EXPECTED_FAILURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def server():
    started = docs_runner.Server()
    yield started
    started.close()


@pytest.fixture(scope="module")
def pages(request, server, tmp_path_factory):
    """The pages this session's tests ask for, run two at a time from the start (and the pages they
    build on first)."""
    data = data_dir()
    if not data.is_dir():
        pytest.fail(f"the shared datasets are missing at {data}; set RNNKIT_DATA")
    selected = [
        item.callspec.params["doc"]
        for item in request.session.items
        if item.name.startswith("test_every_command_of_the_page_runs[")
    ]
    started = docs_runner.Pages(server, tmp_path_factory.mktemp("pages"), data, selected, jobs=JOBS)
    yield started
    started.close()


def _page(doc: str):
    reason = EXPECTED_FAILURES.get(doc)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(doc, marks=marks, id=doc)


@pytest.mark.parametrize("doc", [_page(doc) for doc in RUNNABLE])
def test_every_command_of_the_page_runs(doc, pages):
    page = pages.result(doc)
    runnable = [c for c in COLLECTED[doc] if c.skip is None]
    assert not page.failures, (
        f"{len(page.failures)} of the {len(runnable)} commands of {doc} failed "
        f"(workspace {page.workspace}):\n\n{page.report()}"
    )
    assert [r.command for r in page.results] == runnable, "not every command ran"
    allowed = ALLOWED_LEFTOVERS.get(doc, set())
    stray = sorted(set(page.leftovers) - allowed)
    assert not stray, f"{doc}: commands left files outside runs/ and .venv/ (write them under runs/): {stray}"
    assert allowed <= set(page.leftovers), f"{doc} no longer leaves {sorted(allowed - set(page.leftovers))}"


@pytest.mark.parametrize("command", SKIPPED, ids=[c.where for c in SKIPPED])
def test_skipped_command(command: Command):
    pytest.skip(f"{command.where}: {command.skip}: {command.text.splitlines()[0]}")


def test_the_readme_uses_only_what_it_sets_up():
    """README commands call the tools the set-up installs by their path (the run checks the rest)."""
    commands = [c for c in COLLECTED["README.md"] if c.kind == "shell" and c.skip is None]
    assert len(commands) >= 25
    for command in commands:
        for word in re.findall(r"(?:^|[|;&]\s*)(rnnkit|torchrun|python3?|pytest|ruff)\b", command.text):
            pytest.fail(f"{command.where}: {word} is on no PATH the README sets up; write .venv/bin/{word}")


# -------------------------------------------------------------------------------------------------
# the collector and runner themselves

SAMPLE = """# A page

<!-- docs-test: skip needs a GPU -->
```bash
rnnkit train x --device cuda
```

```bash
D=../shared/data/timeseries   # a variable, used later
rnnkit forecast train $D/airline-passengers.csv --column Passengers \\
    --window 12 --out runs/air          # continued
# a comment line

echo "hi" | rnnkit tag predict runs/cws
.venv/bin/python bench/tasks.py --minutes 20
```

```console
$ rnnkit sample runs/air
output that is not run
```

```text
rnnkit train this is a synopsis, not run
```

```
rnnkit plot runs/air
```

```
step 1 | val_loss 2.0
```

```python
import rnnkit
print(rnnkit.__name__)
```
"""


def test_blocks_commands_and_skips_are_collected():
    blocks = collect_blocks(SAMPLE, "page.md")
    assert [(b.line, b.kind) for b in blocks] == [
        (4, "shell"),
        (8, "shell"),
        (18, "console"),
        (27, "shell"),
        (35, "python"),
    ]
    assert blocks[0].skip == "needs a GPU" and blocks[1].skip is None
    commands = [c for b in blocks for c in commands_of(b)]
    assert [(c.line, c.text) for c in commands] == [
        (5, "rnnkit train x --device cuda"),
        (9, "D=../shared/data/timeseries   # a variable, used later"),
        (
            10,
            "rnnkit forecast train $D/airline-passengers.csv --column Passengers \\\n"
            "    --window 12 --out runs/air          # continued",
        ),
        (14, 'echo "hi" | rnnkit tag predict runs/cws'),
        (15, ".venv/bin/python bench/tasks.py --minutes 20"),
        (19, "rnnkit sample runs/air"),
        (28, "rnnkit plot runs/air"),
        (36, "import rnnkit\nprint(rnnkit.__name__)"),
    ]
    assert [c.skip is not None for c in commands] == [True, False, False, False, True, False, False, False]
    assert "bench/" in commands[4].skip and commands[0].skip == "needs a GPU"
    assert commands[-1].kind == "python" and commands[0].where == "page.md:5"


def test_a_block_marked_last_runs_after_the_page(tmp_path):
    """A page's opening Python example on a run trained further down runs once that run exists."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A task\n\n<!-- docs-test: last -->\n\n```python\nimport rnnkit\nrnnkit.load('runs/x')\n```\n\n"
        "```bash\nrnnkit tag train t.txt --out runs/x\necho done\n```\n\n"
        "<!-- docs-test: skip needs a GPU -->\n```bash\nrnnkit tag train t.txt --device cuda\n```\n",
        encoding="utf-8",
    )
    found = collect(page, "page.md")
    assert [(c.line, c.kind, c.last, c.skip is None) for c in found] == [
        (11, "shell", False, True),
        (12, "shell", False, True),
        (17, "shell", False, False),
        (6, "python", True, True),
    ]
    blocks = collect_blocks(page.read_text(encoding="utf-8"), "page.md")
    assert [b.last for b in blocks] == [True, False, False]


def test_every_task_page_opens_with_a_python_example():
    """Each task page's first code block is the Python example of its loaded model (run by its page)."""
    pages = {
        "docs/char-rnn.md": ".generate(", "docs/shakespeare.md": ".generate(", "docs/poems.md": ".generate(",
        "docs/lyrics.md": ".generate(", "docs/code.md": ".generate(", "docs/classify.md": ".classify(",
        "docs/tagging.md": ".tag_texts(", "docs/forecast.md": ".forecast(", "docs/speech.md": ".transcribe(",
        "docs/caption.md": ".caption(",
    }  # fmt: skip
    for doc, method in pages.items():
        first = collect_blocks((REPO / doc).read_text(encoding="utf-8"), doc)[0]
        assert first.kind == "python" and first.skip is None, f"{doc}: its first block is not Python"
        code = "\n".join(first.lines)
        assert "rnnkit.load(" in code and method in code and "print(" in code, doc
        assert len([line for line in first.lines if line.strip()]) <= 5, f"{doc}: more than five lines"


def test_budgets_are_cut_at_run_time():
    assert shrink(["train", "in.txt", "--preset", "shakespeare"], 2)[-2:] == ["--max-steps", "2"]
    assert shrink(["train", "--resume", "r", "--max-minutes", "30"], 2)[-2:] == ["--max-steps", "4"]
    for group in ("classify", "tag", "forecast", "speech", "caption"):
        assert shrink([group, "train", "data", "--max-minutes", "20"], 3)[-2:] == ["--max-steps", "3"]
    assert shrink(["caption", "make-shapes", "out", "--n", "5000"], 2)[2:] == ["out", "--n", "40"]
    for untouched in (["sample", "runs/x", "--length", "400"], ["classify", "eval", "runs/x", "f.tsv"]):
        assert shrink(untouched, 2) == untouched
    assert shrink(["train", "x"], 0) == ["train", "x"]  # RNNKIT_DOCS_BUDGET=0: as written
    args = ["--standalone", "--nproc-per-node", "2", "-m", "rnnkit", "train", "in.txt", "--out", "runs/ddp"]
    assert shrink_torchrun(args, 2) == [*args, "--max-steps", "2"]


def test_the_runner_runs_like_a_shell_and_reports_what_failed(server, tmp_path):
    """Variables carry across blocks, pipes and exit codes are bash's, Python blocks run in order, a
    failing command is named by file and line, and files left outside runs/ are reported."""
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nD=../shared/data/timeseries\n```\n\n"
        "```bash\ntest -f $D/airline-passengers.csv && mkdir -p runs && echo ok > runs/ok.txt\n"
        'echo "上海体育局召开会议" | .venv/bin/rnnkit tag predict runs/none\n'
        "echo stray > stray.txt\n```\n\n"
        "```python\nfrom pathlib import Path\nassert Path('runs/ok.txt').read_text() == 'ok\\n'\n"
        "raise SystemExit(Path('runs/missing').exists())\n```\n",
        encoding="utf-8",
    )
    result = docs_runner.run_doc("page.md", page, tmp_path / "ws", server, data=data_dir())
    assert [(r.command.line, r.rc) for r in result.results] == [(2, 0), (6, 0), (7, 4), (8, 0), (12, 0)]
    failure = result.failures[0]
    assert failure.command.where == "page.md:7" and "rnnkit: error:" in failure.stderr
    assert failure.report().startswith("page.md:7: exit code 4")
    assert result.leftovers == ["stray.txt"]


def test_only_the_pages_find_rnnkit_on_the_path(server, tmp_path):
    """The README must call .venv/bin/rnnkit (nothing has put it on the PATH); the pages of docs/ may
    write rnnkit, as after source .venv/bin/activate."""
    page = tmp_path / "page.md"
    page.write_text("```bash\nrnnkit --help\n.venv/bin/rnnkit --help\n```\n", encoding="utf-8")
    readme = docs_runner.run_doc("README.md", page, tmp_path / "readme", server, data=data_dir())
    assert [r.rc for r in readme.results] == [127, 0] and "not found" in readme.results[0].stderr
    other = docs_runner.run_doc("docs/page.md", page, tmp_path / "docs", server, data=data_dir())
    assert [r.rc for r in other.results] == [0, 0]


def test_a_broken_command_in_a_copy_of_a_page_fails_it(server, tmp_path):
    """A misspelt flag in a scratch copy of docs/forecast.md: the runner names the file, the line and
    the error."""
    text = (REPO / "docs/forecast.md").read_text(encoding="utf-8")
    flag = "--window 12 --out runs/air"
    assert text.count(flag) == 1
    line = text[: text.index(flag)].count("\n") + 1
    copy = tmp_path / "forecast.md"
    copy.write_text(text.replace(flag, flag.replace("--window", "--windw")), encoding="utf-8")
    result = docs_runner.run_doc("docs/forecast.md", copy, tmp_path / "ws", server, data=data_dir())
    first = result.failures[0]
    assert first.command.where == f"docs/forecast.md:{line}"
    assert first.rc == 2 and "--windw" in first.stderr
    report = result.report()
    assert f"docs/forecast.md:{line}: exit code 2" in report and "--windw" in report
    # the commands that needed its run folder fail after it (the page's opening example, run last,
    # among them); the others still ran
    assert all(r.command.line > line or r.command.last for r in result.failures[1:])
    assert result.failures[-1].command.last and result.failures[-1].command.kind == "python"
    assert len(result.results) == len([c for c in collect(copy) if c.skip is None])


def test_the_workspace_is_a_fresh_clone_beside_the_shared_data(tmp_path):
    work = docs_runner.make_workspace(tmp_path, REPO, data_dir())
    assert (work / "README.md").read_bytes() == (REPO / "README.md").read_bytes()
    assert (work / "../shared/data").resolve() == data_dir().resolve()
    assert not (work / ".venv").exists() and not (work / "runs").exists()
    shutil.rmtree(work)
