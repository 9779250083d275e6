"""One real search, shared by the trial-table, CLI, report, promotion and pull tests."""

from __future__ import annotations

import os
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
def finished_search(tmp_path_factory, tiny_model_dir, small_data_dir, s3_endpoint) -> FinishedSearch:
    """A finished 8-trial, 3-epoch search of the tiny model on the small data (~30 s).

    The Ray it starts stays up for the tests after it: each start costs about 7 s of the
    suite. It starts after s3_endpoint, so its workers reach the test S3 server too and
    the bucket tests run on it as well.
    """
    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings

    storage = tmp_path_factory.mktemp("runs")
    settings = SearchSettings(
        name="shared", space=str(REPO / "search_spaces" / "default.yaml"), storage=str(storage), trials=8,
        model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), max_epochs=3,
    )
    results = run_search(settings)
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


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 endpoint on localhost (moto's server) that every process of the test
    session reaches through ``AWS_ENDPOINT_URL``, pyarrow's and boto's own setting.

    Ray's workers write checkpoints to storage themselves and take their environment from
    the Ray that starts them, so a Ray already running in this process is shut down first
    (the next search starts one that inherits the endpoint).
    """
    import ray
    from moto.server import ThreadedMotoServer

    if ray.is_initialized():
        ray.shutdown()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, request) -> str:
    """``s3://`` storage in a fresh bucket of the session's S3 endpoint."""
    import re
    import uuid

    import boto3

    bucket = f"nerkit-{re.sub(r'[^a-z0-9]', '-', request.node.name.lower())[:30].strip('-')}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/searches"
