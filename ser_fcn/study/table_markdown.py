"""The markdown of a table (tables.py): its rows, paired tests, per-class recall, confusion
matrices, and the notes that say what produced it.

Rendered from aggregates only (cv_aggregate.aggregate); nothing here trains or reads a run folder.
A results file is meant to be committed, so it never holds a path of the machine that made
it: corpus folders show by name, and the "Made by" command's folder values as `<DIR>`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from ..corpora.readers import DEFAULT as DEFAULT_CORPUS, get_corpus
from .comparison import compare_rows, confusion_lines, footnote, mean_ci_cell, method_lines, recall_table, significance_mark
from .corpus_tables import CORPUS_TABLES, CorpusTable, ordering_lines
from .cv_plan import SEEDS
from .references import SAME_PROTOCOL, render_references
from .rows import Outcome, PairedTests

PAPER = "Zhang et al. 2018"
# a corpus table's last section: results/<corpus>_ablation.md, appended whole (`markdown_table`)
ABLATION_HEADING = "## Recipe ablation (validation UA)"
TITLES = {
    1: "Table I: AlexNet and VGGNet-16, random initialisation or fine-tuning (3 s segments)",
    2: "Table II: FCN + attention against the other systems",
}


def _cell(agg: dict, key: str, expected: int) -> str:
    text = mean_ci_cell(agg[key])
    return text if agg["n_runs"] >= expected else f"{text} (only {agg['n_runs']}/{expected} runs)"


def _flatten(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={json.dumps(v) if not isinstance(v, str) else v}")
    return out


def describe_profile(name: str, path: Path | None) -> str:
    """The profile's own header comment and the settings it overrides."""
    if path is None or not path.is_file():
        return f"**{name}**"
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").strip())
    settings = ", ".join(f"`{s}`" for s in _flatten(yaml.safe_load(text) or {}))
    return f"**{name}** (`{path}`): {' '.join(header)} Settings: {settings or 'none (base.yaml as is)'}."


def _utterances_per_fold(agg: dict) -> dict:
    """Test utterances of each (fold, swap): the seeds of a fold test the same ones."""
    return {(f.get("fold"), bool(f.get("swap_speakers"))): f.get("n_utterances") or 0 for f in agg["folds"]}


def _corpus_lines(aggs: list[dict]) -> list[str]:
    data = next((a["resolved_config"].get("data") or {} for a in aggs if a.get("resolved_config")), {})
    corpora = sorted({c for a in aggs for c in a.get("corpus") or []})
    if not aggs:
        return ["- Corpus: none (no row was run)."]
    named = data.get("corpus") or DEFAULT_CORPUS

    def folder(path) -> str:  # its name only: results never hold a path of the machine that made them
        return Path(str(path)).name or str(path)

    if data.get("emobox"):
        corpus = f"EmoBox's fold files `{folder(data['emobox'])}` (audio under `{folder(data.get('audio_root'))}`)"
    elif named != DEFAULT_CORPUS:
        corpus = f"{get_corpus(named).title} (folder `{folder(data.get('root'))}`)"
    elif data.get("root"):
        corpus = f"IEMOCAP (folder `{folder(data['root'])}`)"
    elif data.get("manifest"):
        corpus = f"the manifest `{folder(data['manifest'])}`"
    else:
        corpus = (f"the SYNTHETIC demo corpus ({data.get('demo_utterances_per_speaker')} utterances per speaker, "
                  "speech-like noise in IEMOCAP's layout), NOT IEMOCAP: these figures say nothing about the paper's")
    n_test = {a["experiment"]: sum(_utterances_per_fold(a).values()) for a in aggs}
    classes = data.get("classes") or (aggs[0].get("classes") or [])
    merge = sorted({m for a in aggs for m in a.get("merge_exc") or []})
    if data.get("emobox"):
        labels = f"as the fold files list them, through EmoBox's label map; classes {', '.join(classes)}."
    elif named != DEFAULT_CORPUS:
        labels = f"from the file names (ser_fcn/corpora/{named}.py); classes {', '.join(classes)}."
    else:
        subset = "improvised and scripted" if data.get("include_scripted") else "improvised dialogs only"
        exc = " (exc counted as hap)" if True in merge else " (exc left out)"
        labels = f"{subset}; classes {', '.join(classes)}; merge_exc {', '.join(str(m).lower() for m in merge)}{exc}."
    return [
        f"- Corpus: {corpus} (results.json says: {', '.join(corpora)}); "
        f"{max(n_test.values())} test utterances over the folds.",
        f"- Labels: {labels}",
    ]


def protocol_line(protocol: str, protocol_file: Path | None, emobox: str | None = None) -> str:
    """Which protocol made the 'here' columns (the 'paper' columns are always the paper's)."""
    if emobox:
        return f"- Protocol of the 'here' columns: EmoBox's own folds of `{emobox}` (its label map; one fold per fold_k folder)."
    if protocol_file is None:
        return "- Protocol of the 'here' columns: the paper's (IEMOCAP improvised, neu/hap/sad/ang, exc left out, 5 folds)."
    return f"- Protocol of the 'here' columns: {describe_profile(protocol, protocol_file)}"


def _table_rows(outcomes: list[Outcome], expected: int, paired: PairedTests) -> tuple[list[str], list[str]]:
    """The markdown rows of a table and the footnotes of their paired tests."""
    lines, notes = [], []
    for o in outcomes:
        r, note = o.row, o.extra.get("paper_note", "")
        wa_p = f"{r.wa:.1f}{note}" if r.wa is not None else "—"
        ua_p = o.extra.get("ua_published") or (f"{r.ua:.1f}{note}" if r.ua is not None else "—")
        if o.agg and o.agg.get("n_runs"):
            wa_h, ua_h = _cell(o.agg, "wa", expected), _cell(o.agg, "ua", expected)
        else:
            wa_h, ua_h = o.note or "no finished run", "—"
        if r.system == paired.reference_system:
            ua_h += " (reference of the tests)"
        elif r.system in paired.tests:
            label = f"p{len(notes) + 1}"
            ua_h += f"{significance_mark(paired.tests[r.system])} [^{label}]"
            notes.append(footnote(label, paired.reference_label, paired.tests[r.system]))
        lines.append(f"| {r.system} | {wa_p} | {wa_h} | {ua_p} | {ua_h} |")
    return lines, notes


def paired_tests(outcomes: list[Outcome], reference: Outcome | None, why: str) -> PairedTests:
    """Each row with runs tested against `reference` (see `choose_reference`) on UA."""
    if reference is None:
        return PairedTests(method=method_lines(None, why, 0))
    rows = [(o.row.system, o.agg) for o in outcomes if o.agg and o.agg.get("n_runs")]
    inside = any(o is reference for o in outcomes)
    label = reference.row.system + ("" if inside else f" ({reference.row.experiment}, Table II)")
    tests = compare_rows(rows, (reference.row.system, reference.agg) if inside else ("", reference.agg))
    most = max((t["n_pairs"] for t in tests.values()), default=0)
    return PairedTests(tests, reference.row.system if inside else None, label, method_lines(label, why, most))


def markdown_table(number: int, outcomes: list[Outcome], profile: str, profile_file: Path | None,
                   folds: int = 5, command: str = "", protocol: str | None = None, references: list | None = None,
                   seeds: int = SEEDS, *, paired: PairedTests, corpus: str | None = None,
                   ablation: str | None = None) -> str:
    """Markdown: the paper's rows and figures, this package's mean [95 % CI] with the paired
    tests `paired` (`paired_tests`), per-class recall, pooled confusion matrices, and what produced them.
    `protocol`: a line saying which protocol made the 'here' columns (`protocol_line`);
    `references`: published rows under that protocol (references.py), quoted beneath.
    `corpus`: a key of CORPUS_TABLES (Table II's comparison on that corpus: published rows
    among `outcomes`, the speaker pairing and the paper's claims in the notes, and an
    ablation section, `ablation` being its markdown or None while there is none)."""
    rows, footnotes = _table_rows(outcomes, folds * seeds, paired)
    kind = CORPUS_TABLES.get(corpus)
    source = "published" if kind else "paper"
    lines = [f"# {kind.title if kind else TITLES[number]}", "",
             f"| System | WA {source} | WA here | UA {source} | UA here |", "|---|---|---|---|---|", *rows]
    ran = [(o.row.system, o.agg) for o in outcomes if o.agg and o.agg.get("n_runs")]
    lines += recall_table(ran) + confusion_lines(ran)
    lines += ["", *_notes(number, outcomes, profile, profile_file, folds, seeds, command, protocol, kind),
              *paired.method]
    if kind:
        lines += ordering_lines(outcomes, paired)
    if references:
        lines += render_references(references)
    if footnotes:
        lines += ["", *footnotes]
    if kind:
        lines += ["", ABLATION_HEADING, "",
                  ablation.strip() if ablation else f"Not written yet: `results/{corpus}_ablation.md` is appended here "
                  "when it exists (validation UA of each recipe choice over the same folds, before and after)."]
    return "\n".join(lines) + "\n"


def _notes(number: int, outcomes: list[Outcome], profile: str, profile_file: Path | None, folds: int, seeds: int,
           command: str, protocol: str | None, kind: CorpusTable | None = None) -> list[str]:
    """The bullet points under a table: paper, metrics, protocol, corpus, initialisation, device …"""
    aggs = [o.agg for o in outcomes if o.agg and o.agg.get("n_runs")]
    devices = sorted({d for a in aggs for d in a.get("devices") or []})
    if kind:
        published = (f"- Published rows: {kind.published[0].source}, under the same protocol, marked \"{SAME_PROTOCOL}\"; "
                     "their UA is the published mean ± standard deviation over folds (not a 95 % interval), and no "
                     f"WA is quoted. Our rows are {PAPER}'s models (no figures of theirs on this corpus)."
                     if kind.published else f"- Published rows: none quoted for this corpus; our rows are {PAPER}'s models.")
    else:
        published = (f"- Paper: {PAPER}, Table {'I' if number == 1 else 'II'} (IEMOCAP, improvised, 4 classes, 5 folds)"
                     + ("; [9] is Satt et al. 2017, its figures as the paper quotes them." if number == 2 else "."))
    lines = [
        published,
        f"- Here: utterance-level WA / UA in % (WA: accuracy; UA: mean recall over the classes present in a fold's "
        f"test labels, sklearn's balanced accuracy) over n = {folds} folds x {seeds} seed(s) = {folds * seeds} runs "
        "per row: speaker-independent folds (one held-out session each: one actor validation, the other test), "
        f"each trained with the seed(s) {', '.join(map(str, range(seeds)))} (`--seed_everything s --data.seed s`)"
        + ("; a segmented model's utterance score is the mean of its 3 s segments' posteriors."
           if number == 1 or kind else "."),
        *([protocol] if protocol else []),
        *([f"- Speaker pairing: {kind.pairing}. Fold k holds session k out, validates on its lower-numbered speaker "
           "and tests on the other; fold k-swap exchanges them, so every speaker is tested once."] if kind else []),
        *_corpus_lines(aggs),
        "- Initialisation here: " + "; ".join(f"{o.row.system}: {o.init or 'not run'}" for o in outcomes if o.row.experiment)
        + ". ImageNet weights used by: " + (", ".join(o.row.system for o in outcomes if o.agg and o.init and o.init.startswith("ImageNet")) or "no row") + ".",
        f"- Device: {', '.join(devices) or '—'}.",
        f"- Profile: {describe_profile(profile, profile_file)}",
        "- Wall time of each row's runs (training + testing, when they were trained): "
        + (", ".join(f"{a['experiment']} {a['wall_s'] / 60:.1f} min" for a in aggs) or "—") + ".",
    ]
    constant = [a["experiment"] for a in aggs if all(len(f.get("predicted") or []) == 1 for f in a["folds"])]
    if constant:
        lines.append(f"- Constant answer: in every run, {', '.join(constant)} predicted one class for all test "
                     "utterances, so those figures are those of a constant answer (nothing usable was learned).")
    if command:
        lines.append(f"- Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}; per-run results in the "
                     "run folders' results.json, aggregates in aggregate.json.")
    return lines



# options whose value is a folder of the user's machine: the markdown names the option, not the folder
# the tables' own folder options, then `fit`'s (in TABLE_EXTRA, or an ablation line's overrides)
FOLDER_OPTIONS = ("--root", "--iemocap", "--emobox", "--audio-root", "--weights-dir",
                  "--data.root", "--data.manifest", "--data.emobox", "--data.audio_root", "--data.cache_dir")


def public_words(words: list[str]) -> list[str]:
    """The command's words with each folder value replaced by <DIR> (`--root <DIR>`), so that a
    results file never holds a path of the machine that made it."""
    out, hide = [], False
    for w in words:
        option, eq, _ = w.partition("=")
        if hide:
            out.append("<DIR>")
        elif eq and option in FOLDER_OPTIONS:
            out.append(f"{option}=<DIR>")
        else:
            out.append(w)
        hide = not hide and w in FOLDER_OPTIONS
    return out
