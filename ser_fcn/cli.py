"""`python -m ser_fcn <command>`: every command is one entry of COMMANDS (name -> one-line
description, handler); `python -m ser_fcn --help` lists them.

Training commands (`fit`, `validate`, `test`) go through LightningCLI, with
`ser_fcn/configs/base.yaml` as the default config that experiment files override.
Corpus commands (`manifest`: corpora/readers.py; `demo-data`, `emobox-demo`) and the checkpoint users (`predict`, `figure4`,
`attention-check`, `attention-study`;
ser_fcn/inference/, ser_fcn/study/) are plain argparse.
A mistake in the user's input (ser_fcn.utils.errors.UserError) is reported in one place, `main`.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .configs import BASE_CONFIG
from .data.datamodule import SERDataModule
from .training.callbacks import ResultsWriter
from .training.module import SERModule
from .utils import atomic
from .utils.run_folder import CHECKPOINTS, CONFIG
from .utils.errors import ConfigError, UserError

RUN_DIR_ENV = "SER_FCN_RUN_DIR"  # shares one run dir with DDP's child processes


class _SaveConfig(SaveConfigCallback):
    """Saves the resolved config (without `run_dir` and `swap_run_dir`, so it can be reused for a
    new run or a `test`) to the run folder and to every logger (W&B's run config)."""

    def __init__(self, parser, config, **kwargs):
        config = config.clone()
        config.run_dir = None
        config.swap_run_dir = None
        super().__init__(parser, config, **kwargs)

    def save_config(self, trainer, pl_module, stage) -> None:
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        resolved.pop("config", None)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": resolved})


def _fresh_dir(path: Path) -> Path:
    """Create and return `path`, or `path-2`, `path-3` … if it exists: two runs never share a
    folder, even two started in the same second (mkdir either creates the folder or fails)."""
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


class SERCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """LightningCLI's, less `predict`: ours (inference/predict.py) takes audio files."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.net.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.n_bins", "model.n_bins", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.class_names", apply_on="instantiate")
        parser.add_argument(
            "--run_dir",
            type=str | None,
            default=None,
            help="Folder of this run (checkpoints, config.yaml, results.json, W&B). "
            "Default: runs/<config name>/<command>-<time>.",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="fit: test the best checkpoint when training ends."
        )
        parser.add_argument(
            "--swap_run_dir",
            type=str | None,
            default=None,
            help="fit: also serve the fold with validation and test speakers swapped, which trains identically: "
            "validate on both held-out speakers (data.validate_both), keep the best epoch by the test speaker's "
            "validation (val_swap/ua) in this folder and test it on the validation speaker (its results.json).",
        )

    # --- one folder per run -------------------------------------------------------

    def _config_name(self) -> str:
        files = self.config[self.subcommand].get("config") or []
        # a profile or a protocol is not the experiment
        files = [f for f in files if Path(str(f)).parent.name not in ("profiles", "protocols")] or files
        return Path(str(files[-1])).stem if files else "default"

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand]
        run_dir = cfg.get("run_dir")
        if not run_dir and os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP child: the parent chose it
            run_dir = os.environ.get(RUN_DIR_ENV)
        if not run_dir:
            run_dir = _fresh_dir(Path("runs") / self._config_name() / f"{self.subcommand}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.environ[RUN_DIR_ENV] = str(run_dir)
        run_dir = str(run_dir)
        # resuming (`fit --ckpt_path last`) goes on in the same folder: its config may be rewritten
        self.save_config_kwargs["overwrite"] = bool(self.subcommand == "fit" and cfg.get("ckpt_path"))
        self.run_dir = Path(run_dir)
        cfg.trainer.default_root_dir = run_dir
        self.swap_run_dir = Path(cfg.swap_run_dir) if cfg.get("swap_run_dir") else None
        if self.swap_run_dir:
            if self.subcommand != "fit":
                raise ConfigError(f"--swap_run_dir is for fit (one training run serving a fold and its swap), not {self.subcommand}")
            if self.swap_run_dir.resolve() == self.run_dir.resolve():
                raise ConfigError(f"--swap_run_dir {self.swap_run_dir} is the run folder itself: the two folds need a folder each")
            cfg.data.validate_both = True
        net_args = cfg.model.net.get("init_args") if hasattr(cfg.model.net, "get") else None
        if self.subcommand in ("test", "validate") and cfg.get("ckpt_path") and net_args and net_args.get("weights"):
            net_args.weights = None  # the checkpoint holds the trained weights: no ImageNet download
        loggers = cfg.trainer.logger
        for lg in loggers if isinstance(loggers, list) else [loggers]:
            if hasattr(lg, "init_args") and lg.class_path.endswith("WandbLogger"):
                if lg.init_args.get("save_dir") in (None, "."):
                    lg.init_args.save_dir = run_dir
                if lg.init_args.get("name") is None:  # WANDB_NAME: the cv runner's `<experiment>/<run>`
                    lg.init_args.name = os.environ.get("WANDB_NAME") or f"{self._config_name()}-{self.run_dir.name}"
                # the cv runner's group and job type, explicit: wandb reads its variables only once a process
                for key, var in (("group", "WANDB_RUN_GROUP"), ("job_type", "WANDB_JOB_TYPE")):
                    if lg.init_args.get(key) is None and os.environ.get(var):
                        setattr(lg.init_args, key, os.environ[var])
        for cb in cfg.trainer.get("callbacks") or []:
            if hasattr(cb, "init_args") and cb.class_path.endswith("ModelCheckpoint") and cb.init_args.get("dirpath") is None:
                cb.init_args.dirpath = str(self.run_dir / CHECKPOINTS)

    def after_instantiate_classes(self) -> None:
        self.results_writer = ResultsWriter(self._config_name())
        self.trainer.callbacks.append(self.results_writer)
        self.swap_checkpoint = self._add_swap_checkpoint() if self.swap_run_dir else None
        # SERModule's hparams leave `net` out, so a checkpoint could not rebuild its network:
        # record the net's config (with the linked num_classes; weights=None, the trained ones
        # are in the state dict) so that `SERModule.load_from_checkpoint(path)` alone works.
        net = copy.deepcopy((getattr(self, "config_dump", None) or {}).get("model", {}).get("net"))
        if isinstance(net, dict) and "class_path" in net and "net" not in self.model.hparams:
            init = net.setdefault("init_args", {})
            init["num_classes"] = self.datamodule.num_classes
            if "weights" in init:
                init["weights"] = None
            self.model.hparams["net"] = net

    def _add_swap_checkpoint(self) -> ModelCheckpoint:
        """The swapped fold's best epoch: the fold's monitored checkpoint (base.yaml) again, on
        `val_swap/*` and in the swap folder. Its own state key (the monitor) resumes it from last.ckpt.
        It goes right after that callback, before the one that writes last.ckpt at every epoch:
        last.ckpt then holds its state after the epoch, not before (a run resumed from an epoch
        that was the swapped fold's new best would otherwise test a deleted checkpoint)."""
        best = self.trainer.checkpoint_callback
        if not isinstance(best, ModelCheckpoint) or not (best.monitor or "").startswith("val/"):
            raise ConfigError("--swap_run_dir needs the checkpoint callback that keeps the best epoch by a val/ metric "
                              f"(base.yaml's, monitor val/ua); this run's first checkpoint callback monitors {getattr(best, 'monitor', None)}")
        monitor = "val_swap/" + best.monitor.split("/", 1)[1]
        swap = ModelCheckpoint(dirpath=str(self.swap_run_dir / CHECKPOINTS), monitor=monitor, mode=best.mode,
                               filename=(best.filename or "").replace(best.monitor, monitor) or None,
                               auto_insert_metric_name=best.auto_insert_metric_name)
        callbacks = self.trainer.callbacks
        callbacks.insert(callbacks.index(best) + 1, swap)
        return swap

    # --- after the run: say where everything is ------------------------------------

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit"):
            return
        ckpt = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else None
        # read before testing: a test restores the callbacks' states saved in the tested checkpoint
        swap_ckpt = self.swap_checkpoint.best_model_path if self.swap_checkpoint is not None else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt or None)
        self._summary(ckpt)
        if self.swap_checkpoint is not None:
            self._test_swapped_fold(swap_ckpt)

    def _test_swapped_fold(self, ckpt: str | None) -> None:
        """Fold k-swap of a shared training run: the best epoch by the other speaker's validation
        (`ckpt`), tested on this fold's validation speaker; results.json and config.yaml in the swap folder."""
        if not ckpt:
            raise RuntimeError(f"no checkpoint was kept by {self.swap_checkpoint.monitor}: nothing to test in {self.swap_run_dir}")
        if self.trainer.is_global_zero:  # `test --config` of the swapped fold reproduces it
            cfg = self.config.fit.clone()
            cfg.run_dir = cfg.swap_run_dir = None
            cfg.data.swap_speakers, cfg.data.validate_both = not cfg.data.swap_speakers, False
            self.swap_run_dir.mkdir(parents=True, exist_ok=True)
            atomic.write_text(self.swap_run_dir / CONFIG, self._parser("fit").dump(cfg, skip_none=False))
        self.datamodule.exchange_held_out()
        self.results_writer.run_dir = self.swap_run_dir
        # this W&B run is fold k's: its test/* stay fold k's (the swap's are in its results.json
        # and in the cv aggregate's W&B table)
        loggers, self.trainer.loggers = self.trainer.loggers, []
        try:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
            self._summary(ckpt, self.swap_run_dir)
        finally:
            self.datamodule.exchange_held_out()
            self.results_writer.run_dir = None
            self.trainer.loggers = loggers

    def after_test(self) -> None:
        self._summary(self.config.test.get("ckpt_path"))

    def _summary(self, ckpt: str | None, run_dir: Path | None = None) -> None:
        results = getattr(self.model, "test_results", None)
        if not results or not self.trainer.is_global_zero:
            return
        dm = self.datamodule
        configs = " ".join(f"--config {c}" for c in (self.config[self.subcommand].get("config") or []))
        if run_dir is not None:  # the swapped fold of a shared run: its own config.yaml has its speakers
            configs = f"--config {run_dir / CONFIG}"
        lines = [
            "",
            "=" * 78,
            f"test WA {100 * results['wa']:.1f}%   UA {100 * results['ua']:.1f}%   "
            f"({dm.corpus_name} corpus, {dm.split.describe() if dm.split else ''})",
            f"checkpoint : {ckpt}",
            f"run folder : {run_dir or self.run_dir}  (results.json, config.yaml; W&B offline run: `wandb sync {self.run_dir}/wandb/offline-run-*`)",
            f"reproduce  : python -m ser_fcn test {configs} --ckpt_path {ckpt}",
            "=" * 78,
        ]
        print("\n".join(lines), flush=True)


def _cmd_manifest(argv: list[str]) -> None:
    from .corpora.readers import main as manifest_main

    manifest_main(argv)


def _cmd_demo_data(argv: list[str]) -> None:
    from .corpora.demo_corpus import UTTERANCES_PER_SPEAKER, generate_demo_corpus

    parser = argparse.ArgumentParser(prog="python -m ser_fcn demo-data", description="write the synthetic demo corpus (IEMOCAP layout)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--utterances_per_speaker", type=int, default=UTTERANCES_PER_SPEAKER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planted", action="store_true",
                        help="neutral speech with the emotion in one region per utterance (planted_regions.csv)")
    args = parser.parse_args(argv)
    corpus = generate_demo_corpus(args.out, utterances_per_speaker=args.utterances_per_speaker, seed=args.seed,
                                  planted=args.planted)
    kind = "planted demo corpus" if args.planted else "demo corpus"
    print(f"{kind}: {corpus.root} ({len(corpus.utterances)} labelled utterances)")


def _cmd_emobox_demo(argv: list[str]) -> None:
    from .corpora.demo_corpus import generate_demo_corpus
    from .corpora.emobox import export_iemocap_tree

    parser = argparse.ArgumentParser(prog="python -m ser_fcn emobox-demo",
                                description="write the demo corpus and its EmoBox-format folder (one fold per session)")
    parser.add_argument("--out", required=True, help="folder: <out>/IEMOCAP_full_release (audio) and <out>/emobox/demo (metadata)")
    parser.add_argument("--utterances_per_speaker", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    corpus = generate_demo_corpus(args.out, utterances_per_speaker=args.utterances_per_speaker, seed=args.seed)
    folder, audio_root = export_iemocap_tree(corpus.root, Path(args.out) / "emobox")
    print(f"EmoBox folder: {folder}\ntrain on fold 1: python -m ser_fcn fit --config experiments/fcn_attn_random.yaml "
          f"--data.emobox {folder} --data.audio_root {audio_root} --data.fold 1")


def _cmd_predict(argv: list[str]) -> None:
    from .inference.predict import main as predict_main

    predict_main(argv)


def _cmd_export(argv: list[str]) -> None:
    from .inference.export import main as export_main

    export_main(argv)


def _cmd_evaluate(argv: list[str]) -> None:
    from .inference.evaluate import main as evaluate_main

    evaluate_main(argv)


def _cmd_make_call(argv: list[str]) -> None:
    from .inference.call import main as make_call_main

    make_call_main(argv)


def _cmd_evaluate_timeline(argv: list[str]) -> None:
    from .inference.timeline_eval import main as evaluate_timeline_main

    evaluate_timeline_main(argv)


def _cmd_figure4(argv: list[str]) -> None:
    from .study.figure4 import main as figure4_main

    figure4_main(argv)


def _cmd_attention_check(argv: list[str]) -> None:
    from .study.attention_check import main as attention_check_main

    attention_check_main(argv)


def _cmd_attention_study(argv: list[str]) -> None:
    from .study.attention_study import main as attention_study_main

    attention_study_main(argv)


def _cmd_cv(argv: list[str]) -> None:
    from .study.crossval import main as cv_main

    cv_main(argv)


def _cmd_ablation(argv: list[str]) -> None:
    from .study.ablation import main as ablation_main

    ablation_main(argv)


def _cmd_table(number: int):
    def run(argv: list[str]) -> None:
        from .study.tables import main as table_main

        table_main(number, argv)

    return run


class Command(NamedTuple):
    """One `python -m ser_fcn <name>`: what `--help` says of it, and what runs it."""

    summary: str  # one line, shown by `python -m ser_fcn --help`
    run: Callable[[list[str]], None]  # the words after the name; builds its own parser (so `<name> --help` works)


def _lightning(subcommand: str) -> Callable[[list[str]], None]:
    def run(argv: list[str]) -> None:
        run_cli([subcommand, *argv])

    return run


# Every command, in the order `--help` lists them. A new command is one entry here.
COMMANDS: dict[str, Command] = {
    "fit": Command("train a model on one fold, then test its best checkpoint (LightningCLI; --config experiments/X.yaml)",
                   _lightning("fit")),
    "validate": Command("score a checkpoint on its fold's validation speaker (LightningCLI, --ckpt_path)", _lightning("validate")),
    "test": Command("score a checkpoint on its fold's test speaker (LightningCLI, --ckpt_path)", _lightning("test")),
    "cv": Command("one experiment over every fold (and seed), each fold a fit in its own process; resumable", _cmd_cv),
    "table1": Command("Table I: AlexNet / VGG16 baselines, cross-validated -> results/table1.md", _cmd_table(1)),
    "table2": Command("Table II: FCN + attention, FCN + mean pooling, best baseline -> results/table2.md", _cmd_table(2)),
    "ablation": Command("a recipe ablation: best-epoch validation UA of each setting's cv folder, one line each",
                        _cmd_ablation),
    "predict": Command("class probabilities of audio files or folders (--timeline: per window over time)", _cmd_predict),
    "export": Command("a checkpoint as ONNX or TorchScript, with model.json (classes, spectrogram settings)", _cmd_export),
    "evaluate": Command("score a checkpoint on any labelled corpus: WA, UA, F1, per speaker and session", _cmd_evaluate),
    "make-call": Command("a test call from one held-out speaker's utterances and pauses, with reference segments",
                         _cmd_make_call),
    "evaluate-timeline": Command("score a predict --timeline against reference segments (CSV / RTTM): EDER, majority",
                                 _cmd_evaluate_timeline),
    "manifest": Command("a corpus folder -> CSV manifest, with counts of what was kept and left out", _cmd_manifest),
    "demo-data": Command("write the synthetic demo corpus in IEMOCAP's layout (--planted: the attention study's)",
                         _cmd_demo_data),
    "emobox-demo": Command("write the demo corpus and its EmoBox-format fold folder", _cmd_emobox_demo),
    "figure4": Command("Figure 4: spectrograms and attention of a checkpoint's test utterances -> results/figure4.png",
                       _cmd_figure4),
    "attention-check": Command("how much attention falls inside each planted region, for one checkpoint", _cmd_attention_check),
    "attention-study": Command("the planted corpus, three models trained on one fold, and their attention check",
                               _cmd_attention_study),
}

DEBUG_FLAG, DEBUG_ENV = "--debug", "SER_FCN_DEBUG"  # show the traceback of a user error


def run_cli(args: list[str] | None = None) -> SERCLI:
    subcommands = SERCLI.subcommands()
    # `main` passes the words of sys.argv explicitly (less --debug): not the mistake this warns of
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        return SERCLI(
            SERModule,
            SERDataModule,
            save_config_callback=_SaveConfig,
            save_config_kwargs={"config_filename": CONFIG},
            auto_configure_optimizers=False,
            parser_kwargs={s: {"default_config_files": [str(BASE_CONFIG)]} for s in subcommands},
            args=args,
        )
    finally:
        _finish_wandb()


def _finish_wandb() -> None:
    """Close this command's W&B run, so its offline folder is complete and the next run is new."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


def _prog() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name == "ser-fcn" else "python -m ser_fcn"


def usage() -> str:
    """What `python -m ser_fcn --help` prints: every command of COMMANDS with its one line."""
    prog, width = _prog(), max(map(len, COMMANDS)) + 2
    lines = [f"usage: {prog} <command> [options]", "",
             "Speech emotion recognition with an attention-based fully convolutional network (Zhang et al. 2018).",
             "", "commands:"]
    lines += [f"  {name:<{width}}{cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", f"`{prog} <command> --help` lists a command's options. A mistake in the input (a corpus, manifest,",
              f"audio, config or weights file) is reported as one `error:` line; {DEBUG_FLAG} (or {DEBUG_ENV}=1) shows",
              "its traceback. More: README.md and docs/."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    words = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in words or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    words = [w for w in words if w != DEBUG_FLAG]
    if not words or words[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if words else sys.stderr)
        raise SystemExit(0 if words else 2)
    if words[0] not in COMMANDS and not words[0].startswith("-"):
        raise SystemExit(f"error: unknown command {words[0]!r}; `{_prog()} --help` lists them")
    try:
        if words[0] in COMMANDS:
            COMMANDS[words[0]].run(words[1:])
        else:  # options before the command: LightningCLI's own parser answers
            run_cli(words)
    except UserError as err:
        if debug:
            raise
        raise SystemExit(f"error: {err}") from None
