"""Checks every ``cluster*.yaml`` at the repository root the way ``ray up`` would.

``ray up`` (ray.autoscaler._private.commands._bootstrap_config) loads the YAML, runs
``prepare_config`` (merge with the provider's defaults.yaml, merge setup commands, fill
per-node-type min/max workers; for the ``local`` provider, build its single node type),
asks the provider to fill in missing node resources, runs ``validate_config``
(ray-schema.json via jsonschema plus Ray's cross-field rules) and lets the provider
bootstrap cloud resources. The two provider steps call the cloud API (AWS: boto3), so
these tests run the rest, from the installed Ray, and require resources to be declared
so the first provider step has nothing to fill in. No network, no credentials.

Each policy check is a pure helper returning a list of problems; its test asserts that
the real file is clean and that a deliberately broken copy is not, so no check can pass
vacuously. Likewise the validator must reject broken copies, not only accept the files.
"""

import copy
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import InvalidRequirement, Requirement

REPO = Path(__file__).resolve().parents[2]
CLUSTER_FILES = sorted(REPO.glob("cluster*.yaml"))
LOCALHOST = {"127.0.0.1", "localhost", "::1"}
# Keys that name a credential. Compared against whole key names (case-insensitive), so
# AWS's IMDS setting `HttpTokens: required` is not mistaken for a token.
SECRET_KEYS = re.compile(
    r"(?i)^(aws_access_key_id|aws_secret_access_key|aws_session_token|.*secret.*|"
    r".*password.*|passwd|.*token|api_key|access_key)$"
)
# Values that are a credential wherever they appear, comments included.
SECRET_VALUES = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),  # an inline key, not a path
    re.compile(
        r"(?i)\b(aws_access_key_id|aws_secret_access_key|aws_session_token|password|"
        r"secret|token)\s*=\s*\S"
    ),  # `export AWS_SECRET_ACCESS_KEY=...` in a setup command
]


def _ray_up_config(raw: dict) -> dict:
    """Runs the offline part of `ray up` on a parsed cluster YAML; raises if invalid.

    The only place this module touches Ray's launcher internals, which move between
    Ray versions.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _project_ray_pin() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for dependency in pyproject["project"]["dependencies"]:
        requirement = Requirement(dependency)
        if requirement.name == "ray":
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"pyproject.toml must pin ray, got {requirement}"
            return spec.version
    raise AssertionError("pyproject.toml does not depend on ray")


def _pip_requirements(command: str) -> list[Requirement]:
    """The requirement specifiers of every `pip install` in one shell command."""
    requirements = []
    words = shlex.split(command.replace(";", " ; "))
    for i, word in enumerate(words):
        if word != "install" or i == 0 or not words[i - 1].endswith("pip"):
            continue
        for arg in words[i + 1 :]:
            if arg in {";", "&&", "||", "|"}:
                break
            if arg.startswith("-"):
                continue  # options; paths (`-e ~/nerkit`) fail to parse below
            try:
                requirements.append(Requirement(arg))
            except InvalidRequirement:
                continue
    return requirements


def _setup_command_lists(config: dict) -> dict[str, list[str]]:
    """What each kind of node runs to set up, after prepare_config merged the lists."""
    lists = {
        "head": config["head_setup_commands"],
        "worker": config["worker_setup_commands"],
    }
    for name, node_type in config["available_node_types"].items():
        if "worker_setup_commands" in node_type:  # a per-type list replaces the global
            lists[f"worker:{name}"] = node_type["worker_setup_commands"]
    return lists


def _ray_version_problems(config: dict, pin: str) -> list[str]:
    problems = []
    for node, commands in _setup_command_lists(config).items():
        versions = set()
        for command in commands:
            for requirement in _pip_requirements(command):
                if requirement.name != "ray":
                    continue
                specs = list(requirement.specifier)
                if len(specs) != 1 or specs[0].operator != "==":
                    problems.append(f"{node}: unpinned `{requirement}` in {command!r}")
                else:
                    versions.add(specs[0].version)
        if versions != {pin}:
            problems.append(f"{node}: setup installs ray {sorted(versions)}, pin is {pin}")
    return problems


def _ray_start_flags(command: str) -> dict[str, str] | None:
    """`--flag=value` / `--flag value` options of a `ray start` command, else None."""
    words = shlex.split(command.replace(";", " ; "))
    for i in range(len(words) - 1):
        if words[i] == "ray" and words[i + 1] == "start":
            flags, rest = {}, words[i + 2 :]
            for j, word in enumerate(rest):
                if word in {";", "&&", "||"}:
                    break
                if word.startswith("--"):
                    name, eq, value = word[2:].partition("=")
                    if not eq:
                        nxt = rest[j + 1] if j + 1 < len(rest) else ""
                        value = "" if nxt.startswith("--") else nxt
                    flags[name] = value
            return flags
    return None


def _head_start_flags(config: dict) -> list[dict[str, str]]:
    starts = [_ray_start_flags(c) for c in config["head_start_ray_commands"]]
    return [flags for flags in starts if flags is not None and "head" in flags]


def _head_resources(config: dict) -> dict[str, float | None]:
    """CPU/GPU the head advertises; None means Ray detects the machine's own."""
    (flags,) = _head_start_flags(config) or [{}]
    advertised = {
        "CPU": float(flags["num-cpus"]) if "num-cpus" in flags else None,
        "GPU": float(flags["num-gpus"]) if "num-gpus" in flags else None,
    }
    # Cloud providers pass the node type's `resources` to `ray start` as
    # RAY_OVERRIDE_RESOURCES, which wins over the flags; `local` passes nothing.
    if config["provider"]["type"] != "local":
        head_type = config["available_node_types"][config["head_node_type"]]
        for name in advertised:
            if name in head_type["resources"]:
                advertised[name] = float(head_type["resources"][name])
    return advertised


def _head_trial_problems(config: dict) -> list[str]:
    return [
        f"head advertises {name}={count} (None = all it has); trials could run there"
        for name, count in _head_resources(config).items()
        if count != 0
    ]


def _worker_gpu_problems(config: dict) -> list[str]:
    if config["provider"]["type"] == "local":
        # One node type for all hosts: GPUs are whatever `ray start` detects on each.
        starts = [_ray_start_flags(c) or {} for c in config["worker_start_ray_commands"]]
        return [
            f"worker start sets --num-gpus={f['num-gpus']}"
            for f in starts
            if "num-gpus" in f and float(f["num-gpus"]) < 1
        ]
    workers = {
        name: node_type
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"]
    }
    if not workers:
        return ["no worker node types"]
    return [
        f"worker type {name} declares GPU={t['resources'].get('GPU', 0)}"
        for name, t in workers.items()
        if t["resources"].get("GPU", 0) < 1 or t["max_workers"] < 1
    ]


def _dashboard_problems(config: dict) -> list[str]:
    heads = _head_start_flags(config)
    if len(heads) != 1:
        return [f"expected one `ray start --head`, found {len(heads)}"]
    host = heads[0].get("dashboard-host")
    if host not in LOCALHOST:
        return [f"--dashboard-host is {host!r}; must be explicit and one of {LOCALHOST}"]
    return []


def _open_to_world_problems(config: dict) -> list[str]:
    """Extra security-group rules that open anything but SSH to the internet."""
    problems = []
    rules = config["provider"].get("security_group", {}).get("IpPermissions", [])
    for rule in rules:
        world = [r.get("CidrIp") for r in rule.get("IpRanges", [])] + [
            r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])
        ]
        ssh_only = (rule.get("FromPort"), rule.get("ToPort")) == (22, 22)
        if {"0.0.0.0/0", "::/0"} & set(world) and not ssh_only:
            problems.append(f"rule open to the world: {rule}")
    return problems


def _secret_problems(text: str) -> list[str]:
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_KEYS.match(str(key)):
                    problems.append(f"credential-like key {where}{key}")
                walk(value, f"{where}{key}.")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(yaml.safe_load(text), "")
    for pattern in SECRET_VALUES:
        for match in pattern.finditer(text):
            problems.append(f"credential-like text: {match.group(0)[:24]}...")
    return problems


def _mount_problems(config: dict) -> list[str]:
    """`pip install -e DIR` needs pyproject.toml and every package synced into DIR."""
    targets = {
        arg
        for commands in _setup_command_lists(config).values()
        for command in commands
        for arg in re.findall(r"pip install -e (\S+)", command)
    }
    if len(targets) != 1:
        return [f"expected one `pip install -e DIR`, found {sorted(targets)}"]
    (target,) = targets
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = ["pyproject.toml"] + sorted({p.rstrip("*").rstrip(".") for p in packages})
    mounts = config["file_mounts"]
    problems = []
    for name in needed:
        local = mounts.get(f"{target}/{name}")
        if local is None:
            problems.append(f"file_mounts lacks {target}/{name}")
        elif (REPO / local).resolve() != (REPO / name).resolve():
            problems.append(f"{target}/{name} is synced from {local}, not ./{name}")
    return problems


@pytest.fixture(params=CLUSTER_FILES, ids=lambda p: p.name)
def cluster_file(request) -> Path:
    return request.param


# Both the cloud and the on-prem variant exist, so the parametrized tests are not empty.
def test_cluster_files_found():
    assert {p.name for p in CLUSTER_FILES} >= {"cluster.yaml", "cluster-onprem.yaml"}


# The file passes Ray's own preparation and schema/cross-field validation.
def test_ray_accepts_config(cluster_file):
    config = _ray_up_config(_load(cluster_file))
    assert config["cluster_name"]


# A wrong type for max_workers is rejected: by the schema, or on-prem already by the
# local provider's prepare step, which compares it with the host count (as in `ray up`).
def test_ray_rejects_wrong_max_workers_type(cluster_file):
    raw = _load(cluster_file)
    local = raw["provider"]["type"] == "local"
    with pytest.raises(TypeError if local else jsonschema.ValidationError):
        _ray_up_config(raw | {"max_workers": "ten"})


# The schema rejects a wrong type for every provider.
def test_ray_rejects_wrong_idle_timeout_type(cluster_file):
    broken = _load(cluster_file) | {"idle_timeout_minutes": "ten"}
    with pytest.raises(jsonschema.ValidationError, match="'ten'"):
        _ray_up_config(broken)


# The same validator rejects an unknown top-level key (a typo of a real one).
def test_ray_rejects_unknown_top_level_key(cluster_file):
    broken = _load(cluster_file) | {"setup_command": ["true"]}
    with pytest.raises(jsonschema.ValidationError, match="setup_command"):
        _ray_up_config(broken)


# Cloud node types declare CPU/GPU, so `ray up` never has to ask the EC2 API for them.
def test_cloud_node_types_declare_cpu_and_gpu(cluster_file):
    raw = _load(cluster_file)
    if raw["provider"]["type"] == "local":
        pytest.skip("the local provider detects resources on each host")
    for name, node_type in raw["available_node_types"].items():
        assert {"CPU", "GPU"} <= set(node_type["resources"]), name


# Every node installs exactly the Ray that pyproject.toml pins and this driver runs.
def test_setup_installs_pinned_ray(cluster_file):
    pin = _project_ray_pin()
    assert ray.__version__ == pin, f"this Ray is {ray.__version__}, pyproject pins {pin}"
    config = _ray_up_config(_load(cluster_file))
    assert _ray_version_problems(config, pin) == []
    config["worker_setup_commands"] = [
        c.replace(f"=={pin}", "==2.9.3") for c in config["worker_setup_commands"]
    ]
    assert _ray_version_problems(config, pin)


# An unpinned `pip install ray` is reported, not silently accepted.
def test_unpinned_ray_install_is_reported():
    config = {
        "head_setup_commands": ['pip install "ray[default,tune]==2.60.0"'],
        "worker_setup_commands": ["pip install -U ray[default]"],
        "available_node_types": {},
    }
    assert any("unpinned" in p for p in _ray_version_problems(config, "2.60.0"))


# The head advertises 0 CPUs and 0 GPUs, so no trial can be scheduled on it.
def test_head_runs_no_trials(cluster_file):
    config = _ray_up_config(_load(cluster_file))
    assert _head_trial_problems(config) == []
    broken = copy.deepcopy(config)
    if config["provider"]["type"] == "local":
        broken["head_start_ray_commands"] = [
            c.replace(" --num-cpus=0", "") for c in config["head_start_ray_commands"]
        ]
    else:
        broken["available_node_types"][config["head_node_type"]]["resources"]["CPU"] = 8
    assert _head_trial_problems(broken)


# Every cloud worker type offers GPUs; on-prem workers leave GPU detection on.
def test_workers_have_gpus(cluster_file):
    config = _ray_up_config(_load(cluster_file))
    assert _worker_gpu_problems(config) == []
    broken = copy.deepcopy(config)
    if config["provider"]["type"] == "local":
        broken["worker_start_ray_commands"][-1] += " --num-gpus=0"
    else:
        types = broken["available_node_types"]
        worker = next(name for name in types if name != config["head_node_type"])
        types[worker]["resources"]["GPU"] = 0
    assert _worker_gpu_problems(broken)


# The dashboard binds to loopback only, also after Ray's defaults are merged in.
def test_dashboard_bound_to_localhost(cluster_file):
    raw = _load(cluster_file)
    assert _dashboard_problems(_ray_up_config(raw)) == []
    # Without our head_start_ray_commands Ray's provider defaults apply (AWS: 0.0.0.0).
    defaults_only = {k: v for k, v in raw.items() if k != "head_start_ray_commands"}
    assert _dashboard_problems(_ray_up_config(defaults_only))


# No security-group rule opens Ray's ports (6379, 8265, 10001, ...) to the internet.
def test_no_ray_port_open_to_world(cluster_file):
    config = _ray_up_config(_load(cluster_file))
    assert _open_to_world_problems(config) == []
    dashboard_to_world = {
        "IpProtocol": "tcp",
        "FromPort": 8265,
        "ToPort": 8265,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
    }
    config["provider"].setdefault("security_group", {})["IpPermissions"] = [
        dashboard_to_world
    ]
    assert _open_to_world_problems(config)


def test_each_aws_cluster_gets_its_own_security_group():
    # A fixed GroupName is looked up by name in the VPC and reused: side-by-side clusters
    # (`ray up cluster.yaml -n nerkit-alice`, `-n nerkit-bob`) shared one group, whose rule
    # admits all traffic between its members, GCS and Ray client ports included. Without
    # one, Ray names the group after the cluster.
    config = _load(REPO / "cluster.yaml")
    assert "GroupName" not in config["provider"].get("security_group", {})


def test_a_search_asking_no_gpu_on_a_cluster_that_launches_gpu_nodes_warns(tmp_path, caplog, local_ray):
    # cluster.yaml starts with no GPU (a head without any, GPU workers from 0), so the check
    # of the GPUs the cluster has said nothing, and its g5 nodes were launched for CPU-only
    # trials. The config `ray up` leaves on the head says what it can add: 8 x 1 + 2 x 4.
    from tune.cluster_checks import gpus_it_can_add, warn_if_gpus_unused
    from tune.settings import SearchSettings

    assert gpus_it_can_add(str(REPO / "cluster.yaml")) == 16
    assert gpus_it_can_add(str(REPO / "cluster-onprem.yaml")) == 0  # the local provider declares none
    assert gpus_it_can_add(str(tmp_path / "none.yaml")) == 0  # not a launched cluster's head
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray has GPUs now: the warning for GPUs it has is tests/tune/test_cluster.py's")
    caplog.clear()
    with caplog.at_level("WARNING", logger="tune.cluster_checks"):
        warn_if_gpus_unused(SearchSettings(name="x", space="default", gpus_per_trial=0.5),
                            bootstrap=str(REPO / "cluster.yaml"))
        assert "GPU" not in caplog.text
        warn_if_gpus_unused(SearchSettings(name="x", space="default"), bootstrap=str(REPO / "cluster.yaml"))
    assert "the cluster can add up to 16 GPU(s)" in caplog.text and "--gpus-per-trial is 0" in caplog.text


def test_data_shipped_in_the_jobs_working_dir_is_warned_about(caplog):
    # Ray unpacks --working-dir to a directory of one session; the search recorded the data
    # there, and a resume after `ray down` or a promote elsewhere failed with FileNotFoundError.
    from nerkit.data import DataConfig
    from tune.cluster_checks import warn_if_data_is_temporary

    unpacked = "/tmp/ray/session_2026-11-28_07-00-00_1/runtime_resources/working_dir_files/_ray_pkg_0123abcd/mydata"
    with caplog.at_level("WARNING", logger="tune.cluster_checks"):
        warn_if_data_is_temporary(DataConfig(path="/mnt/nfs/mydata"))
        assert not caplog.records
        warn_if_data_is_temporary(DataConfig(path=unpacked))
    assert f"the data ({unpacked}) is in the job's --working-dir" in caplog.text and "NFS" in caplog.text


# No credential-like key or value anywhere in the file, comments included.
def test_no_secrets(cluster_file):
    text = cluster_file.read_text()
    assert _secret_problems(text) == []
    fake_key_id = "AKIA" + "X" * 16
    leaked = text + f"\nmetadata:\n  aws_secret_access_key: {fake_key_id}\n"
    assert len(_secret_problems(leaked)) == 2
    assert _secret_problems(text + "\n# export AWS_SESSION_TOKEN=abc\n")


# The synced files are exactly what `pip install -e` needs, taken from this checkout.
def test_file_mounts_cover_editable_install(cluster_file):
    config = _ray_up_config(_load(cluster_file))
    for local in config["file_mounts"].values():
        assert (REPO / local).exists(), f"{cluster_file.name} mounts missing {local}"
    assert _mount_problems(config) == []
    tune_mount = next(k for k in config["file_mounts"] if k.endswith("/tune"))
    del config["file_mounts"][tune_mount]
    assert _mount_problems(config)


def test_search_spaces_are_synced_beside_the_package(cluster_file):
    # `nerkit search` on the head (ray exec) defaults to <install root>/search_spaces/
    # default.yaml: the spaces must be synced there, as the package is.
    config = _ray_up_config(_load(cluster_file))
    target = next(k for k in config["file_mounts"] if k.endswith("/tune")).rsplit("/", 1)[0]
    assert config["file_mounts"].get(f"{target}/search_spaces") == "./search_spaces"


def test_a_half_made_venv_is_made_again(cluster_file):
    # `test -d` would skip a venv left without pip (no ensurepip, a dpkg lock at first boot)
    # on every later `ray up`.
    commands = [c for cs in _setup_command_lists(_ray_up_config(_load(cluster_file))).values() for c in cs]
    venv = [c for c in commands if "-m venv" in c]
    assert venv and all(c.startswith("test -x ~/nerkit-venv/bin/pip ||") for c in venv)
