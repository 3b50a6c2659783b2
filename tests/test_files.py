"""``rnnkit.data.files``: reading the small text files and the lines that ``predict`` commands take."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rnnkit.data.files import read_lines
from rnnkit.errors import DataError


def test_read_lines_strips_skips_blank_lines_and_keeps_file_order(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\ufeff  first \n\n second\r\n", encoding="utf-8")
    b.write_text("third\n   \n", encoding="utf-8")
    assert read_lines([a, b]) == ["first", "second", "third"]


def test_read_lines_reads_standard_input_for_dash_or_no_files(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(" one \n\ntwo\n"))
    assert read_lines(None) == ["one", "two"]
    monkeypatch.setattr("sys.stdin", io.StringIO("three\n"))
    assert read_lines([Path("-")]) == ["three"]


def test_read_lines_refuses_empty_input_and_names_a_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(" \n\n"))
    with pytest.raises(DataError, match="no text given"):
        read_lines([])
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        read_lines([tmp_path / "nope.txt"])
