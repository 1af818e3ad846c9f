"""Cross-validation: one experiment over every fold, each fold a `fit` in its own process.

    python -m ser_fcn cv --config experiments/fcn_attn.yaml [--folds 5|10] [--out DIR] [overrides…]

Fold k trains in `<out>/fold<k>` (`<out>/fold<k>-swap` for the five extra folds of
`--folds 10`: validation and test speakers exchanged) through `python -m ser_fcn fit
--run_dir …`, which tests the best checkpoint and writes `results.json`. That file marks the
fold as done: a rerun skips it. A fold folder without it (a run killed mid-fold) is cleared
and the fold retrained. Once a fold is done only its tested (best) checkpoint is kept; the
others (last.ckpt …, 1.6 GB each for VGG16 with Adam state) are deleted unless
--keep-checkpoints. Each fold's output goes to `<out>/logs/<fold>.log` (appended, so a
crashed attempt stays readable). `<out>/aggregate.json` holds the mean and std of WA and
UA over folds and the summed confusion matrix.

With `--emobox DIR --audio-root DIR` the folds are EmoBox's (`DIR/fold_<k>/`, one per folder;
no speaker swap) instead of IEMOCAP's sessions.

`<out>/cv.json` records the setup (config files and their contents, overrides); a rerun
with another setup in the same folder is refused rather than mixing folds of two setups.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..configs import BASE_CONFIG
from ..training.metrics import confusion_scores
from ..utils import atomic
from ..utils.machine import cpu_model

RESULTS = "results.json"
FOLD_META = "cv_fold.json"  # wall time, device and command of a finished fold
SETUP = "cv.json"
AGGREGATE = "aggregate.json"
N_SESSIONS = 5  # IEMOCAP (and the demo corpus): one fold per held-out session
RESERVED = ("--data.fold", "--data.swap_speakers", "--run_dir", "--test_after_fit")


@dataclass(frozen=True)
class Fold:
    fold: int
    swap: bool

    @property
    def name(self) -> str:
        return f"fold{self.fold}" + ("-swap" if self.swap else "")


def fold_list(folds: int = 5, only: Sequence[int] | None = None, n_sessions: int = N_SESSIONS,
              swap: bool = True) -> list[Fold]:
    """`folds` = `n_sessions`: one per session (EmoBox: per fold_k folder); 2 x: also each with
    validation and test speakers swapped (`swap`: IEMOCAP-style session folds only)."""
    if folds not in (n_sessions, 2 * n_sessions) or (folds != n_sessions and not swap):
        allowed = f"{n_sessions} (one per session)" + (f" or {2 * n_sessions} (with the speaker swap)" if swap else "")
        raise ValueError(f"--folds {folds}: use {allowed}")
    out = [Fold(k, s) for s in ((False, True) if folds == 2 * n_sessions else (False,)) for k in range(1, n_sessions + 1)]
    if only:
        bad = sorted(set(only) - set(range(1, n_sessions + 1)))
        if bad:
            raise ValueError(f"--only {bad}: folds are 1..{n_sessions}")
        out = [f for f in out if f.fold in set(only)]
    return out


def emobox_folds(emobox: str) -> list[int]:
    """EmoBox's fold numbers of a corpus folder (fold_1..fold_n), checked to run 1..n."""
    from ..data.emobox import EmoBoxError, fold_numbers

    try:
        ks = fold_numbers(emobox)
    except EmoBoxError as e:
        raise SystemExit(f"error: --emobox {e}") from None
    if ks != list(range(1, len(ks) + 1)):
        raise SystemExit(f"error: {emobox}: fold folders {ks} do not run 1..{len(ks)}")
    return ks


def emobox_overrides(emobox: str | None, audio_root: str | None) -> list[str]:
    """The `fit` arguments that select an EmoBox corpus (none without one)."""
    if not emobox:
        return []
    if not audio_root:
        raise SystemExit("error: --emobox needs --audio-root (the folder its wav paths are relative to)")
    return ["--data.emobox", str(emobox), "--data.audio_root", str(audio_root)]


# --- one fold in a subprocess -----------------------------------------------------------


def fit_command(configs: Sequence[str], fold: Fold, run_dir: Path, overrides: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "ser_fcn", "fit"]
    for c in configs:
        cmd += ["--config", str(c)]
    return [*cmd, *overrides, "--data.fold", str(fold.fold), "--data.swap_speakers", str(fold.swap).lower(),
            "--run_dir", str(run_dir)]


def launch_fold(cmd: list[str], log_path: Path, echo: bool = False) -> int:
    """Run one fold's `fit`, its output appended to `log_path` (and echoed if asked); its exit code.

    Ctrl-C / SIGTERM of the runner stops the fold too; the fold folder is then left
    without results.json and the next run retrains it.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}  {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if echo:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
            return proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


@contextmanager
def _sigterm_stops_the_fold() -> Iterator[None]:
    """`kill <runner pid>` raises SystemExit in the runner, which then stops the running fold
    (`launch_fold`) instead of leaving it orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_device(log_text: str = "") -> str:
    """The device a fold ran on, from Lightning's "GPU available: …, used: True" log line."""
    if re.search(r"GPU available: True \(cuda\), used: True", log_text):
        try:
            import torch

            return f"GPU: {torch.cuda.get_device_name(0)}"
        except Exception:  # noqa: BLE001 - the name is only a label
            return "GPU (cuda)"
    if re.search(r"GPU available: True \(mps\), used: True", log_text):
        return "GPU: Apple MPS"
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


# --- the runner ---------------------------------------------------------------------------


def setup_record(configs: Sequence[str], overrides: Sequence[str]) -> dict:
    """What makes two runs the same experiment: the config files' settings (base.yaml included;
    comments and layout do not count) and the overrides."""
    def digest(f: str) -> str:
        settings = yaml.safe_load(Path(f).read_text())
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    files = [str(BASE_CONFIG), *map(str, configs)]
    return {"configs": [str(c) for c in configs], "settings_sha1": {f: digest(f) for f in files},
            "overrides": list(overrides)}


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


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_crossval(
    configs: Sequence[str],
    out: str | Path,
    folds: int = 5,
    overrides: Sequence[str] = (),
    only: Sequence[int] | None = None,
    echo: bool = False,
    launch: Callable[[list[str], Path], int] | None = None,
    name: str | None = None,
    keep_checkpoints: bool = False,
    emobox: str | None = None,
) -> dict:
    """Train every fold not yet done, then write and return `<out>/aggregate.json`.

    `launch(cmd, log_path) -> exit code` runs one fold (default: `launch_fold`, a subprocess).
    A failed fold does not stop the others; the aggregate then says which folds are missing.
    `emobox`: an EmoBox corpus folder (its `--data.emobox` is among `overrides`): one fold per
    `fold_<k>` folder.
    """
    bad = [o for o in overrides if o.split("=", 1)[0] in RESERVED]
    if bad:
        raise SystemExit(f"error: {bad[0]} is set by the cross-validation runner, not by an override")
    out = Path(out)
    name = name or Path(str(configs[0])).stem
    n_sessions = len(emobox_folds(emobox)) if emobox else N_SESSIONS
    plan = fold_list(folds, only, n_sessions, swap=not emobox)
    _check_setup(out, setup_record(configs, overrides))
    (out / "logs").mkdir(exist_ok=True)
    launch = launch or (lambda cmd, log: launch_fold(cmd, log, echo))
    print(f"cv {name}: {len(plan)} folds in {out}", flush=True)
    with _sigterm_stops_the_fold():
        failed = _train_folds(plan, out, configs, overrides, launch, keep_checkpoints)
    agg = aggregate(out, [f.name for f in fold_list(folds, None, n_sessions, swap=not emobox)], name=name)
    atomic.write_json(out / AGGREGATE, agg)
    print(summary_line(agg), flush=True)
    if failed:
        print(f"cv {name}: {len(failed)} fold(s) failed: {', '.join(failed)}; rerun the same command to retry them", flush=True)
    return agg


def _train_folds(plan: list[Fold], out: Path, configs: Sequence[str], overrides: Sequence[str],
                 launch: Callable[[list[str], Path], int], keep_checkpoints: bool = False) -> list[str]:
    """Train the folds of `plan` that have no results.json, in order; the names of those that failed."""
    t0, trained, failed = time.monotonic(), [], []
    todo = [f for f in plan if not (out / f.name / RESULTS).is_file()]
    for i, fold in enumerate(plan, 1):
        run_dir = out / fold.name
        tag = f"  [{i}/{len(plan)}] {fold.name:<11}"
        if (run_dir / RESULTS).is_file():
            r = json.loads((run_dir / RESULTS).read_text())
            print(f"{tag} done before: WA {100 * r['wa']:.1f}  UA {100 * r['ua']:.1f}  (not retrained)", flush=True)
            continue
        if run_dir.exists():  # killed mid-fold: start that fold again from scratch
            print(f"{tag} left unfinished by an earlier run: clearing {run_dir}", flush=True)
            shutil.rmtree(run_dir)
        if setup_record(configs, overrides) != json.loads((out / SETUP).read_text()):
            raise SystemExit(f"error: a config file changed while {out} was being trained; the folds "
                             "done so far used the old one. Delete that folder and start again.")
        log = out / "logs" / f"{fold.name}.log"
        cmd = fit_command(configs, fold, run_dir, overrides)
        print(f"{tag} training (log: {log})", flush=True)
        start = time.monotonic()
        code = launch(cmd, log)
        wall = time.monotonic() - start
        trained.append(wall)
        left = len(todo) - len(trained)
        eta = f", ~{_fmt_time(left * sum(trained) / len(trained))} left" if left else ""
        if code == 0 and (run_dir / RESULTS).is_file():
            r = json.loads((run_dir / RESULTS).read_text())
            text = log.read_text(errors="replace") if log.is_file() else ""
            meta = {"wall_s": round(wall, 1), "device": describe_device(text), "command": cmd}
            atomic.write_json(run_dir / FOLD_META, meta)
            if not keep_checkpoints:
                drop_extra_checkpoints(run_dir, r.get("ckpt_path"))
            print(f"{tag} WA {100 * r['wa']:.1f}  UA {100 * r['ua']:.1f}  in {_fmt_time(wall)}"
                  f"  (elapsed {_fmt_time(time.monotonic() - t0)}{eta})", flush=True)
        else:
            failed.append(fold.name)
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
            print(f"{tag} FAILED (exit code {code}) after {_fmt_time(wall)}; last lines of {log}:", flush=True)
            print("\n".join("      " + t for t in tail), flush=True)
    return failed


def drop_extra_checkpoints(run_dir: Path, keep: str | None) -> int:
    """Delete the checkpoints of a finished fold except `keep` (the tested one); bytes freed.
    Nothing is deleted when the tested checkpoint is unknown or missing."""
    if not keep or not Path(keep).is_file():
        return 0
    freed = 0
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        if ckpt.resolve() != Path(keep).resolve():
            freed += ckpt.stat().st_size
            ckpt.unlink()
    return freed


# --- aggregate ----------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); std is None for fewer than two values."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _resolved(run_dir: Path) -> dict:
    """The parts of a fold's resolved config (its config.yaml) that a table reports."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text()) or {}
    trainer, data, model = cfg.get("trainer") or {}, cfg.get("data") or {}, cfg.get("model") or {}
    net, opt = model.get("net") or {}, model.get("optimizer") or {}
    keep_trainer = ("max_epochs", "max_time", "limit_train_batches", "limit_val_batches", "precision", "accelerator")
    keep_data = ("root", "manifest", "emobox", "audio_root", "classes", "merge_exc", "include_scripted", "segmented",
                 "max_frames_per_batch", "demo_utterances_per_speaker")
    return {
        "net": {"class_path": net.get("class_path"), **(net.get("init_args") or {})},
        "optimizer": {"class_path": opt.get("class_path"), "lr": (opt.get("init_args") or {}).get("lr")},
        "trainer": {k: trainer.get(k) for k in keep_trainer},
        "data": {k: data.get(k) for k in keep_data},
    }


def aggregate(out: str | Path, expected: Sequence[str] | None = None, name: str | None = None) -> dict:
    """Mean ± std of WA and UA over the folds of `out` that have results.json, summed confusion.

    `expected`: the fold names of the full plan; those without results are listed as missing.
    """
    out = Path(out)
    names = list(expected) if expected else sorted(p.parent.name for p in out.glob(f"*/{RESULTS}"))
    folds, cm, classes, first = [], None, None, None
    for fold_name in names:
        path = out / fold_name / RESULTS
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        meta_path = out / fold_name / FOLD_META
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if classes is None:
            classes, first = r["classes"], out / fold_name
            cm = [[0] * len(classes) for _ in classes]
        elif r["classes"] != classes:
            raise ValueError(f"{path}: classes {r['classes']} differ from {classes} of the other folds")
        for i, row in enumerate(r["confusion_matrix"]):
            for j, n in enumerate(row):
                cm[i][j] += n
        folds.append({
            "name": fold_name, "fold": r.get("fold"), "swap_speakers": r.get("swap_speakers"),
            "test_speaker": r.get("test_speaker"), "wa": r["wa"], "ua": r["ua"],
            "n_utterances": r.get("n_utterances"), "corpus": r.get("corpus"), "merge_exc": r.get("merge_exc"),
            "predicted": [c for j, c in enumerate(classes) if any(row[j] for row in r["confusion_matrix"])],
            "wall_s": meta.get("wall_s"), "device": meta.get("device"),
        })
    wa_mean, wa_std = mean_std([f["wa"] for f in folds])
    ua_mean, ua_std = mean_std([f["ua"] for f in folds])
    pooled = confusion_scores(cm) if cm else (None, None)
    missing = [n for n in names if n not in {f["name"] for f in folds}]
    return {
        "experiment": name or out.name,
        "n_folds": len(folds),
        "complete": bool(folds) and not missing,
        "missing_folds": missing,
        "wa": {"mean": wa_mean, "std": wa_std},
        "ua": {"mean": ua_mean, "std": ua_std},
        "std": "sample standard deviation over folds (n - 1)",
        "classes": classes,
        "confusion_matrix": cm,  # summed over folds: rows true, columns predicted
        "pooled": {"wa": pooled[0], "ua": pooled[1]},  # of the summed confusion matrix
        "corpus": sorted({str(f["corpus"]) for f in folds}),
        "merge_exc": sorted({bool(f["merge_exc"]) for f in folds}),
        "devices": sorted({f["device"] for f in folds if f["device"]}),
        "wall_s": round(sum(f["wall_s"] or 0 for f in folds), 1),
        "resolved_config": _resolved(first) if first else {},
        "folds": folds,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def summary_line(agg: dict) -> str:
    wa, ua = agg["wa"], agg["ua"]
    done = f"{agg['n_folds']} folds" + ("" if agg["complete"] else f", MISSING {', '.join(agg['missing_folds'])}")
    return (f"cv {agg['experiment']}: WA {_pct(wa['mean'])} ± {_pct(wa['std'])}  UA {_pct(ua['mean'])} ± {_pct(ua['std'])}"
            f"  ({done}; mean ± std in %)")


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m ser_fcn cv",
        allow_abbrev=False,
        description="Run an experiment over every fold (each a `fit` subprocess), resumable, and aggregate. "
        "Arguments it does not know (e.g. --trainer.max_epochs 5) are passed to every fold's `fit`.",
    )
    p.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable, later ones win)")
    p.add_argument("--folds", type=int, help="5 (one per session, the default) or 10 (also with the speaker swap); "
                   "with --emobox: its number of fold_k folders")
    p.add_argument("--emobox", help="an EmoBox corpus folder (label_map.json, fold_k/): train on its folds")
    p.add_argument("--audio-root", help="with --emobox: the folder its wav paths are relative to")
    p.add_argument("--only", type=int, nargs="+", help="train only these fold numbers (the aggregate lists the rest as missing)")
    p.add_argument("--out", help="folder of the folds and aggregate.json (default runs/cv/<first config name>)")
    p.add_argument("--verbose", action="store_true", help="also echo each fold's training output")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every checkpoint of a finished fold, not only the tested one")
    args, overrides = p.parse_known_args(argv)
    out = args.out or str(Path("runs") / "cv" / Path(args.config[0]).stem)
    overrides = emobox_overrides(args.emobox, args.audio_root) + overrides
    folds = args.folds or (len(emobox_folds(args.emobox)) if args.emobox else N_SESSIONS)
    agg = run_crossval(args.config, out, folds, overrides, only=args.only, echo=args.verbose,
                       keep_checkpoints=args.keep_checkpoints, emobox=args.emobox)
    if not agg["complete"] and not args.only:
        sys.exit(1)
