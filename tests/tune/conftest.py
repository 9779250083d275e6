"""One real search, shared by the trial-table, CLI, report, promotion and pull tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FinishedSearch:
    name: str
    storage: str
    path: str          # the experiment directory
    results: object    # Ray's ResultGrid


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory, tiny_model_dir, small_data_dir) -> FinishedSearch:
    """A finished 8-trial, 3-epoch search of the tiny model on the small data (~50 s)."""
    import ray

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings

    storage = tmp_path_factory.mktemp("runs")
    settings = SearchSettings(
        name="shared", space=str(REPO / "search_spaces" / "default.yaml"), storage=str(storage), trials=8,
        model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), max_epochs=3,
    )
    started_ray = not ray.is_initialized()
    results = run_search(settings)
    if started_ray:
        ray.shutdown()  # the tests below only read what the search wrote
    return FinishedSearch(settings.name, str(storage), settings.experiment_path, results)


@pytest.fixture(scope="session")
def search_tables(finished_search):
    """The search's trial tables, collected once."""
    from tune.tables import collect

    return collect(finished_search.path)


@pytest.fixture(scope="session")
def promoted(finished_search, tmp_path_factory):
    """The search's best trial promoted once to a fresh local registry (gates off: random model)."""
    from tune.promote import promote

    registry = tmp_path_factory.mktemp("registry")
    result = promote(finished_search.name, str(registry), storage=finished_search.storage, min_entity_ratio=0.0)
    return registry, result
