import shutil

import pytest

from ser_fcn.corpora.demo_corpus import generate_demo_corpus


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small demo corpus in IEMOCAP's layout, shared by the whole test session (read-only)."""
    return generate_demo_corpus(tmp_path_factory.mktemp("demo"), utterances_per_speaker=24, seed=1, progress=False)


@pytest.fixture
def demo_corpus_copy(demo_corpus, tmp_path):
    """A private copy of the demo corpus root, for tests that damage it."""
    dst = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(demo_corpus.root, dst)
    return dst


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the feature cache and demo corpora of every test (module-scoped fixtures too)
    out of the user's ~/.cache, and W&B offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_FCN_CACHE", str(tmp_path_factory.getbasetemp() / "ser_fcn_cache"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DISABLE_GIT", "true")
        yield
