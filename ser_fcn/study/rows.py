"""What a table is made of: its rows (a system, its experiment file, the paper's figures), what
happened to each (an aggregate or why there is none) and the paired tests against the
reference row. Shared by tables.py and corpus_tables.py."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    system: str
    experiment: str | None  # experiments/<name>.yaml; None: a published figure only
    wa: float | None  # the paper's figures, %
    ua: float | None


@dataclass
class Outcome:
    """What happened to one row: its aggregate, or why there is none; the initialisation used."""

    row: Row
    agg: dict | None = None
    note: str | None = None  # e.g. the "not run" reason
    init: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class PairedTests:
    """Each row's paired test against the reference row (by system name), and how to name it."""

    tests: dict[str, dict] = field(default_factory=dict)
    reference_system: str | None = None  # the row of the table that is the reference (None: none or outside)
    reference_label: str = ""  # the reference as the footnotes name it
    method: list[str] = field(default_factory=list)  # the notes that define interval and test
