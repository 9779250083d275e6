"""Search-space loading: the shipped files load; bad files fail naming file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune.space_file import load_space

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


class _Trial:
    """The subset of optuna.Trial that define-by-run sampling uses, with fixed answers."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def suggest_float(self, name, low, high, log=False):
        self.asked.append(name)
        return self.answers.get(name, low)

    def suggest_int(self, name, low, high, step=1):
        self.asked.append(name)
        return self.answers.get(name, low)

    def suggest_categorical(self, name, values):
        self.asked.append(name)
        return self.answers.get(name, values[0])


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_load(path):
    # Every shipped space validates and every setting in it is documented by a comment: on
    # its own line, or on the comment line(s) right above it (a baseline's params line is
    # explained by its name line).
    space = load_space(path)
    assert space.params
    undocumented, previous = [], "#"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text:
            previous = ""
            continue
        explained = previous.startswith("#") or (text.startswith("params:") and previous.startswith("- name:")
                                                 and "#" in previous)
        if not text.startswith("#") and "#" not in text and not explained:
            undocumented.append(f"{path.name}:{number}: {text}")
        previous = text
    assert not undocumented, undocumented


def test_shipped_recipes_are_the_ones_the_readme_states():
    # seed_recipe.yaml and default.yaml's baselines are the team's recipe: seed weights,
    # O 0.5, boost 3.0, CE, lr 3e-5, batch 16, 15 epochs, never stopped by the guard.
    recipe = load_space(SPACES / "seed_recipe.yaml")
    assert recipe.base == {"weight_strategy": "seed", "o_weight": 0.5, "entity_boost": 3.0, "loss": "ce",
                           "batch_size": 16}
    assert [(p.name, p.kind, p.value) for p in recipe.params] == [("learning_rate", "fixed", 3e-5)]
    assert recipe.budget.max_epochs == 15 and recipe.budget.grace_epochs == 15 and not recipe.guard.enabled
    baselines = {b.name: b.params for b in load_space(SPACES / "default.yaml").baselines}
    assert baselines == {
        "team-recipe": {"weight_strategy": "seed", "o_weight": 0.5, "entity_boost": 3.0, "loss": "ce",
                        "learning_rate": 3e-5, "batch_size": 16},
        "plain-ce": {"weight_strategy": "none", "o_weight": 1.0, "entity_boost": 1.0, "loss": "ce",
                     "learning_rate": 5e-5, "batch_size": 16},
    }


def test_default_space_searches_what_researchers_asked_for():
    # O weight, entity boost, focal gamma, lr and batch size are all searched, baselines enqueued.
    space = load_space(SPACES / "default.yaml")
    assert {"o_weight", "entity_boost", "gamma", "learning_rate", "batch_size"} <= set(space.searched)
    assert [b.name for b in space.baselines] == ["team-recipe", "plain-ce"]


def test_gamma_is_sampled_only_for_focal_loss():
    # The conditional parameter is suggested only when its condition holds.
    space = load_space(SPACES / "default.yaml")
    ce = _Trial({"loss": "ce"})
    space.sample(ce)
    assert "gamma" not in ce.asked
    focal = _Trial({"loss": "focal"})
    assert space.sample(focal)["gamma"] == 0.5
    assert "gamma" in focal.asked


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def test_a_condition_on_two_parameters_needs_both(tmp_path):
    # `when` with two keys is an AND: gamma is sampled for focal loss with seed weights
    # only, not as soon as one of its conditions holds.
    space = load_space(_write(tmp_path, "params:\n  loss: {type: choice, values: [ce, focal]}\n"
                                        "  weight_strategy: {type: choice, values: [none, seed]}\n"
                                        "  gamma: {type: uniform, low: 0.5, high: 3.0,"
                                        " when: {loss: focal, weight_strategy: seed}}\n"))
    for loss, strategy, sampled in (("focal", "seed", True), ("focal", "none", False), ("ce", "seed", False)):
        trial = _Trial({"loss": loss, "weight_strategy": strategy})
        space.sample(trial)
        assert ("gamma" in trial.asked) == sampled, (loss, strategy)


def test_a_fixed_parameter_is_returned_only_where_its_condition_holds(tmp_path):
    # The sampler returns fixed values beside the suggested ones; a fixed gamma conditioned
    # on focal loss must not reach a ce trial's config.
    from tune.space import Sampler

    space = load_space(_write(tmp_path, "params:\n  loss: {type: choice, values: [ce, focal]}\n"
                                        "  gamma: {type: fixed, value: 2.0, when: {loss: focal}}\n"))
    assert Sampler(space)(_Trial({"loss": "ce"})) == {}
    assert Sampler(space)(_Trial({"loss": "focal"})) == {"gamma": 2.0}


@pytest.mark.parametrize("kind, low, high, step, values", [
    ("loguniform", 1e-5, 1e-3, None, None),
    ("uniform", 0.0, 0.2, None, None),
    ("int", 8, 64, 8, None),
    ("choice", None, None, None, ("ce", "focal")),
], ids=["loguniform", "uniform", "int-step", "choice"])
def test_suggest_samples_the_distribution_the_parameter_declares(kind, low, high, step, values):
    # Param.distribution() rebuilds finished trials for Optuna's parameter importances, so
    # Param.suggest() must draw from that same distribution: a loguniform range on a log
    # scale, an int range on its step (not off the grid the space declares).
    import optuna

    from tune.space import Param

    name = {"loguniform": "learning_rate", "uniform": "warmup_ratio", "int": "batch_size", "choice": "loss"}[kind]
    param = Param(name, kind, low, high, step, values)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        value = param.suggest(trial)
        assert trial.distributions[name] == param.distribution()
        assert param.contains(value), value


def test_zero_is_allowed_where_a_setting_must_be_non_negative(tmp_path):
    # gamma 0 (focal loss that is plain CE) and warmup_ratio 0 are valid values: only
    # negatives are refused for these settings, unlike the > 0 weights and rates.
    space = load_space(_write(tmp_path, "params:\n  loss: focal\n"
                                        "  gamma: {type: choice, values: [0, 2], when: {loss: focal}}\n"
                                        "  warmup_ratio: {type: uniform, low: 0.0, high: 0.2}\n"))
    assert [p.name for p in space.params] == ["loss", "gamma", "warmup_ratio"]
    assert space.params[1].values == (0, 2) and space.params[2].low == 0.0


def test_a_loguniform_range_from_zero_is_refused_at_load(tmp_path):
    # weight_decay may be 0, but a log scale cannot start there: refused at the file's line
    # before Ray starts, not as an error inside Optuna in every trial.
    path = _write(tmp_path, "params:\n  weight_decay: {type: loguniform, low: 0, high: 0.1}\n")
    with pytest.raises(ValueError, match=r":2: params.weight_decay.low: low is 0, but a loguniform range must be > 0"
                                         r".*start it above 0 \(e.g. 0.0001\), or use type: uniform"):
        load_space(path)


@pytest.mark.parametrize(
    "text, line, needle",
    [
        ("params:\n  o_weight: {type: loguniform, low: 1.0, high: 0.5}\n", 2, "empty range"),
        ("params:\n  o_weight: {type: uniform, low: -1.0, high: 0.5}\n", 2, "must be > 0"),
        ("params:\n  learning_rate: {type: loguniform, low: 1.0e-5, hgih: 1.0e-3}\n", 2, "unknown key 'hgih'"),
        ("params:\n  lr: {type: uniform, low: 0.1, high: 0.5}\n", 2, "unknown or reserved"),
        ("params:\n  o_weight: {type: normal, low: 0.1, high: 0.5}\n", 2, "distribution type"),
        ("prams:\n  o_weight: 0.5\n", 1, "unknown section"),
        ("params:\n  batch_size: {type: choice, values: []}\n", 2, "non-empty list"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\nbudget:\n  max_epochs: 2\n  grace_epochs: 3\n", 5, "grace_epochs"),
        ("params:\n  loss: ce\n  gamma: {type: uniform, low: 0.5, high: 2.0, when: {loss: focal}}\n", 3, "not a possible value"),
        # One value: nothing to draw, and the summary called it searched.
        ("params:\n  o_weight: {type: choice, values: [0.5]}\n", 2, "has one value, so o_weight is not searched"),
        ("params:\n  learnig_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-3}\n", 2, "did you mean 'learning_rate'"),
        # A reserved setting is spelt right: no look-alike (max_weight) is offered for it.
        ("params:\n  max_length: {type: choice, values: [128, 256]}\n", 2, "'max_length'. Fix: use one of"),
        # The fix keeps the condition: `gamma: 2.0` would apply it to every trial.
        ("params:\n  loss: {type: choice, values: [ce, focal]}\n  gamma: {type: choice, values: [2.0], when: {loss: focal}}\n",
         3, "write `gamma: {type: fixed, value: 2.0, when: {loss: focal}}`"),
        # No positive example to give below a high of 0.
        ("params:\n  o_weight: {type: loguniform, low: -1, high: 0}\n", 2, "must be > 0. Fix: use type: uniform"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\nbaselines:\n  - name: b\n    params: {o_weight: 0.9}\n", 5, "outside the searched range"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\ncollapse_guard:\n  min_rise: 1.5\n", 4, "min_rise is 1.5"),
        # Every value a trial can get is checked here, at the file and line, before Ray
        # starts; else it would fail inside every trial on the cluster, retries included.
        ("params:\n  loss: {type: choice, values: [ce, focall]}\n", 2, "loss is 'focall', but must be one of"),
        ("params:\n  batch_size: {type: uniform, low: 8, high: 32}\n", 2, "batch_size is 8.0, but must be an integer"),
        ("base:\n  o_weight: 0.5\nparams:\n  entity_o_ratio: {type: uniform, low: 1, high: 4}\n", 4, "replaces o_weight"),
        ("params:\n  warmup_ratio: {type: uniform, low: 0.1, high: 2}\n", 2, "warmup_ratio is 2.0, but must be in [0, 1)"),
        ("params:\n  batch_size: {type: int, low: 8, high: 32, step: 0}\n", 2, "step is 0, but must be a number > 0"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: .inf}\n", 2, "high is inf, but must be a finite number"),
        ("params:\n  loss: {type: choice, values: [ce, focal]}\n  gamma: {type: uniform, low: 0.5, high: 2, when: focal}\n",
         3, "when is 'focal', but must be a mapping"),
        ("params: [x]\n", 1, "expected a mapping of parameter name to distribution"),
        ("base:\n  collapse_eps: 0.01\nparams:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\n", 2,
         "collapse_eps follows collapse_guard.eps in a search"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\nbaselines:\n  - name: b\n"
         "    params: {o_weight: 0.2, collapse_eps: 0.3}\n", 5, "'collapse_eps' is not a setting a baseline can give"),
        # The search tokenises its data once: what shapes it is not a trial's to choose.
        ("params:\n  label_all_subwords: {type: choice, values: [true, false]}\n", 2,
         "label_all_subwords changes the tokenised data"),
        ("params:\n  max_length: {type: choice, values: [64, 128]}\n", 2, "unknown or reserved"),
        ("base:\n  max_length: 64\nparams:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\n", 2,
         "max_length come from the command line"),
        ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\nbaselines:\n  - {name: b, params: {o_weight: 0.2}}\n"
         "  - {name: b, params: {o_weight: 0.3}}\n", 3, "baseline name 'b' is used twice"),
    ],
)
def test_bad_space_errors_name_file_line_and_key(tmp_path, text, line, needle):
    # Each mistake is reported with the file, the line of the offending key and what is allowed.
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as exc:
        load_space(path)
    msg = str(exc.value)
    assert f"{path}:{line}:" in msg
    assert needle in msg


def test_guard_min_rise_null_judges_the_ratio_alone(tmp_path):
    # `min_rise: null` turns the rising-probability exemption off; omitted, the default applies.
    base = "params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\n"
    assert load_space(_write(tmp_path, base + "collapse_guard: {min_rise: null}\n")).guard.min_rise is None
    assert load_space(_write(tmp_path, base)).guard.min_rise == 0.01
    # YAML reads 1e-2 (no dot) as a string; it is still the number it looks like.
    assert load_space(_write(tmp_path, base + "collapse_guard: {min_rise: 1e-2, eps: 5e-3}\n")).guard.min_rise == 0.01


def test_invalid_yaml_names_line(tmp_path):
    # Broken YAML syntax is a ValueError with the line, not a parser traceback.
    path = _write(tmp_path, "params:\n  o_weight: {type: uniform\n")
    with pytest.raises(ValueError, match=f"{path}:"):
        load_space(path)


def test_number_strings_in_a_space_are_numbers(tmp_path):
    # YAML reads 1e-5 (no dot) as a string; in numeric settings it is the number.
    space = load_space(_write(tmp_path, "base: {weight_decay: 1e-2}\n"
                                        "params:\n  learning_rate: {type: choice, values: [1e-5, 3e-5]}\n"))
    assert space.params[0].values == (1e-5, 3e-5) and space.base["weight_decay"] == 0.01


def test_bundled_spaces_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    # `--space search_spaces/ratio.yaml` (the README's example) used to work only from the
    # repository root; a bundled space's name works anywhere, and a miss lists them.
    from tune.space import BUNDLED_SPACES, resolve_space

    monkeypatch.chdir(tmp_path)
    for given in ("ratio", "ratio.yaml", "search_spaces/ratio.yaml"):
        assert resolve_space(given) == BUNDLED_SPACES / "ratio.yaml"
    (tmp_path / "ratio.yaml").write_text("x: 1\n")
    assert resolve_space("ratio.yaml") == tmp_path / "ratio.yaml"  # a file of that name wins
    with pytest.raises(ValueError, match=r"'nope.yaml': no such file.*'default', 'ratio', 'seed_recipe'"):
        resolve_space("nope.yaml")
    with pytest.raises(ValueError, match="no such file"):
        resolve_space("elsewhere/ratio.yaml")


def test_default_space_is_refused_with_the_fix_when_the_install_lacks_it(tmp_path, monkeypatch):
    # An install without search_spaces/ used to fail in `nerkit search` with a bare
    # "no such file" for a path the user never gave.
    import tune.space

    monkeypatch.setattr(tune.space, "DEFAULT_SPACE", tmp_path / "default.yaml")
    with pytest.raises(ValueError, match=r"default search space is not at .*default\.yaml.*give --space FILE"):
        tune.space.resolve_space(None)


def test_a_wheel_install_finds_the_bundled_spaces(tmp_path):
    # The spaces live at the repository root, outside the packages: a checkout or an editable
    # install finds them there, and a wheel (`pip install nerkit.whl`, no checkout) carries
    # them to <prefix>/share/nerkit/search_spaces, where `nerkit search` without --space and
    # `--space ratio` must still find them.
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig
    import zipfile

    from tune.space import BUNDLED_SPACES

    # Built from a copy: setuptools builds in the source tree, and its build/ there would
    # carry files since deleted into later wheels.
    repo, src = Path(__file__).resolve().parents[2], tmp_path / "src"
    src.mkdir()
    for part in ("pyproject.toml", "README.md", "nerkit", "tune", "search_spaces"):
        copy = shutil.copytree if (repo / part).is_dir() else shutil.copy2
        copy(repo / part, src / part, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree
                                           else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("nerkit-*.whl"))
    shipped = sorted(Path(n).name for n in zipfile.ZipFile(wheel).namelist() if "/share/nerkit/search_spaces/" in n)
    assert shipped == sorted(p.name for p in BUNDLED_SPACES.glob("*.yaml"))
    # A venv of its own (sys.prefix is where the data files go), nerkit from the wheel
    # only; its dependencies come from this environment's site-packages, whose .pth files
    # (this checkout's editable install among them) a path in a .pth does not run.
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    # --ignore-installed: without it pip uninstalls this environment's nerkit first.
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q",
                    "--prefix", str(env), str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Without PYTHONPATH: one naming a checkout would import tune from it, not the wheel.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(env / "bin" / "python"), "-c",
                          "import tune.space as s; print(s.__file__); print(s.resolve_space(None)); "
                          "print(s.resolve_space('ratio'))"],
                         check=True, capture_output=True, text=True, cwd=tmp_path, env=clean).stdout.split()
    shared = env / "share" / "nerkit" / "search_spaces"
    assert out == [str(site / "tune" / "space.py"), str(shared / "default.yaml"), str(shared / "ratio.yaml")]


#: A space's one searched parameter, for the mistakes below made in its other sections.
_LR = "params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"


@pytest.mark.parametrize("text, line, message", [
    # Valid alone, exclusive together: every trial failed inside Ray, and the tables after.
    ("params:\n  entity_o_ratio: {type: loguniform, low: 0.5, high: 30}\n"
     "  o_weight: {type: loguniform, low: 0.1, high: 1.0}\n", 3, "entity_o_ratio = 0.5 with o_weight = 0.1"),
    # A quoted "false" is a string: the guard stayed on.
    ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\ncollapse_guard:\n  enabled: 'false'\n", 4,
     "collapse_guard.enabled is 'false', but must be true or false"),
    # PyYAML keeps the last of two keys: the first params: section vanished.
    ("params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"
     "params:\n  batch_size: {type: choice, values: [8, 16]}\n", 3, "params is given twice (lines 1 and 3)"),
    ("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\nbudget:\n  max_epochs: .inf\n", 4,
     "budget.max_epochs is inf, but must be a finite number"),
    # A baseline's value off the int grid ran off it; gamma with loss ce lost the baseline's name.
    ("params:\n  batch_size: {type: int, low: 8, high: 32, step: 8}\nbaselines:\n"
     "  - {name: b, params: {batch_size: 12}}\n", 4, "outside the searched range"),
    ("params:\n  loss: {type: choice, values: [ce, focal]}\n"
     "  gamma: {type: uniform, low: 1.0, high: 3.0, when: {loss: [focal]}}\nbaselines:\n"
     "  - {name: b, params: {loss: ce, gamma: 2.0}}\n", 5, "sets 'gamma', which is searched only when loss in ['focal']"),
    ("params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\nbaselines:\n"
     "  - {name: b, params: {lernrate: 5.0e-5, learning_rate: 5.0e-5}}\n", 4, "'lernrate' is not a setting"),
    ("params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\nbaselines:\n"
     "  - {name: b, parms: {learning_rate: 5.0e-5}}\n", 4, "a baseline needs `name` and a `params` mapping"),
    # A drawn float never equals the listed value: gamma was never sampled.
    ("params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"
     "  gamma: {type: uniform, low: 1.0, high: 3.0, when: {learning_rate: [5.0e-5]}}\n", 3,
     "condition on 'learning_rate', a loguniform parameter"),
    # Falsy sections read as "left out": `collapse_guard: off` kept the guard on.
    (_LR + "collapse_guard: off\n", 3, "collapse_guard is false, but must be a mapping"),
    (_LR + "budget: 0\n", 3, "budget: expected a mapping, got int"),
    (_LR + "base: false\n", 3, "expected a mapping of TrainConfig settings, got bool"),
    (_LR + "baselines: 5\n", 3, "baselines is 5, but must be a list"),
    # Tracebacks (TypeError) before.
    ("params:\n  learning_rate: {type: [loguniform], low: 1.0e-5, high: 1.0e-4}\n", 2,
     "distribution type is ['loguniform']"),
    (_LR + "baselines:\n  - {name: b, params: {learning_rate: 5.0e-5}, 1: x, foo: y}\n", 4,
     "unknown key 1 in a baseline"),
    # Never active, so never searched, without a word.
    ("params:\n  loss: {type: choice, values: [ce, focal]}\n"
     "  gamma: {type: uniform, low: 0.5, high: 3.0, when: {loss: []}}\n", 3, "gamma can never be active"),
    ("params:\n  loss: {type: choice, values: [ce, focal]}\n"
     "  weight_strategy: {type: choice, values: [none, seed], when: {loss: focal}}\n"
     "  gamma: {type: uniform, low: 0.5, high: 3.0, when: {loss: ce, weight_strategy: seed}}\n", 4,
     "gamma can never be active: no value of 'loss' meets every condition"),
    # An empty name read as "no baseline" in the trial table; `name:` alone as 'None'.
    (_LR + "baselines:\n  - {name: '', params: {learning_rate: 5.0e-5}}\n", 4, "name is '', but must be"),
    (_LR + "baselines:\n  - {name: null, params: {learning_rate: 5.0e-5}}\n", 4, "name is None, but must be"),
    # 1 and 1.0 are one value: Optuna drew it twice as often.
    ("params:\n  o_weight: {type: choice, values: [1, 1.0]}\n", 2, "has duplicates"),
    (_LR + "collapse_guard: {grace: true}\n", 3, "collapse_guard.grace is True, but must be an integer"),
    # A base error names its own key's line, not base:'s.
    ("base:\n  seed: 1\n  smoothing: 3\n" + _LR, 3, "base.smoothing: smoothing is 3"),
    # Optuna narrowed 8..10 step 8 to [8] silently.
    ("params:\n  batch_size: {type: int, low: 8, high: 10, step: 8}\n", 2, "step 8 does not divide the range 8..10"),
])
def test_space_mistakes_found_by_review_name_their_line(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}:{line}:") and message in str(info.value), str(info.value)


def test_baseline_numbers_written_without_a_dot_are_numbers(tmp_path):
    # `5e-5` is a YAML string: it read as outside the searched range.
    space = load_space(_write(tmp_path, "params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"
                                        "baselines:\n  - {name: b, params: {learning_rate: 5e-5}}\n"))
    assert space.baselines[0].params == {"learning_rate": 5e-5}


@pytest.mark.parametrize("text", [
    # A baseline of a parameter conditioned on a fixed one (gamma when loss, fixed focal).
    "params:\n  loss: focal\n  gamma: {type: uniform, low: 1.0, high: 3.0, when: {loss: [focal]}}\n"
    "  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"
    "baselines:\n  - {name: b, params: {gamma: 2.0, learning_rate: 5.0e-5}}\n",
    # max_weight and entity_o_ratio exclude each other, but their conditions never hold together.
    "params:\n  weight_strategy: {type: choice, values: [none, inverse]}\n"
    "  max_weight: {type: choice, values: [2.0, 5.0], when: {weight_strategy: [inverse]}}\n"
    "  entity_o_ratio: {type: loguniform, low: 0.5, high: 30, when: {weight_strategy: [none]}}\n"
    "  smoothing: {type: uniform, low: 0.5, high: 1.0, when: {max_weight: [5.0]}}\n",
    # A baseline's `5e-5` against choices read as numbers.
    "params:\n  learning_rate: {type: choice, values: [1e-5, 5e-5]}\nbaselines:\n"
    "  - {name: b, params: {learning_rate: 5e-5}}\n",
])
def test_valid_spaces_the_pair_and_baseline_checks_accept(tmp_path, text):
    # Loaded whole: every parameter under its name and kind, every baseline with its values
    # (numbers as numbers, `5e-5` included).
    import yaml

    raw = yaml.safe_load(text)
    space = load_space(_write(tmp_path, text))
    kinds = {p.name: p.kind for p in space.params}
    assert set(kinds) == set(raw["params"])
    assert all(kinds[name] == (spec["type"] if isinstance(spec, dict) else kinds[name])
               for name, spec in raw["params"].items())
    assert [(b.name, b.params) for b in space.baselines] == [
        (b["name"], {k: float(v) if isinstance(v, str) else v for k, v in b["params"].items()})
        for b in raw.get("baselines", [])]


def test_a_conflict_behind_any_allowed_condition_value_is_found(tmp_path):
    # o_weight is active for ce and focal, entity_o_ratio for focal only: trying only the
    # first allowed value (ce) missed the focal trials, every one of which would fail.
    path = _write(tmp_path, "params:\n  loss: {type: choice, values: [ce, focal]}\n"
                            "  o_weight: {type: uniform, low: 0.1, high: 0.9, when: {loss: [ce, focal]}}\n"
                            "  entity_o_ratio: {type: loguniform, low: 0.5, high: 30, when: {loss: [focal]}}\n")
    with pytest.raises(ValueError, match=r":4: .*o_weight = 0.1 with entity_o_ratio = 0.5 \(where loss = 'focal'\)"):
        load_space(path)
    with pytest.raises(ValueError, match="'focal_gamma' is not a setting a baseline can give"):
        load_space(_write(tmp_path, "params:\n  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}\n"
                                    "baselines:\n  - {name: b, params: {learning_rate: 5.0e-5, focal_gamma: 0.0}}\n"))
