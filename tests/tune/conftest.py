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


# moto's S3 app alone, served from its own process. moto's ThreadedMotoServer dispatches
# every request among all of moto's services, listing its package directory each time
# under one lock, and it ran in this process, holding the GIL the in-process search
# drivers need: py-spy counted about 6 s of that dispatch in the S3 kill test alone.
# ThreadedMotoServer is built from these same two pieces of moto.
_S3_SERVER = """
from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

server = make_server("127.0.0.1", 0, create_backend_app("s3"), threaded=True, request_handler=MotoRequestHandler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A real S3 endpoint on localhost (moto's S3 server) that every process of the test
    session reaches through ``AWS_ENDPOINT_URL``, pyarrow's and boto's own setting.

    Ray's workers write checkpoints to storage themselves and take their environment from
    the Ray that starts them, so a Ray already running in this process is shut down first
    (the next search starts one that inherits the endpoint). The server's request log is
    ``s3-server.log`` in pytest's temporary directory.
    """
    import subprocess
    import sys

    import ray

    if ray.is_initialized():
        ray.shutdown()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    log = tmp_path_factory.mktemp("s3-server") / "s3-server.log"
    with open(log, "wb") as err:
        server = subprocess.Popen([sys.executable, "-c", _S3_SERVER], stdout=subprocess.PIPE, stderr=err,
                                  env={**os.environ, **env})
    port = server.stdout.readline().strip()
    if not port.isdigit():
        server.kill()
        raise RuntimeError(f"moto's S3 server did not start: {log.read_text()[-2000:]}")
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{int(port)}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def local_ray(s3_endpoint):
    """A local Ray in this process, started as a search starts one (tune.ray_connect.init_ray)
    unless one is up, and left up: the next search uses it (each start and shutdown costs
    the suite about 7 s). After s3_endpoint, so its workers reach the test S3 server."""
    import ray

    from tune.ray_connect import init_ray

    if not ray.is_initialized():
        init_ray(None)


@pytest.fixture
def s3_storage(s3_endpoint, request) -> str:
    """``s3://`` storage in a fresh bucket of the session's S3 endpoint."""
    import re
    import uuid

    import boto3

    bucket = f"nerkit-{re.sub(r'[^a-z0-9]', '-', request.node.name.lower())[:30].strip('-')}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/searches"


@pytest.fixture
def one_thread():
    """Train on one CPU thread: on a shared 2-core box two torch threads run ~10× slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
