"""The corpora `data.corpus` (and `manifest --corpus`) can name, and the `manifest` command.

    python -m ser_fcn manifest --corpus iemocap|emodb|ravdess --root DIR --out x.csv [--classes ...]

Each corpus: a reader (folder -> manifest rows and a `ReadSummary`), its classes (the default
of `data.classes`) and whether its protocol is leave one speaker out (every fold with the
speaker swap: `cv`'s default fold count is then twice the session count).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import emodb, iemocap, ravdess
from .manifest import ReadSummary, Utterance, count_table, write_manifest
from ..utils.errors import ConfigError

DEFAULT = "iemocap"


@dataclass(frozen=True)
class Corpus:
    name: str  # the value of data.corpus
    title: str  # as logs, results.json and tables name it
    classes: tuple[str, ...]  # the default of data.classes
    read: Callable[..., tuple[list[Utterance], ReadSummary]]  # (root, classes, progress=…)
    speaker_folds: bool  # leave one speaker out: its folds are every session with the swap


def _read_iemocap(root, classes, progress=True, merge_exc=False, include_scripted=False):
    return iemocap.read_iemocap(root, classes, merge_exc, include_scripted, progress=progress)


CORPORA = {
    "iemocap": Corpus("iemocap", "IEMOCAP", iemocap.PAPER_CLASSES, _read_iemocap, speaker_folds=False),
    "emodb": Corpus("emodb", emodb.TITLE, emodb.CLASSES, emodb.read_emodb, speaker_folds=True),
    "ravdess": Corpus("ravdess", ravdess.TITLE, ravdess.CLASSES, ravdess.read_ravdess, speaker_folds=True),
}
IEMOCAP_ONLY = ("merge_exc", "include_scripted")


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise ConfigError(f"data.corpus {name!r}: not a corpus this package reads (known: {', '.join(CORPORA)})")
    return CORPORA[name]


def read_corpus(name: str, root: str | Path, classes=None, progress: bool = True,
                **options) -> tuple[list[Utterance], ReadSummary]:
    """Rows and summary of corpus `name` at `root`. `options`: IEMOCAP's merge_exc / include_scripted
    (an error for the other corpora when set, rather than ignored)."""
    corpus = get_corpus(name)
    given = [k for k, v in options.items() if v]
    if name != "iemocap" and given:
        raise ConfigError(f"{', '.join(given)} apply to IEMOCAP only, not to data.corpus {name}")
    if name != "iemocap":
        options = {}
    return corpus.read(root, list(classes) if classes else list(corpus.classes), progress=progress, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_fcn manifest",
                                     description="a corpus folder -> CSV manifest, with its summary and counts")
    parser.add_argument("--corpus", default=DEFAULT, choices=list(CORPORA), help=f"default {DEFAULT}")
    parser.add_argument("--root", required=True,
                        help="the corpus folder: IEMOCAP_full_release; EmoDB's folder (or its wav/); RAVDESS's (Actor_* below it)")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--classes", nargs="+", help="default: the paper's four for IEMOCAP, every class of the others")
    parser.add_argument("--merge_exc", action="store_true", help="IEMOCAP: count exc as hap")
    parser.add_argument("--include_scripted", action="store_true", help="IEMOCAP: keep scripted dialogs too")
    args = parser.parse_args(argv)
    classes = args.classes or list(get_corpus(args.corpus).classes)
    try:
        rows, summary = read_corpus(args.corpus, args.root, classes, merge_exc=args.merge_exc,
                                    include_scripted=args.include_scripted)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    if not rows:
        sys.exit(f"error: {args.root}: no utterances of classes {classes}\n{summary.report()}")
    write_manifest(rows, args.out)
    print(summary.report())
    print(count_table(rows, classes))
    print(f"wrote {len(rows)} utterances to {args.out}")
