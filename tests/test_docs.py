"""The docs cannot rot: every command that README.md and docs/*.md show is checked.

Each `python -m ser_fcn <command> ...` (or `ser-fcn ...`) in a fenced code block or an inline
code span must name a command of `ser_fcn.cli.COMMANDS`, and its parser must accept its words:
they are parsed, never run (the parser's `parse_args` stops the command right after parsing;
for fit / validate / test, LightingCLI's `parse_arguments`). Words that `cv` and `table1/2`
pass on to every fold's `fit` are checked against fit's parser. Each `make <target>` must be
a Makefile target and each `VAR=value` a Makefile variable; each relative link must point to a
file that exists (and to a heading of it, for `#anchor` links).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from ser_fcn import cli
from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(```|~~~)\s*(\S*)\s*$")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_PYTHON_M = re.compile(r"^(?:\S*/)?python[0-9.]* -m ser_fcn\b")
_CODE_LANGUAGES = {"python", "py", "json", "yaml", "yml", "text", "csv"}  # blocks that hold no shell commands


@dataclass(frozen=True)
class Shown:
    """One command as a page shows it."""

    where: str  # file:line
    text: str


def _joined_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, command) with backslash continuations joined."""
    out, buf, start = [], "", 0
    for no, line in lines:
        if not buf:
            start = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _is_command(text: str) -> bool:
    words = text.split()
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value make ...
        words = words[1:]
    rest = " ".join(words)
    return bool(_PYTHON_M.match(rest) or rest.startswith("ser-fcn") or re.match(r"make(\s|$)", rest))


def commands_in(text: str, name: str) -> list[Shown]:
    """Every command a markdown text shows: lines of its shell code blocks, and inline spans."""
    shown, block, lang, in_block = [], [], "", False
    for no, line in enumerate(text.splitlines(), start=1):
        fence = _FENCE.match(line.strip())
        if fence and not in_block:
            in_block, lang, block = True, fence.group(2).lower(), []
            continue
        if fence and in_block:
            in_block = False
            if lang not in _CODE_LANGUAGES:
                for start, cmd in _joined_lines(block):
                    cmd = re.sub(r"^\s*\$\s+", "", cmd).strip()
                    if _is_command(cmd):
                        shown.append(Shown(f"{name}:{start}", cmd))
            continue
        if in_block:
            block.append((no, line))
        elif line.startswith("    ") and _is_command(line.strip()):  # an indented code block
            shown.append(Shown(f"{name}:{no}", line.strip()))
        else:
            for m in _INLINE.finditer(line):
                if _is_command(m.group(1)):
                    shown.append(Shown(f"{name}:{no}", m.group(1)))
    return shown


class _Parsed(Exception):
    """Raised by a parser right after it accepted the words: the command does not run."""

    def __init__(self, namespace=None, extra=()):
        self.namespace, self.extra = namespace, list(extra)


_SERCLI_PARSER: dict = {}  # SERCLI's parser, built once: building it is most of a fit command's check


@contextlib.contextmanager
def _parse_only():
    """argparse parsers and SERCLI stop right after parsing (jsonargparse's parsers untouched)."""
    original_args, original_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    original_cli, original_setup = cli.SERCLI.parse_arguments, cli.SERCLI.setup_parser

    def plain(parser) -> bool:
        return type(parser).__module__.startswith("argparse")

    def parse_args(self, args=None, namespace=None):
        if not plain(self):
            return original_args(self, args, namespace)
        ns, extra = original_known(self, args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        raise _Parsed(ns)

    def parse_known_args(self, args=None, namespace=None):
        if not plain(self):
            return original_known(self, args, namespace)
        ns, extra = original_known(self, args, namespace)
        raise _Parsed(ns, extra)

    def parse_arguments(self, parser, args):
        original_cli(self, parser, args)
        raise _Parsed()

    def setup_parser(self, *args, **kwargs):
        if not _SERCLI_PARSER:
            before = set(vars(self))
            original_setup(self, *args, **kwargs)
            _SERCLI_PARSER.update({k: v for k, v in vars(self).items() if k not in before or k == "parser"})
        vars(self).update(_SERCLI_PARSER)

    argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = parse_args, parse_known_args
    cli.SERCLI.parse_arguments, cli.SERCLI.setup_parser = parse_arguments, setup_parser
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = original_args, original_known
        cli.SERCLI.parse_arguments, cli.SERCLI.setup_parser = original_cli, original_setup


FORWARDS_TO_FIT = ("cv", "table1", "table2")  # their unknown words are overrides of every fold's fit


def _parse(words: list[str]) -> str | None:
    """None if the command's parser accepts `words` (command name first), else what it said."""
    err = io.StringIO()
    try:
        with _parse_only(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            cli.COMMANDS[words[0]].run(words[1:])
    except _Parsed as parsed:
        if parsed.extra and words[0] in FORWARDS_TO_FIT:
            configs = [w for c in (getattr(parsed.namespace, "config", None) or []) for w in ("--config", c)]
            problem = _parse(["fit", *configs, *parsed.extra])
            return f"words passed on to fit: {problem}" if problem else None
        return None
    except SystemExit as e:
        if e.code in (0, None):  # --help, --print_config
            return None
        return (err.getvalue().strip().splitlines() or [str(e.code)])[-1]
    return "ran without parsing its arguments"


def _makefile() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text()
    targets = {t for line in re.findall(r"^([A-Za-z0-9_.\- ]+):(?!=)", text, re.M) for t in line.split()}
    variables = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*[?:+]?=", text, re.M))
    return targets, variables


def check_command(shown: Shown) -> str | None:
    """None if `shown` names real commands / targets with accepted options, else the problem."""
    try:
        words = shlex.split(shown.text, comments=True)
    except ValueError as e:
        return f"not a shell command ({e})"
    assignments = []
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        assignments.append(words.pop(0))
    if words and words[0] == "make":
        targets, variables = _makefile()
        for w in words[1:]:
            if "=" in w:
                assignments.append(w)
            elif w not in targets:
                return f"make {w}: no such target in the Makefile"
        unknown = [a.split("=", 1)[0] for a in assignments if a.split("=", 1)[0] not in variables]
        return f"{', '.join(unknown)}: not a Makefile variable" if unknown else None
    if words and words[0] == "ser-fcn":
        words = words[1:]
    else:
        words = words[3:]  # python -m ser_fcn
    words = [w for w in words if w != cli.DEBUG_FLAG]
    if not words or words[0] in ("-h", "--help"):
        return None
    if words[0] not in cli.COMMANDS:
        return f"{words[0]}: not a command of python -m ser_fcn (COMMANDS in ser_fcn/cli.py)"
    problem = _parse(words)
    return f"{words[0]}: {problem}" if problem else None


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^(```|~~~).*?^\1", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.*)$", text, re.M)}


def check_links(text: str, page: Path) -> list[str]:
    """Each relative link of `text` (a page at `page`) that points nowhere."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    bad = []
    for m in _LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{page.name}: link {target}: {file.relative_to(REPO) if file.is_relative_to(REPO) else file} does not exist")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            bad.append(f"{page.name}: link {target}: no heading #{anchor} in {file.name}")
    return bad


def _all_shown() -> list[Shown]:
    return [s for page in DOCS for s in commands_in(page.read_text(), str(page.relative_to(REPO)))]


def test_the_docs_show_commands_and_are_found():
    shown = _all_shown()
    pages = {s.where.split(":")[0] for s in shown}
    assert "README.md" in pages and "docs/inference.md" in pages and "docs/tables.md" in pages
    assert any(s.text.startswith("make demo") for s in shown)
    assert any(s.text.startswith("python -m ser_fcn fit") for s in shown)
    assert len(shown) > 30


def test_every_command_the_docs_show_is_accepted(monkeypatch):
    monkeypatch.chdir(REPO)  # the docs' relative paths (experiments/...) are from the repository root
    problems = [f"{s.where}: `{s.text}`: {p}" for s in _all_shown() if (p := check_command(s))]
    assert not problems, "\n".join(problems)


def test_every_relative_link_of_the_docs_exists():
    problems = [p for page in DOCS for p in check_links(page.read_text(), page)]
    assert not problems, "\n".join(problems)


BROKEN = """
Some text with `python -m ser_fcn predict --ckpt c.ckpt --no_such_flag a.wav` inline.

```bash
python -m ser_fcn evaluate --ckpt c.ckpt --manifest m.csv   # fine
python -m ser_fcn tabel1 --seeds 3
python -m ser_fcn fit --config experiments/demo.yaml --trainer.max_epocks 6
python -m ser_fcn cv --config experiments/demo.yaml --data.no_such_key 1
make table1 \\
    PROFILE=cpu
make tabel2
NO_SUCH_VAR=1 make table2
```

[a page](docs/nowhere.md), [a heading](docs/corpora.md#no-such-heading), [fine](docs/corpora.md#emobox)
"""


def test_the_check_fails_on_broken_commands_and_links(monkeypatch):
    monkeypatch.chdir(REPO)
    verdicts = {" ".join(s.text.split("#")[0].split()): check_command(s) for s in commands_in(BROKEN, "made-up.md")}
    assert verdicts.pop("python -m ser_fcn evaluate --ckpt c.ckpt --manifest m.csv") is None
    assert verdicts.pop("make table1 PROFILE=cpu") is None  # a continued line, joined
    assert "no_such_flag" in verdicts.pop("python -m ser_fcn predict --ckpt c.ckpt --no_such_flag a.wav")
    assert "not a command" in verdicts.pop("python -m ser_fcn tabel1 --seeds 3")
    assert "max_epocks" in verdicts.pop("python -m ser_fcn fit --config experiments/demo.yaml --trainer.max_epocks 6")
    cv = verdicts.pop("python -m ser_fcn cv --config experiments/demo.yaml --data.no_such_key 1")
    assert "passed on to fit" in cv and "no_such_key" in cv
    assert "no such target" in verdicts.pop("make tabel2")
    assert "NO_SUCH_VAR" in verdicts.pop("NO_SUCH_VAR=1 make table2")
    assert not verdicts
    bad = check_links(BROKEN, REPO / "made-up.md")
    assert len(bad) == 2 and "nowhere.md does not exist" in bad[0] and "no heading #no-such-heading" in bad[1]


@pytest.mark.parametrize("heading, anchor", [
    ("Export (ONNX / TorchScript)", "export-onnx--torchscript"),
    ("The attention study: the paper's premise, planted (`make attention-check`)",
     "the-attention-study-the-papers-premise-planted-make-attention-check"),
])
def test_anchors_are_githubs(heading, anchor):
    assert slug(heading) == anchor
