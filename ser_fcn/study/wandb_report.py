"""The W&B side of the cross-validations and the tables: one project, one group per experiment.

- Each (fold, seed) `fit` of a cross-validation is a run of the group `<runs folder>/<experiment>`
  (e.g. `quick-demo/fcn_attn`), job type `fold`, named `<experiment>/<run>` (`fold_run_env`).
- Once a cross-validation's aggregate.json is written, it is logged as a run of the same group,
  job type `aggregate` (`log_aggregate`): every run's WA, UA and per-class recall, and the mean,
  std and 95 % interval of WA and UA, as tables and as the run's summary.
- Table I / II is logged as a run of the group `<runs folder>/table<N>`, job type `table`
  (`log_table`): the rendered cells and their numbers.

The aggregate and table runs are made only when the row's fits log to W&B (their resolved
`trainer.logger` is a WandbLogger), offline or online as those fits were, their offline
folders under `<cv folder>/wandb/` and `<runs folder>/wandb/`. A rerun that would log the
same content again makes no new run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

FOLD_JOB, AGGREGATE_JOB, TABLE_JOB = "fold", "aggregate", "table"
WANDB_LOGGER = "WandbLogger"
TABLE_HEADER = "|---|---|---|---|---|"  # the separator line of a table's first markdown table
RENDERED = ["System", "WA paper", "WA here", "UA paper", "UA here"]  # its columns, as rendered


# --- the fold runs ------------------------------------------------------------------------


def group_name(out: str | Path, experiment: str) -> str:
    """`<runs folder>/<experiment>`: the folder that holds the cv folder names the setup
    (`runs/tables/quick-demo/fcn_attn` -> `quick-demo/fcn_attn`), so tables of two profiles or
    corpora do not share a group."""
    return f"{Path(out).resolve().parent.name}/{experiment}"


@contextmanager
def fold_run_env(group: str, name: str) -> Iterator[None]:
    """W&B's group, job type and name of the fit started inside (a subprocess inherits them).

    wandb.init reads WANDB_RUN_GROUP, WANDB_JOB_TYPE and WANDB_NAME, but only in a process whose
    W&B session has not started yet and when not given explicitly, so the CLI passes them to its
    WandbLogger itself (cli.py). The previous values come back afterwards."""
    wanted = {"WANDB_RUN_GROUP": group, "WANDB_JOB_TYPE": FOLD_JOB, "WANDB_NAME": name}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def logger_settings(logger) -> dict | None:
    """{"project", "entity", "offline"} of the WandbLogger in a resolved config's `trainer.logger`
    (a {class_path, init_args} dict, a list of them, or false); None without one."""
    for lg in logger if isinstance(logger, list) else [logger]:
        if isinstance(lg, dict) and str(lg.get("class_path", "")).endswith(WANDB_LOGGER):
            args = lg.get("init_args") or {}
            return {"project": args.get("project"), "entity": args.get("entity"), "offline": bool(args.get("offline"))}
    return None


def _settings_of(agg: dict | None) -> dict | None:
    return ((agg or {}).get("resolved_config") or {}).get("wandb")


# --- one report run -----------------------------------------------------------------------


def _already_logged(folder: Path, job_type: str, payload: dict) -> tuple[bool, Path, str]:
    """Whether the last `job_type` run logged from `folder` had this content (and mode)."""
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    marker = folder / "wandb" / f"last-{job_type}.sha1"
    return marker.is_file() and marker.read_text().strip() == digest, marker, digest


def _log_run(settings: dict, folder: Path, group: str, job_type: str, name: str, tables: dict[str, tuple[list, list]],
             summary: dict, config: dict) -> Path | None:
    """One W&B run holding `tables` ({key: (columns, rows)}) and `summary`; its folder, None when
    the same content was logged before. W&B failing (not logged in, no network) is reported, not raised:
    the markdown and aggregate.json are written already."""
    payload = {"settings": settings, "group": group, "name": name, "tables": tables, "summary": summary}
    same, marker, digest = _already_logged(folder, job_type, payload)
    if same:
        print(f"W&B: {job_type} run {name} of {group} already logged with this content", flush=True)
        return None
    try:
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        with wandb.init(project=settings.get("project") or "ser_fcn", entity=settings.get("entity"), group=group,
                        job_type=job_type, name=name, dir=str(folder), config=config, reinit="create_new",
                        mode="offline" if settings.get("offline", True) else None,
                        settings=wandb.Settings(console="off", x_disable_stats=True)) as run:
            run.log({key: wandb.Table(columns=cols, data=rows) for key, (cols, rows) in tables.items()})
            run.summary.update(summary)
            where = Path(run.dir).parent  # the run's folder (offline-run-*/, run-*/)
    except Exception as err:  # noqa: BLE001 - a report, not the results: say so and go on
        print(f"W&B: could not log the {job_type} run {name} of {group}: {err}", flush=True)
        return None
    marker.write_text(digest + "\n")
    print(f"W&B: logged the {job_type} run {name} of group {group} ({where})", flush=True)
    return where


# --- a cross-validation's aggregate ---------------------------------------------------------


def runs_table(agg: dict) -> tuple[list[str], list[list]]:
    """Every (fold, seed) run of an aggregate: name, fold, swap, seed, WA, UA, recall per class."""
    classes = agg.get("classes") or []
    cols = ["run", "fold", "swap", "seed", "test speaker", "WA", "UA", *(f"recall {c}" for c in classes)]
    rows = [[r["name"], r.get("fold"), bool(r.get("swap_speakers")), r.get("seed"), r.get("test_speaker"),
             r["wa"], r["ua"], *r["recall"]] for r in agg.get("folds") or []]
    return cols, rows


def summary_table(agg: dict) -> tuple[list[str], list[list]]:
    """WA and UA over the runs: mean, sample std, 95 % interval, number of runs."""
    cols = ["metric", "mean", "std", "ci low", "ci high", "n runs"]
    rows = [[key.upper(), m["mean"], m["std"], *(m["ci"] or [None, None]), m["n"]]
            for key, m in ((k, agg[k]) for k in ("wa", "ua"))]
    return cols, rows


def aggregate_summary(agg: dict) -> dict:
    """The run summary of an aggregate: `wa/mean`, `wa/ci_low` …, mean recall per class, n runs."""
    out: dict = {"n_runs": agg["n_runs"], "n_folds": agg["n_folds"], "complete": agg["complete"],
                 "missing_runs": ", ".join(agg.get("missing_folds") or [])}
    for key in ("wa", "ua"):
        m = agg[key]
        low, high = m["ci"] or (None, None)
        out.update({f"{key}/mean": m["mean"], f"{key}/std": m["std"], f"{key}/ci_low": low, f"{key}/ci_high": high})
        out[f"{key}/pooled"] = (agg.get("pooled") or {}).get(key)
    out.update({f"recall/{c}": r for c, r in zip(agg.get("classes") or [], agg.get("recall") or [])})
    return out


def _confusion_rows(classes: Sequence[str], cm: Sequence[Sequence[int]] | None) -> list[list]:
    return [[t, p, n] for t, counts in zip(classes, cm or []) for p, n in zip(classes, counts)]


def log_aggregate(out: str | Path, agg: dict) -> Path | None:
    """The aggregate of the cv in `out` as a run (job type `aggregate`) of its group, under
    `<out>/wandb/`; nothing when its fits do not log to W&B or no run finished."""
    settings = _settings_of(agg)
    if settings is None or not agg.get("n_runs"):
        return None
    out = Path(out)
    tables = {"cv/runs": runs_table(agg), "cv/summary": summary_table(agg),
              "cv/confusion_matrix": (["true", "predicted", "count"],
                                      _confusion_rows(agg.get("classes") or [], agg.get("confusion_matrix")))}
    config = {"experiment": agg["experiment"], "classes": agg.get("classes"), "devices": agg.get("devices"),
              "resolved": agg.get("resolved_config")}
    return _log_run(settings, out, group_name(out, agg["experiment"]), AGGREGATE_JOB, f"{agg['experiment']}/aggregate",
                    tables, aggregate_summary(agg), config)


# --- Table I / II -------------------------------------------------------------------------


def rendered_rows(md: str) -> list[list[str]]:
    """The cells of the rows of a table's first markdown table (System … UA here)."""
    lines = md.splitlines()
    start = lines.index(TABLE_HEADER) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _numbers(agg: dict | None, key: str) -> list[float | None]:
    """Mean and 95 % interval of WA or UA in %, None when the row has no run."""
    if not agg or not agg.get("n_runs"):
        return [None, None, None]
    m = agg[key]
    low, high = m["ci"] or (None, None)
    return [_pct(m["mean"]), _pct(low), _pct(high)]


def table_rows(outcomes: Sequence, md: str, paired) -> tuple[list[str], list[list]]:
    """The rendered cells of each row of Table I / II beside its numbers: paper and here (%),
    the 95 % interval, the runs, the p of the paired UA test and the reason a row has no figures.

    `outcomes` are rows.Outcome's in the order of the markdown; `paired` its rows.PairedTests."""
    cells = rendered_rows(md)
    if len(cells) != len(outcomes):
        raise ValueError(f"the table has {len(cells)} rows but {len(outcomes)} outcomes were given")
    cols = [*RENDERED, "experiment", "WA paper %", "WA here %", "WA ci low %", "WA ci high %", "UA paper %",
            "UA here %", "UA ci low %", "UA ci high %", "n runs", "p (UA vs reference)", "reference", "note"]
    rows = []
    for rendered, o in zip(cells, outcomes):
        test = paired.tests.get(o.row.system) or {}
        ran = bool(o.agg and o.agg.get("n_runs"))
        rows.append([*rendered, o.row.experiment, o.row.wa, *_numbers(o.agg, "wa"), o.row.ua, *_numbers(o.agg, "ua"),
                     o.agg["n_runs"] if ran else 0, test.get("p"), o.row.system == paired.reference_system,
                     o.note or ("" if ran else "no finished run")])
    return cols, rows


def log_table(number: int, outcomes: Sequence, md: str, runs: str | Path, paired) -> Path | None:
    """Table `number` as a run (job type `table`) of the group `<runs folder>/table<N>`, under
    `<runs>/wandb/`; nothing when no row's fits log to W&B."""
    settings = next((s for o in outcomes if (s := _settings_of(o.agg)) is not None), None)
    if settings is None:
        return None
    runs = Path(runs)
    cols, rows = table_rows(outcomes, md, paired)
    summary = {f"{o.row.experiment}/{key}": m["mean"] for o in outcomes if o.row.experiment and o.agg
               and o.agg.get("n_runs") for key, m in (("wa", o.agg["wa"]), ("ua", o.agg["ua"]))}
    return _log_run(settings, runs, f"{runs.resolve().name}/table{number}", TABLE_JOB, f"table{number}",
                    {f"table{number}": (cols, rows)}, summary, {"table": number, "reference": paired.reference_label})
