"""`python -m ser_fcn --help` lists every command with one line, and every command's own --help works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ser_fcn import cli
from tests.helpers import REPO


def test_help_lists_every_command_with_its_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert set(cli.SERCLI.subcommands()) <= set(cli.COMMANDS)  # fit, validate, test
    for name, command in cli.COMMANDS.items():
        assert command.summary and "\n" not in command.summary, name
        assert any(line.split(None, 1) == [name, command.summary] for line in out.splitlines()), name


def test_no_command_prints_the_list_and_fails(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    assert "table1" in capsys.readouterr().err


def test_an_unknown_command_is_one_error_line_pointing_at_help():
    with pytest.raises(SystemExit) as e:
        cli.main(["tabel1", "--seeds", "3"])
    assert str(e.value).startswith("error: unknown command 'tabel1'") and "--help" in str(e.value)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    usage = out[out.index("usage:"):].split("\n", 1)[0]
    assert name in usage and "--" in out  # its usage line, and its options


def test_the_ser_fcn_script_lists_every_command():
    script = Path(sys.executable).with_name("ser-fcn")
    if not script.exists():
        pytest.skip(f"{script.name} not installed beside {sys.executable}")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ser-fcn <command>")
    for name in cli.COMMANDS:
        assert f"\n  {name} " in done.stdout, name
