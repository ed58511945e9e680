"""Differentiable search: the training strategy run as a search (its own run directory, scored by the one
evaluator on the run's own split), the projection to a feasible architecture, and warm starts."""

import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.search import Constraint, DifferentiableSearch, SearchContext, run_search
from hwnas.search.differentiable import RUN_DIR, project_to_feasible
from hwnas.space import get_space
from hwnas.testing import synthetic_table, tiny_supernet_run
from hwnas.training import RunConfig, read_run, train
from hwnas.training.run_dir import CHECKPOINT_FILE
from hwnas.training.trained import run_loaders, warm_start

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(epochs=2, warmup_epochs=1)
#: how the weights train: a RunConfig's settings (the search's own are FAST)
WEIGHTS = dict(steps_per_epoch=2, batch_size=4)
DATA = RunConfig(space="spos", dataset="synthetic", synthetic_size=24, resolution=8, width=0.25, **WEIGHTS)


def warm(run_dir, space="spos"):
    """The training RunConfig of a search warm-started from ``run_dir``."""
    return RunConfig(space=space, **warm_start(run_dir), device="cpu", **WEIGHTS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    space = get_space("spos", "cifar10", width=0.25, resolution=8)
    return space, synthetic_table(space, path=tmp_path_factory.mktemp("tables") / "spos.jsonl")


def search(setup, target, seed=0, output=None, training=DATA, **settings):
    space, table = setup
    return run_search(DifferentiableSearch(**{**FAST, **settings}), space=space, tables=[table], target_ms=target,
                      evaluator=None, seed=seed, output=output, references=False, training=training)


def test_result_is_a_feasible_architecture_and_reproducible(setup, tmp_path):
    space, table = setup
    target = table.minimum_latency() * 1.2
    result = search(setup, target, seed=3, output=tmp_path / "a")
    assert len(result.candidates) == 1
    candidate = result.candidates[0]
    assert space.validate(candidate.arch) == candidate.arch
    assert candidate.feasible and candidate.latency_ms[0] <= target
    assert 0 <= candidate.accuracy <= 100
    assert "differentiable search ended at E[latency]" in result.notes[0]
    stored = read_run(tmp_path / "a" / RUN_DIR)
    assert stored.config.strategy == "differentiable" and stored.checkpoint["epoch"] == 3
    assert search(setup, target, seed=3).candidates[0].arch == candidate.arch, "same seed, same result"


def test_projection_moves_the_least_likely_layers(setup):
    space, table = setup
    constraint = Constraint(table, table.minimum_latency() * 1.05)
    context = SearchContext(space, constraint, None, tables=[table])
    _, per_layer = table.latency_matrix()
    slowest = [int(lat.argmax()) for lat in per_layer]
    log_probs = [torch.log_softmax(torch.zeros(n), 0) for n in space.num_ops]
    indices, moves = project_to_feasible(context, slowest, log_probs)
    assert moves > 0 and constraint.feasible(space.from_indices(indices))


@pytest.mark.parametrize("settings,message", [
    ({"sampling": "hard"}, "sampling must be one of gumbel-hard, gumbel, softmax, but got sampling='hard'"),
    ({"hw_loss": "l1"}, "hw_loss must be one of squared, proxyless, but got hw_loss='l1'"),
    ({"epochs": 0}, "epochs must be an integer >= 1, but got epochs=0"),
    ({"temperature": 0}, "temperature must be > 0, but got temperature=0"),
    ({"epochs": "2"}, "epochs must be an integer, but got epochs='2'"),
])
def test_bad_settings(settings, message):
    from hwnas.search import STRATEGIES
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        STRATEGIES.create("differentiable", **settings)


def test_needs_data(setup):
    with pytest.raises(ConfigError, match="differentiable search trains a supernet and needs its data"):
        search(setup, setup[1].minimum_latency() * 2, training=None)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A trained supernet whose validation split comes from seed 5 and a fifth of the data."""
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("source") / "run"
    train(RunConfig(space="spos", dataset="synthetic", width=0.25, resolution=8, synthetic_size=40, batch_size=8,
                    epochs=1, eval_paths=0, bn_batches=1, seed=5, val_fraction=0.2), run_dir)
    return run_dir


def test_a_warm_started_search_never_validates_on_a_training_image_of_its_supernet(setup, source_run, tmp_path,
                                                                                    monkeypatch):
    from hwnas.training import differentiable, trained

    seen = {}
    real_init = differentiable.DifferentiableTraining.__init__

    def record_init(self, space, config, loaders):
        seen["alpha"] = loaders.val_indices  # the images α's steps are drawn from
        seen["weights"] = loaders.train_indices
        real_init(self, space, config, loaders)

    real_open = trained.open_evaluator

    def record_open(run_dir, **options):
        evaluator = real_open(run_dir, **options)
        seen["scored"] = tuple(evaluator.val_loader.dataset.indices)  # the images the result is scored on
        return evaluator

    monkeypatch.setattr(differentiable.DifferentiableTraining, "__init__", record_init)
    monkeypatch.setattr("hwnas.search.differentiable.open_evaluator", record_open)
    training = warm(source_run)
    result = search(setup, setup[1].minimum_latency() * 1.5, seed=11, output=tmp_path / "warm", training=training)
    source = run_loaders(read_run(source_run).config)
    assert not set(seen["alpha"]) & set(source.train_indices), "α never sees a training image of the supernet"
    assert not set(seen["scored"]) & set(source.train_indices), "the result is scored on held-out images"
    assert seen["alpha"] == source.val_indices and seen["weights"] == source.train_indices
    config = read_run(tmp_path / "warm" / RUN_DIR).config
    assert config.seed == 11 and config.split_seed == 5 and config.init_from == str(source_run.resolve())
    assert result.best is not None


def test_a_killed_warm_started_search_resumes_where_it_stopped(setup, source_run, tmp_path):
    target = setup[1].minimum_latency() * 1.5
    training = warm(source_run)
    whole = search(setup, target, seed=2, output=tmp_path / "whole", training=training)

    class Killed(Exception):
        pass

    def kill_in_epoch_2(progress):
        if progress.task.startswith("epoch 2/"):
            raise Killed  # epoch 1 is checkpointed, epoch 2 is lost

    with pytest.raises(Killed):
        run_search(DifferentiableSearch(**FAST), space=setup[0], tables=[setup[1]], target_ms=target, evaluator=None,
                   seed=2, output=tmp_path / "killed", references=False, training=training,
                   on_progress=kill_in_epoch_2)
    assert torch.load(tmp_path / "killed" / RUN_DIR / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    resumed = search(setup, target, seed=2, output=tmp_path / "killed", training=training)
    assert [str(c.arch) for c in resumed.candidates] == [str(c.arch) for c in whole.candidates]
    assert resumed.best.accuracy == whole.best.accuracy
    final = [torch.load(tmp_path / d / RUN_DIR / CHECKPOINT_FILE, weights_only=True) for d in ("whole", "killed")]
    for a, b in zip(final[0]["strategy"]["alphas"], final[1]["strategy"]["alphas"]):
        assert torch.equal(a, b)


def test_tiny_supernet_runs_warm_start_a_search_of_their_space(tmp_path):
    space = get_space("spos", "cifar10", width=0.25)
    table = synthetic_table(space, path=tmp_path / "t.jsonl")
    run_dir = tiny_supernet_run(tmp_path / "run", synthetic_size=32)
    result = run_search(DifferentiableSearch(**FAST), space=space, tables=[table], target_ms=table.minimum_latency() * 2,
                        evaluator=None, references=False, training=warm(run_dir))
    assert result.best is not None and result.best.feasible


def test_a_warm_start_keeps_the_supernets_synthetic_shape(tmp_path):
    """A supernet trained on synthetic data shaped like Fashion-MNIST warm-starts a search of its space (the
    search used to rebuild synthetic data in cifar10's shape and refuse it)."""
    space = get_space("fbnet", "fashion-mnist", width=0.25, resolution=8)
    table = synthetic_table(space, path=tmp_path / "fm.jsonl")
    run_dir = tmp_path / "run"
    train(RunConfig(space="fbnet", dataset="synthetic", synthetic_like="fashion-mnist", width=0.25, resolution=8,
                    synthetic_size=32, batch_size=8, epochs=1, eval_paths=0, bn_batches=1), run_dir)
    training = warm(run_dir, "fbnet")
    assert training.synthetic_like == "fashion-mnist"
    result = run_search(DifferentiableSearch(**FAST), space=space, tables=[table], target_ms=table.minimum_latency() * 2,
                        evaluator=None, references=False, training=training)
    assert result.best is not None
