"""The command line, through main(argv) and once as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import nnscratch as nn
from nnscratch.cli import main


def test_demo_reaches_95_percent_and_saves(tmp_path, capsys):
    out = tmp_path / "demo.safetensors"
    assert main(["demo", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", text).group(1))
    assert accuracy >= 95.0
    assert str(out) in text
    assert nn.load(out).n_params == 64 * 128 + 128 + 128 * 10 + 10


def test_bad_arguments_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "expected a positive integer" in err[-1]
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_subprocess_entry_point(tmp_path):
    out = tmp_path / "d.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "nnscratch", "demo", "--quiet", "--epochs", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Model saved to" in result.stdout
    assert out.is_file()
