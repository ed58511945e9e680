"""``--config FILE`` on every command: option values from a TOML or JSON file, or from a run's config.json.

The file holds the options by their long names, with dashes or underscores (``batch-size = 64`` or
``"batch_size": 64``; a flag as true/false, a repeatable option as a list, an argument by the name its
help shows, in lower case: ``space`` and ``arch`` for `hwnas arch`, ``run_dir`` for `hwnas eval`);
``null`` stands for the option's default. Options given on the command line override the file: its values
become the command's `click.Context.default_map`, set by an eager option callback before any other option
is read. A directory stands for its ``config.json``.

A key that is an option of another hwnas command, not of this one, is ignored, so that one file can
hold the options of several commands; a key that is an option of no command is one line naming it and the
options it could be, exit 2.

Run records are translated first. A training run's config.json (``hwnas train`` / ``retrain``) gives its
``config`` settings, the strategy's settings as their own options (``random_paths``, ``distill``, ...);
its ``hwnas_version``, ``space`` description and ``architecture`` are records, not options, and are
ignored, and so are settings recorded as null. A search's config.json gives ``strategy``, its
``settings``, ``seed``, ``space`` (name, input, width), ``target_latency``, ``max_macs``, ``max_params``,
``max_energy``, ``table`` (the tables' paths) and ``supernet``, ``predictor``, ``rescore``, ``dataset``,
``bn_batches``, ``batch_size`` from its evaluators; its ``kind``, ``version``, ``hwnas``, the tables'
labels and digests, the evaluators' other figures and the strategy's settings that no option sets, at
their defaults (``chunk``, ...), are ignored (a differentiable search records no dataset: give
``dataset``). Given to a command that makes such records (`MAKERS`), a record's settings are options as
above: another command's are ignored (a supernet's ``strategy`` given to ``retrain``), one that no command
has (``split_seed`` set) is an error, and so is a retrained ``arch`` given to ``train``, which would train a
supernet instead. Given to any other command, a record gives only what its run was made on (`SHARED`: the
space and the data), since its other settings mean something else there (a search's ``--epochs`` and
``--strategy``, a profile's ``--device``).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import click

from hwnas.errors import ConfigError, quoted

HELP = ("TOML or JSON file of option values by their names (batch-size = 64; other commands' options are ignored); "
        "a run's or a search's config.json works as one. Options on the command line override it.")

#: keys of a training run's config.json that record the run rather than set an option
TRAIN_RECORD = ("hwnas_version", "space", "architecture")
#: the commands that make each kind of record, and repeat one from its config.json
MAKERS = {"train": ("train", "retrain"), "search": ("search",)}
#: what a record gives any other command: what its run was made on, which means the same there
SHARED = {"train": ("space", "width", "input", "resolution", "dataset", "data_root", "download"),
          "search": ("space", "width", "input", "dataset", "supernet")}


def add_config_option(command: click.Command) -> click.Command:
    """Give ``command`` (every subcommand of a group) the eager ``--config FILE`` option, once."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_config_option(sub)
    elif not any(param.name == "config" for param in command.params):
        command.params.append(click.Option(["--config"], metavar="FILE", is_eager=True, expose_value=False,
                                           callback=_apply_config, help=HELP))
    return command


def _apply_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    path = Path(value)
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    data = read_config(path)
    name = " ".join(ctx.command_path.split()[1:])  # train, table adapt
    refused = ("arch",) if name == "train" and record_kind(data) == "train" else ()  # a retrained architecture
    values = run_record_options(data, name)
    ctx.default_map = {**(ctx.default_map or {}), **config_defaults(ctx.command, values, path, ctx, refused)}


def read_config(path: Path) -> dict[str, Any]:
    """The object a TOML or JSON file holds: JSON for a .json name or text that starts with ``{``, else TOML."""
    import tomllib

    from hwnas.readers import parse_json, read_text

    what = "a --config file"
    text = read_text(path, what, ConfigError)
    if path.suffix.lower() == ".json" or (path.suffix.lower() != ".toml" and text.lstrip().startswith("{")):
        data = parse_json(text, path, what, ConfigError)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{what} must be TOML or JSON, but {path} is neither ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold an object of option values, but {path} holds {quoted(data)}")
    return data


def record_kind(data: dict[str, Any]) -> str | None:
    """``"train"`` for a training run's config.json, ``"search"`` for a search's, None for any other object."""
    if isinstance(data.get("config"), dict) and "hwnas_version" in data:
        return "train"
    return "search" if data.get("kind") == "hwnas-search" else None


def run_record_options(data: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """The options a run's or a search's config.json stands for (see the module's docstring); any other
    object as it is. Given to ``command`` (its name: ``rank``, ``table adapt``) that does not make such
    records, only the `SHARED` ones."""
    kind = record_kind(data)
    if kind == "train":
        options = {k: v for k, v in data.items() if k not in (*TRAIN_RECORD, "config")}
        config = {k: v for k, v in data["config"].items() if v is not None}  # null: the default (arch of a train)
        settings = config.pop("strategy_settings", None) or {}
        options = {**options, **config,
                   **(settings if isinstance(settings, dict) else {"strategy_settings": settings})}
        space = data.get("space")
        profile = space.get("input") if isinstance(space, dict) else None
        shared = {"input": profile.get("name") if isinstance(profile, dict) else None}  # train has no --input
    elif kind == "search":
        options, shared = _search_options(data), {}
    else:
        return data
    if command is None or command in MAKERS[kind]:
        return options
    return {k: v for k, v in {**options, **shared}.items() if k in SHARED[kind]}


def _search_options(data: dict[str, Any]) -> dict[str, Any]:
    from hwnas.search import STRATEGIES

    rest = {k: v for k, v in data.items() if k not in ("kind", "version", "hwnas", "settings", "space", "tables",
                                                       "evaluator", "rescore", "target_latency_ms", "max_energy_mj")}
    options: dict[str, Any] = {**rest, "target_latency": _number_text(data.get("target_latency_ms")),
                               "max_macs": _number_text(data.get("max_macs")),
                               "max_params": _number_text(data.get("max_params")),
                               "max_energy": _number_text(data.get("max_energy_mj"))}
    space = data.get("space")
    if isinstance(space, dict):
        profile = space.get("input")
        options.update(space=space.get("space"), width=space.get("width"),
                       input=profile.get("name") if isinstance(profile, dict) else profile)
    tables = data.get("tables")
    if isinstance(tables, list):
        options["table"] = [t.get("path") if isinstance(t, dict) else t for t in tables]
    evaluator = data.get("evaluator")
    rescore = data.get("rescore")
    if isinstance(evaluator, dict) and evaluator.get("kind") == "predictor":
        options["predictor"] = evaluator.get("path")
        options["rescore"] = rescore.get("count") if isinstance(rescore, dict) else 0
        evaluator = rescore.get("evaluator") if isinstance(rescore, dict) else None
    if isinstance(evaluator, dict) and evaluator.get("kind") == "supernet":
        options.update(supernet=evaluator.get("run_dir"),
                       **{k: evaluator.get(k) for k in ("dataset", "bn_batches", "batch_size")})
    settings = data.get("settings")
    if isinstance(settings, dict):
        defaults: dict[str, Any] = {}
        try:
            cls = STRATEGIES.get(str(data.get("strategy")))
            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        except (ConfigError, TypeError):
            pass  # an unknown strategy is refused by --strategy
        options.update({k: v for k, v in settings.items() if not (k in defaults and v == defaults[k])})
    return options


def _number_text(value: Any) -> Any:
    """A recorded number as the text its option parses (3.0 -> "3"); anything else as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _names(command: click.Command) -> dict[str, click.Parameter]:
    """Option names (long ones without the dashes, underscores for dashes) and argument names -> parameter."""
    names: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name == "config" or getattr(param, "hidden", False):
            continue
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    names[opt[2:].replace("-", "_")] = param
    for param in command.params:  # arguments by their metavar (SPACE: space) or else their name (run_dir)
        if isinstance(param, click.Argument) and param.name:
            metavar = (param.metavar or "").lower()
            names.setdefault(metavar if metavar.isidentifier() else param.name, param)
    return names


def config_defaults(command: click.Command, values: dict[str, Any], path: Path, ctx: click.Context,
                    refused: tuple[str, ...] = ()) -> dict[str, Any]:
    """``values`` (option name -> value) as a default map of ``command``, each value checked by its option's
    type. A name of another command's option is left out, unless ``refused``; any other unknown name or a
    value of the wrong type is a ConfigError that names the file and the key."""
    names = _names(command)
    others: set[str] | None = None
    where = f"--config {path}"
    command_path = " ".join(["hwnas", *ctx.command_path.split()[1:]])
    defaults: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in values.items():
        param = names.get(str(key).replace("-", "_"))
        if param is None and str(key).replace("-", "_") not in refused:
            others = _every_name(ctx.find_root()) if others is None else others
            if str(key).replace("-", "_") in others:
                continue  # another command's option: a file of several commands' options, a run's record
        if param is None:
            close = difflib.get_close_matches(str(key).replace("-", "_"), list(names), n=3, cutoff=0.6)
            hint = (f"did you mean {' or '.join(_shown(names[c]) for c in close)}?" if close
                    else f"see {command_path} --help")
            raise ConfigError(f"{where}: {quoted(str(key))} is not an option of {command_path}; {hint}")
        if param.name in given:
            raise ConfigError(f"{where} sets {_shown(param)} twice ({given[param.name]!r} and {key!r})")
        given[str(param.name)] = str(key)
        if value is None:
            continue  # the option's default
        defaults[str(param.name)] = _checked(param, value, f"{where}: {key}", ctx)
    return defaults


def _every_name(root: click.Context) -> set[str]:
    """The option and argument names (as `_names` gives them) of every command under ``root``'s group."""
    found: set[str] = set()
    todo = [root.command]
    while todo:
        command = todo.pop()
        if isinstance(command, click.Group):
            todo.extend(filter(None, (command.get_command(root, name) for name in command.list_commands(root))))
        else:
            found.update(_names(command))
    return found


def _shown(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return next((o for o in param.opts if o.startswith("--")), param.opts[0])
    return str(param.name)


def _checked(param: click.Parameter, value: Any, where: str, ctx: click.Context) -> Any:
    """``value`` if ``param`` takes it (a flag true/false, a repeatable option a list), else a ConfigError."""
    many = getattr(param, "multiple", False) or param.nargs != 1
    if isinstance(param, click.Option) and param.is_flag and not many:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is a flag and must be true or false, but got {quoted(value)}")
        return value
    items = value if isinstance(value, list) and many else [value] if many else None
    for item in items if items is not None else [value]:
        if isinstance(item, (dict, list)) or item is None or (isinstance(item, bool) and param.type is not click.BOOL):
            kind = "a list of single values" if many else "a single value"
            raise ConfigError(f"{where} must be {kind}, but got {quoted(value)}")
        if isinstance(param.type, (click.Path, click.Choice)) and not isinstance(item, str):
            raise ConfigError(f"{where} must be a string, but got {quoted(item)}")
        try:
            param.type.convert(item, param, ctx)
        except click.BadParameter as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    return items if items is not None else value
