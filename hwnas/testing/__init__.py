"""What hwnas ships for testing code built on it, as optuna ships ``optuna.testing``.

Stand-ins (`synthetic_table`, `SyntheticEvaluator`, `tiny_supernet_run`) and the conformance suites that
every registry entry must pass, one module each, with one entry point per entry:

- `hwnas.testing.spaces`: ``check_space(name)``, and ``check_reference(name)`` (exact golden MACs / params);
- `hwnas.testing.devices`: ``check_device(name)``;
- `hwnas.testing.datasets`: ``check_dataset(name, root)``;
- `hwnas.testing.training`: ``check_training_strategy(name, work_dir)``;
- `hwnas.testing.search`: ``check_search_strategy(name, work_dir)``;
- `hwnas.testing.evaluators`: ``check_evaluator(make, archs)``.

`hwnas.testing.fake_adb` is a fake ``adb`` (standard library only, run as a script through ``$HWNAS_ADB``) whose
phones are folders here, with a stand-in of LiteRT's ``benchmark_model``, for testing ``--on adb://`` without a phone.

A suite is plain functions that raise ``AssertionError`` with a sentence naming what broke and the values;
each module's docstring states the contract it checks. The project's tests run them over every registered
entry; code that registers a new one runs them the same way. Nothing here needs pytest.
"""

from hwnas.testing.standins import SequenceRunner, SyntheticEvaluator, synthetic_table, tiny_supernet_run

__all__ = ["SequenceRunner", "SyntheticEvaluator", "synthetic_table", "tiny_supernet_run"]
