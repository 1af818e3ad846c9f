# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
UV := $(PYTHON) -m uv
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1
# make table1 / table2: PROFILE=auto (full with a CUDA GPU, else cpu), cpu (demo corpus, every
# row to convergence on a 2-core CPU), quick (a smoke test, minutes) or full (the paper's
# settings); IEMOCAP=/path/IEMOCAP_full_release; WEIGHTS_DIR holding alexnet.pth / vgg16.pth
PROFILE ?= auto
IEMOCAP ?=
WEIGHTS_DIR ?=
# PROTOCOL=common: all sessions, exc as hap (experiments/protocols/common.yaml) with published
# reference rows; EMOBOX=<EmoBox data/<corpus> folder> AUDIO_ROOT=<its audio folder>: EmoBox's folds
FOLDS ?= $(if $(EMOBOX)$(filter-out iemocap,$(CORPUS)),,5)
PROTOCOL ?= paper
EMOBOX ?=
AUDIO_ROOT ?=
# make table2 CORPUS=emodb EMODB=<EmoDB folder> (or CORPUS=ravdess RAVDESS=<its folder>): the comparison on
# that corpus over all its leave-one-speaker-out folds -> results/<corpus>.md; PROFILE=auto is real_speech there
CORPUS ?= iemocap
EMODB ?=
RAVDESS ?=
CORPUS_ROOT = $(if $(filter emodb,$(CORPUS)),$(EMODB),$(if $(filter ravdess,$(CORPUS)),$(RAVDESS)))
# TABLE_EXTRA: more words for every fold's fit, e.g. TABLE_EXTRA="--model.net.init_args.weights null"
TABLE_EXTRA ?=
# SEEDS=3: train every fold with the seeds 0, 1, 2 (more pairs for the tables' paired tests)
SEEDS ?= 1
TABLE_ARGS = --profile $(PROFILE) --protocol $(PROTOCOL) $(if $(FOLDS),--folds $(FOLDS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(IEMOCAP),--iemocap $(IEMOCAP)) $(if $(WEIGHTS_DIR),--weights-dir $(WEIGHTS_DIR)) $(if $(EMOBOX),--emobox $(EMOBOX) --audio-root $(AUDIO_ROOT)) $(if $(filter-out iemocap,$(CORPUS)),--corpus $(CORPUS) $(if $(CORPUS_ROOT),--root $(CORPUS_ROOT))) $(TABLE_EXTRA)

.PHONY: install demo test test-slow test-all bench table1 table2 figure4 attention-check clean

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

demo: install  ## build the demo corpus, train FCN+attention on it, print test WA/UA
	$(PY) -m ser_fcn fit --config experiments/demo.yaml

test: install  ## the test suite, without the slow end-to-end runs (DDP, kill-and-resume, a real cv fold, the bench)
	$(PY) -m pytest -m "not slow" -q

test-slow: install  ## only the tests marked slow (CI runs them after `make test`)
	$(PY) -m pytest -m slow -q

test-all: install  ## everything: make test + make test-slow
	$(PY) -m pytest -q

figure4: install  ## Figure 4: spectrograms and attention of the newest demo checkpoint -> results/figure4.png
	$(PY) -m ser_fcn figure4

# make attention-check: ATTN_UPS utterances per speaker of the planted corpus (default: attention_study's),
# ATTN_MODELS to train
ATTN_UPS ?=
ATTN_MODELS ?= fcn_attn fcn_meanpool alexnet_random
attention-check: install  ## planted corpus; FCN+attention, mean pooling, AlexNet on ONE fold -> results/attention_check.md
	$(PY) -m ser_fcn attention-study $(if $(ATTN_UPS),--utterances_per_speaker $(ATTN_UPS)) --models $(ATTN_MODELS)

table1: install  ## Table I: AlexNet / VGG16 baselines, 5-fold CV (resumable) -> results/table1.md
	$(PY) -m ser_fcn table1 $(TABLE_ARGS)

table2: install  ## Table II: FCN+attention, FCN mean pooling, best baseline -> results/table2.md (CORPUS=emodb EMODB=<dir>: results/emodb.md)
	$(PY) -m ser_fcn table2 $(TABLE_ARGS)

bench: install  ## performance goals on this machine -> results/bench.md, results/bench.json (~10 min; --quick: seconds)
	$(PY) -m benchmarks

clean:
	rm -rf runs .pytest_cache
