"""``rnnkit.serve.report``: the HTML page of ``rnnkit inspect``, and reading its text from a file."""

from __future__ import annotations

import json

import pytest

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import DataError
from rnnkit.serve.report import inspect_file
from rnnkit.tasks.lm import LoadedLM, get_preset
from rnnkit.tasks.lm.model import build_model


@pytest.fixture(scope="module")
def loaded():
    config = get_preset("tiny")
    vocab = Vocabulary.from_text("abc .\n")
    return LoadedLM(build_model(config, len(vocab)).eval(), vocab, config, "best")


def test_inspect_file_reads_at_most_max_chars_and_writes_the_page(loaded, tmp_path):
    source = tmp_path / "t.txt"
    source.write_text("abc cab. " * 50, encoding="utf-8")
    out = tmp_path / "deep" / "report.html"
    data = inspect_file(loaded, source, out, name="toy", max_chars=40, top=2)
    assert len(data["tokens"]) == 40 and data["model"] == "toy"
    page = out.read_text(encoding="utf-8")
    embedded = page.split('type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded.replace("<\\/", "</"))["tokens"] == data["tokens"]


def test_inspect_file_refuses_a_text_under_two_characters(loaded, tmp_path):
    source = tmp_path / "one.txt"
    source.write_text("abcdef", encoding="utf-8")
    with pytest.raises(DataError, match=r"one\.txt: needs at least two characters"):
        inspect_file(loaded, source, tmp_path / "r.html", name="toy", max_chars=1)
    assert not (tmp_path / "r.html").exists()
