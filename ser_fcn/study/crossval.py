"""Cross-validation: one experiment over every fold and seed, each a `fit` in its own process.

    python -m ser_fcn cv --config experiments/fcn_attn.yaml [--folds N] [--only K …] [--seeds N] [--out DIR] [overrides…]

The folds are those of the corpus the fits read (`corpus_sessions`): one per session
(IEMOCAP and the demo corpus: 5; a manifest: its sessions), or twice that with the speaker
swap (`--folds 10` for IEMOCAP). EmoDB and RAVDESS (`--data.corpus emodb|ravdess`) are leave one
speaker out: by default every session with the swap (10 folds for EmoDB's 5 sessions, 24 for
RAVDESS's 12). Fold k trains in `<out>/fold<k>` (`<out>/fold<k>-swap` for the swapped ones:
validation and test speakers exchanged) through `python -m ser_fcn fit
--run_dir …`, which tests the best checkpoint and writes `results.json`. With `--seeds N`
every fold trains once per seed s = 0..N-1 (`--seed_everything s --data.seed s`); seed 0
keeps the folder `fold<k>` (so runs made before seeds existed stay valid), seed s > 0 trains
in `fold<k>-seed<s>` (`fold<k>-swap-seed<s>`). One (fold, seed) is a "run".

Fold k and fold k-swap train on the same speakers with the same seed, so one training run serves
both: `fit --swap_run_dir <out>/fold<k>-swap` validates on both held-out speakers every epoch,
keeps the best epoch by each, and tests each on the other speaker; fold k-swap's results.json is
exactly what a run of its own would give (tests/test_shared_swap.py). `--train-swap-separately`
trains them apart, as before; a run begun alone resumes alone (`_shares_training`).

`results.json` marks a run as done: a rerun skips it. A run folder without it (killed
mid-training) resumes from its `checkpoints/last.ckpt` (`fit --ckpt_path …`, same folder)
when there is one; a folder without last.ckpt is cleared and the run trained again. Once a
run is done only its tested (best) checkpoint is kept; the others (last.ckpt …, 1.6 GB each
for VGG16 with Adam state) are deleted unless --keep-checkpoints. Each run's output goes to
`<out>/logs/<run>.log` (appended, so a crashed attempt stays readable).
`<out>/aggregate.json` lists every run's result and holds, for WA and UA, the mean, the
sample std and a 95 % confidence interval over the runs (`stats.mean_ci`), the per-class
recall averaged over runs and the summed (pooled) confusion matrix.

With `--emobox DIR --audio-root DIR` the folds are EmoBox's (`DIR/fold_<k>/`, one per folder;
no speaker swap) instead of IEMOCAP's sessions.

`<out>/cv.json` records the setup (config files and their contents, overrides); a rerun
with another setup in the same folder is refused rather than mixing folds of two setups.
The number of seeds is not part of the setup: `--seeds 3` after `--seeds 1` adds seeds 1, 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from ..configs import BASE_CONFIG
from ..utils import atomic
from ..utils.durations import format_duration
from ..utils.run_folder import CHECKPOINTS, LAST_CKPT, RESULTS
from .cv_aggregate import aggregate, summary_line
from .cv_launch import RESERVED, describe_device, fit_command, launch_fold, sigterm_stops_the_fold
from .cv_plan import (AGGREGATE, FOLD_META, SEEDS, SETUP, SHARED, Run, corpus_sessions,
                      count_trainings, default_folds, emobox_folds, emobox_overrides, fold_list, run_list, swap_partner)
from .wandb_report import fold_run_env, group_name, log_aggregate


def setup_record(configs: Sequence[str], overrides: Sequence[str]) -> dict:
    """What makes two runs the same experiment: the config files' settings (base.yaml included;
    comments and layout do not count) and the overrides."""
    def digest(f: str) -> str:
        settings = yaml.safe_load(Path(f).read_text())
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    # base.yaml by its place in the package, not on this disk: a clone elsewhere (or the runs
    # folder carried to another machine) is the same setup and resumes.
    base = BASE_CONFIG.relative_to(BASE_CONFIG.parents[2]).as_posix()
    sha1 = {base: digest(BASE_CONFIG), **{str(c): digest(c) for c in configs}}
    return {"configs": [str(c) for c in configs], "settings_sha1": sha1, "overrides": list(overrides)}


def _check_setup(out: Path, setup: dict) -> None:
    path = out / SETUP
    if path.is_file():
        old = json.loads(path.read_text())
        if old != setup:
            diffs = [k for k in setup if old.get(k) != setup[k]]
            raise SystemExit(
                f"error: {out} holds folds of another setup ({', '.join(diffs)} differ: was "
                f"{ {k: old.get(k) for k in diffs} }). Delete that folder or pass another --out."
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, setup)


def run_crossval(
    configs: Sequence[str],
    out: str | Path,
    folds: int | None = None,
    overrides: Sequence[str] = (),
    only: Sequence[int] | None = None,
    echo: bool = False,
    launch: Callable[[list[str], Path], int] | None = None,
    name: str | None = None,
    keep_checkpoints: bool = False,
    emobox: str | None = None,
    seeds: int = SEEDS,
    share: bool = True,
    ensemble: bool = False,
) -> dict:
    """Train every (fold, seed) run not yet done, then write and return `<out>/aggregate.json`.

    `launch(cmd, log_path) -> exit code` runs one fold (default: `launch_fold`, a subprocess).
    A failed run does not stop the others; the aggregate then says which runs are missing.
    `emobox`: an EmoBox corpus folder (its `--data.emobox` is among `overrides`): one fold per
    `fold_<k>` folder. `seeds`: each fold is trained with the seeds 0..seeds-1. `folds`: None is
    every fold of the corpus's protocol (`default_folds`). `share`: fold k and fold k-swap, which
    train on the same speakers with the same seed, share one training run (`_shares_training`).
    `ensemble`: the aggregate scores each fold's seeds as one model (`cv_aggregate.ensemble_seeds`).
    """
    bad = [o for o in overrides if o.split("=", 1)[0] in RESERVED]
    if bad:
        raise SystemExit(f"error: {bad[0]} is set by the cross-validation runner (folds, --seeds, resume), "
                         "not by an override")
    out = Path(out)
    name = name or Path(str(configs[0])).stem
    n_sessions = len(emobox_folds(emobox)) if emobox else corpus_sessions(configs, overrides)[0]
    folds = folds or default_folds(configs, overrides, emobox)
    try:
        plan_folds = fold_list(folds, only, n_sessions, swap=not emobox)
    except ValueError as e:  # a fold count or number this corpus does not have
        raise SystemExit(f"error: {e}") from None
    plan = run_list(plan_folds, seeds)
    _check_setup(out, setup_record(configs, overrides))
    (out / "logs").mkdir(exist_ok=True)
    launch = launch or (lambda cmd, log: launch_fold(cmd, log, echo))
    n_train = count_trainings(plan, share)
    shared = f", {n_train} training run{'s' * (n_train != 1)}: each fold and its swap share one" if n_train < len(plan) else ""
    print(f"cv {name}: {len(plan)} runs ({seeds} seed(s) per fold{shared}) in {out}", flush=True)
    with sigterm_stops_the_fold():
        failed = _train_runs(plan, out, configs, overrides, launch, keep_checkpoints, name, share)
    expected = run_list(fold_list(folds, None, n_sessions, swap=not emobox), seeds)
    agg = aggregate(out, [r.name for r in expected], name=name, ensemble=ensemble)
    atomic.write_json(out / AGGREGATE, agg)
    print(summary_line(agg), flush=True)
    log_aggregate(out, agg)  # a W&B run of the group, when the fits log to W&B
    if failed:
        print(f"cv {name}: {len(failed)} run(s) failed: {', '.join(failed)}; rerun the same command to retry them", flush=True)
    return agg


def prepare_run_dir(run_dir: Path, tag: str = "") -> Path | None:
    """Before training a run that has no results.json: the last.ckpt to resume from, if its
    folder has one (the folder is kept); else the folder is cleared (None: train from scratch)."""
    last = run_dir / LAST_CKPT
    if last.is_file():
        print(f"{tag} left unfinished by an earlier run: resuming from {last}", flush=True)
        return last
    if run_dir.exists():
        print(f"{tag} left unfinished by an earlier run, without {LAST_CKPT}: clearing {run_dir}", flush=True)
        shutil.rmtree(run_dir)
    return None


def _shares_training(run: Run, plan: Sequence[Run], out: Path, share: bool) -> Run | None:
    """The swap partner that `run`'s training also serves, or None (train it alone).

    Fold k and fold k-swap train on the same eight speakers with the same seed, so their training
    runs are the same; only the speaker that picks the best epoch and the one tested differ. One
    run (`fit --swap_run_dir`) validates on both and keeps a best checkpoint for each. Shared when
    both are in the plan and unfinished, the partner's folder holds no training of its own
    (last.ckpt), and fold k's is either fresh or a shared run left unfinished (SHARED); a run
    begun alone resumes alone."""
    if not share or run.fold.swap:
        return None
    partner = swap_partner(run)
    if partner not in plan or any((out / r.name / RESULTS).is_file() for r in (run, partner)):
        return None
    if (out / partner.name / LAST_CKPT).is_file():
        return None
    run_dir = out / run.name
    return partner if not (run_dir / LAST_CKPT).is_file() or (run_dir / SHARED).is_file() else None


def _train_runs(plan: list[Run], out: Path, configs: Sequence[str], overrides: Sequence[str],
                launch: Callable[[list[str], Path], int], keep_checkpoints: bool = False,
                experiment: str | None = None, share: bool = True) -> list[str]:
    """Train the runs of `plan` that have no results.json, in order; the names of those that failed.
    Each fit is a W&B run of the experiment's group, named `<experiment>/<run>` (wandb_report);
    a fold and its swap share one (`_shares_training`)."""
    experiment = experiment or out.name
    t0, trained, failed = time.monotonic(), [], []
    served: dict[str, str] = {}  # swap runs trained in this call by their partner's run
    for i, run in enumerate(plan, 1):
        run_dir = out / run.name
        tag = f"  [{i}/{len(plan)}] {run.name:<11}"
        if (run_dir / RESULTS).is_file():
            r = json.loads((run_dir / RESULTS).read_text())
            how = f"trained with {served[run.name]} (one training run for both)" if run.name in served else "done before"
            print(f"{tag} {how}: WA {100 * r['wa']:.1f}  UA {100 * r['ua']:.1f}" + ("" if run.name in served else "  (not retrained)"),
                  flush=True)
            continue
        if run.name in served:  # its shared run failed to test it; already reported
            continue
        partner = _shares_training(run, plan, out, share)
        resume_from = prepare_run_dir(run_dir, tag)
        swap_dir = out / partner.name if partner else None
        if partner:
            if resume_from is None and swap_dir.exists():  # a fresh shared run: its partner's folder too
                shutil.rmtree(swap_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic.write_json(run_dir / SHARED, {"swap_run": partner.name})
        if setup_record(configs, overrides) != json.loads((out / SETUP).read_text()):
            raise SystemExit(f"error: a config file changed while {out} was being trained; the runs "
                             "done so far used the old one. Delete that folder and start again.")
        log = out / "logs" / f"{run.name}.log"
        cmd = fit_command(configs, run, run_dir, overrides, resume_from, swap_dir)
        print(f"{tag} training" + (f", also for {partner.name}" if partner else "") + f" (log: {log})", flush=True)
        start = time.monotonic()
        with fold_run_env(group_name(out, experiment), f"{experiment}/{run.name}"):
            code = launch(cmd, log)
        wall = time.monotonic() - start
        trained.append(wall)
        if partner:
            served[partner.name] = run.name
        remaining = [r for r in plan[i:] if r.name not in served and not (out / r.name / RESULTS).is_file()]
        left = count_trainings(remaining, share)
        eta = f", ~{format_duration(left * sum(trained) / len(trained))} left" if left else ""
        # the trained run, and the partner it served (its wall time counted once, in the run's meta)
        outcomes = [(run, {"serves": partner.name}, wall), (partner, {"trained_in": run.name}, 0.0)] if partner else [(run, {}, wall)]
        for r, meta, r_wall in outcomes:
            r_dir = out / r.name
            if code == 0 and (r_dir / RESULTS).is_file():
                _finish_run(r_dir, cmd, log, r_wall, keep_checkpoints, meta)
                res = json.loads((r_dir / RESULTS).read_text())
                if r == run:
                    print(f"{tag} WA {100 * res['wa']:.1f}  UA {100 * res['ua']:.1f}  in {format_duration(wall)}"
                          f"  (elapsed {format_duration(time.monotonic() - t0)}{eta})", flush=True)
                continue
            failed.append(r.name)
            if r == run or code == 0:  # a crashed shared run is reported once, under the run
                _report_failure(tag if r == run else f"{tag} for {r.name}:", code, wall, log)
            if resume_from and r == run:
                print(f"      (it resumed from {resume_from}; if that checkpoint is damaged, delete {run_dir} "
                      "to train this run from scratch)", flush=True)
    return failed


def _finish_run(run_dir: Path, cmd: list[str], log: Path, wall: float, keep_checkpoints: bool,
                extra: dict | None = None) -> None:
    """A run that wrote results.json: its meta (wall time, device, command; `extra`: which run a
    shared training served or was trained in, whose wall time it is), extra checkpoints dropped."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    atomic.write_json(run_dir / FOLD_META, {"wall_s": round(wall, 1), "device": describe_device(text), "command": cmd,
                                            **(extra or {})})
    if not keep_checkpoints:
        ckpt = json.loads((run_dir / RESULTS).read_text()).get("ckpt_path")
        drop_extra_checkpoints(run_dir, ckpt)


def _report_failure(tag: str, code: int, wall: float, log: Path) -> None:
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
    print(f"{tag} FAILED (exit code {code}) after {format_duration(wall)}; last lines of {log}:", flush=True)
    print("\n".join("      " + t for t in tail), flush=True)


def drop_extra_checkpoints(run_dir: Path, keep: str | None) -> int:
    """Delete the checkpoints of a finished fold except `keep` (the tested one); bytes freed.
    Nothing is deleted when the tested checkpoint is unknown or missing."""
    if not keep or not Path(keep).is_file():
        return 0
    freed = 0
    for ckpt in (run_dir / CHECKPOINTS).glob("*.ckpt"):
        if ckpt.resolve() != Path(keep).resolve():
            freed += ckpt.stat().st_size
            ckpt.unlink()
    return freed


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m ser_fcn cv",
        allow_abbrev=False,
        description="Run an experiment over every fold (each a `fit` subprocess), resumable, and aggregate. "
        "Arguments it does not know (e.g. --trainer.max_epochs 5) are passed to every fold's `fit`.",
    )
    p.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable, later ones win)")
    p.add_argument("--folds", type=int, help="the corpus's sessions (one fold each) or twice that (also with the speaker "
                   "swap). Default: every fold of its protocol: 5 for IEMOCAP (10 with the swap), 10 for EmoDB, 24 for "
                   "RAVDESS, a manifest's sessions; with --emobox its number of fold_k folders")
    p.add_argument("--emobox", help="an EmoBox corpus folder (label_map.json, fold_k/): train on its folds")
    p.add_argument("--audio-root", help="with --emobox: the folder its wav paths are relative to")
    p.add_argument("--only", type=int, nargs="+", help="train only these fold numbers (1..sessions; with the swap both "
                   "of a session's folds; the aggregate lists the rest as missing)")
    p.add_argument("--seeds", type=int, default=SEEDS,
                   help=f"train every fold with the seeds 0..N-1 (--seed_everything s --data.seed s; default {SEEDS}); "
                   "seed s > 0 in fold<k>-seed<s>")
    p.add_argument("--ensemble", action="store_true",
                   help="score each fold's seeds as one model: their test posteriors averaged per utterance (with --seeds N)")
    p.add_argument("--out", help="folder of the folds and aggregate.json (default runs/cv/<first config name>)")
    p.add_argument("--verbose", action="store_true", help="also echo each fold's training output")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every checkpoint of a finished fold, not only the tested one")
    p.add_argument("--train-swap-separately", action="store_true",
                   help="train fold k and fold k-swap in two runs; by default one run serves both, since they train on the "
                   "same speakers with the same seed (it validates on both held-out speakers and keeps a best epoch for each)")
    args, overrides = p.parse_known_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds {args.seeds}: give at least 1")
    out = args.out or str(Path("runs") / "cv" / Path(args.config[0]).stem)
    overrides = emobox_overrides(args.emobox, args.audio_root) + overrides
    agg = run_crossval(args.config, out, args.folds, overrides, only=args.only, echo=args.verbose,
                       keep_checkpoints=args.keep_checkpoints, emobox=args.emobox, seeds=args.seeds,
                       share=not args.train_swap_separately, ensemble=args.ensemble)
    if not agg["complete"] and not args.only:
        sys.exit(1)
