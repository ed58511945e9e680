"""Commands of the lookup-table profiler: devices, profile, validate."""

from __future__ import annotations

import time
from contextlib import nullcontext
import os
from pathlib import Path

import click
import numpy as np

from hwnas.cli.options import (BATCH, RESOLUTION, SEED, WIDTH, Number, default_of, device_names, format_option,
                               options, output_path)
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.timing.protocol import STATISTICS, Protocol


def _protocol_default(name: str, scale: float = 1.0):
    """The protocol's default in the option's unit, a whole number shown as one (``[default: 7]``, not 7.0)."""
    value = default_of(Protocol, name) * scale
    return int(value) if float(value).is_integer() else value


def _target_options():
    return [
        click.option("--on", "target", default=None, metavar="TARGET",
                     help="Measure on another machine: ssh://[user@]host[:port] (the system ssh, your keys and "
                          "~/.ssh/config), or local (a separate process here); it needs only Python >= 3.8 with numpy "
                          "and onnxruntime (ai-edge-litert for litert). Append ?python=PATH to choose its Python and "
                          "?workdir=DIR (joined with &) the folder its work directory is made in (default: its "
                          "temporary folder). ort-mobile, ort-cpu and litert only. Or an Android phone through adb: "
                          "adb://SERIAL?benchmark=PATH (adb:// for the only one; PATH: LiteRT's benchmark_model for "
                          "Android on this host), litert only."),
        click.option("--pin", default=None, metavar="CPUS", help="With --on: run the measurement on these CPUs of the "
                                                                   "target (2, 2,3 or 0-3; big: a phone's big cores)."),
        click.option("--keep", is_flag=True, help="With --on: leave the work directory (runner, exported models) on "
                                                  "the target."),
    ]


def _target(target: str | None, pin: str | None, keep: bool):
    """(target, pin, keep) checked: --pin and --keep need --on."""
    from hwnas.errors import ConfigError
    from hwnas.profiler.targets import parse_cpus, parse_target

    if target is None and (pin is not None or keep):
        raise ConfigError("--pin and --keep apply to measurements on a target: give --on TARGET")
    parsed = None if target is None else parse_target(target)
    if pin == "big" and parsed is not None and parsed.url.startswith("adb://"):
        return parsed, "big", keep  # a phone's big cores, found from its CPU frequencies
    return parsed, parse_cpus(pin), keep

@click.command()
@click.option("--on", "target", default=None, metavar="TARGET",
              help="Check a target instead (ssh://[user@]host[:port] or local, ?python=PATH&workdir=DIR; or a phone, "
                   "adb://SERIAL?benchmark=PATH): connect, run the measuring process (or benchmark program) there and "
                   "print its fingerprint.")
@format_option
def devices(target: str | None, fmt: str) -> None:
    """List the device backends, whether this machine can run them, and their fingerprint."""
    from hwnas.devices import DEVICES

    if target is not None:
        _target_devices(target, fmt)
        return
    rows = []
    for name in DEVICES:
        cls = DEVICES.get(name)
        available, reason = cls.availability()
        row = {"device": name, "available": available, "precisions": ",".join(cls.precisions), "note": reason}
        if available:
            info = cls().info()
            row["cpu"] = info.get("cpu_model", "")
            row["gpu"] = info.get("gpu_name", "")
            if fmt != "table":
                row["fingerprint"] = info
        rows.append(row)
    click.echo(render(rows, fmt))


def _target_devices(text: str, fmt: str) -> None:
    """`hwnas devices --on TARGET`: the ONNX Runtime devices as the target would run them."""
    from hwnas.profiler.targets import Connection, governor_warning, parse_target

    target = parse_target(text)
    if target.url.startswith("adb://"):  # an Android phone: its fingerprint, and whether the benchmark program runs
        from hwnas.profiler.android import describe_phone

        phone = describe_phone(target)
        click.echo(render([phone["row"] if fmt == "table" else {**phone["row"], "fingerprint": phone["fingerprint"]}],
                          fmt))
        return
    with Connection(target) as connection:
        fingerprint = connection.fingerprint
    rows = [{"device": name, "target": target.url, "available": "CPUExecutionProvider" in
             fingerprint["execution_providers"], "cpu": fingerprint["cpu_model"], "machine": fingerprint["machine"],
             "cores": fingerprint["cores_online"], "governor": fingerprint["governor"],
             "onnxruntime": fingerprint["onnxruntime"], "python": fingerprint["python"]}
            for name in ("ort-mobile", "ort-cpu")]
    if fmt != "table":
        rows = [{**row, "fingerprint": fingerprint} for row in rows]
    click.echo(render(rows, fmt))
    warning = governor_warning(target.url, fingerprint)
    if warning:
        click.echo(f"warning: {warning}", err=True)


@click.command()
@click.option("--space", "space_name", required=True, help="Search space (see `hwnas spaces`).")
@click.option("--input", "profile_name", default="imagenet", show_default=True, help="Input profile.")
@click.option("--width", type=WIDTH, default=1.0, show_default=True, help="Width multiplier of the space.")
@click.option("--resolution", type=RESOLUTION, default=None,
              help="Input size, as `hwnas train --resolution` resizes images [default: the input profile's].")
@click.option("--device", "device_name", type=click.Choice(device_names()), default="cpu", show_default=True,
              help="Device backend (see `hwnas devices`).")
@click.option("--threads", type=Number(int, 1, 1024), default=None, help="Threads (default: the device's, 1 for cpu and ort-mobile).")
@click.option("--batch-size", type=BATCH, default=1, show_default=True)
@click.option("--precision", default=None, help="fp32 (default), or int8 on ort-mobile / ort-cpu.")
@click.option("--rounds", type=Number(int, 3, 1000), default=_protocol_default("rounds"), show_default=True,
              help="Timed blocks per entry.")
@click.option("--min-block-ms", type=Number(float, 0, 60000, low_open=True), default=_protocol_default("min_block_s", 1e3), show_default=True,
              help="Target duration of one timed block.")
@click.option("--rotate", type=Number(int, 1, 64), default=_protocol_default("rotate"), show_default=True,
              help="Copies of weights and inputs cycled through.")
@click.option("--warmup-ms", type=Number(float, 0, 600000), default=_protocol_default("warmup_s", 1e3), show_default=True,
              help="Warm-up of each entry before timing.")
@click.option("--statistic", type=click.Choice(STATISTICS), default=default_of(Protocol, "statistic"),
              show_default=True,
              help="Which summary of an entry's timed blocks is its latency (min: other work on the machine only "
                   "adds time; median and IQR are recorded either way).")
@click.option("--remeasure", type=Number(int, 0, 10), default=_protocol_default("remeasure"), show_default=True,
              help="Extra attempts for a noisy entry or a batch caught by a burst of other work, and whether entries "
                   "still measured in a burst are measured once more at the end (0: measure once).")
@click.option("--drift-correction/--no-drift-correction", default=default_of(Protocol, "drift_correction"),
              show_default=True,
              help="Watch the reference block for bursts of other work (wait for them to pass, time caught batches "
                   "again) and, when the table is complete, scale each entry by the reference's fastest time over "
                   "the table (median with --statistic median) over its time beside that entry (raw times are kept "
                   "in every record).")
@click.option("--calm-wait-s", type=Number(float, 0, 3600), default=_protocol_default("calm_wait_s"), show_default=True,
              help="The longest one batch waits for a burst of other work to pass.")
@click.option("--calm-budget-s", type=Number(float, 0, 86400), default=_protocol_default("calm_budget_s"), show_default=True,
              help="The longest the whole run waits for bursts to pass, all batches together.")
@click.option("--force", is_flag=True, help="Start again when FILE was measured with another device, protocol or space "
                                            "(the old file is kept as FILE.bak).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), callback=output_path,
              help="Table file (JSON Lines). An existing one is resumed.")
@options(*_target_options())
@format_option
def profile(space_name, profile_name, width, resolution, device_name, threads, batch_size, precision, rounds, min_block_ms,
            rotate, warmup_ms, statistic, remeasure, drift_correction, calm_wait_s, calm_budget_s, force, output,
            target, pin, keep, fmt) -> None:
    """Measure every block of a space on a device into a lookup table.

    Each distinct block (stem and head included) is measured once; records are written as they finish,
    so a killed run resumes where it stopped when run again with the same FILE.
    """
    from hwnas.devices import get_device
    from hwnas.profiler.build import profile_space
    from hwnas.space import get_space

    space = get_space(space_name, profile_name, width=width, resolution=resolution).check_buildable()
    device = get_device(device_name, threads=threads, batch_size=batch_size, precision=precision)
    target, cpus, keep = _target(target, pin, keep)
    protocol = Protocol(rounds=rounds, min_block_s=min_block_ms / 1e3, rotate=rotate, warmup_s=warmup_ms / 1e3,
                        statistic=statistic, remeasure=remeasure, drift_correction=drift_correction,
                        calm_wait_s=calm_wait_s, calm_budget_s=calm_budget_s)
    start = time.perf_counter()
    with ProgressDisplay() as progress:
        result = profile_space(space, device, output, protocol=protocol, force=force, on_progress=progress,
                               target=target, keep=keep, pin=cpus)
    rel = np.array([r.rel_iqr for r in result.records.values()])
    row = {"table": str(output), "blocks": len(result.records), "space": space_name, "input": profile_name,
           "device": device_name, "on": target.url if target else "this host",
           "seconds": round(time.perf_counter() - start, 1),
           "rel_iqr_median_pct": round(100 * float(np.median(rel)), 2), "rel_iqr_max_pct": round(100 * float(rel.max()), 2),
           "reference_level_ms": result.header.get("reference_level_ms")}
    click.echo(render([row], fmt))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--archs", type=Number(int, 4, 100000), default=100, show_default=True, help="Random architectures measured end to end.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--repeats", type=Number(int, 1, 100), default=1, show_default=True,
              help="Measure every architecture this many times, each time beside other networks, and use the mean; "
                   "with 2 or more, the second measurement against the first is printed as the noise floor.")
@click.option("--save", is_flag=True, help="Store the fitted calibration in the table.")
@click.option("--details", type=click.Path(dir_okay=False), callback=output_path, default=None,
              help="Also write one CSV row per architecture (measured, as timed, table, calibrated, MACs, split; "
                   "with --repeats, each run).")
@click.option("--export", "export", type=Number(int, 1, 100000), default=None, metavar="N",
              help="Measure nothing: write N random architectures of the table's space as ONNX (and LiteRT) files, "
                   "with a manifest and a measured.csv to fill in on a device hwnas cannot run on, into -o KIT (then "
                   "`hwnas table adapt TABLE KIT/measured.csv`).")
@click.option("-o", "--output", type=click.Path(file_okay=False), callback=output_path, default=None,
              help="With --export: the kit's directory (new or empty).")
@click.option("--litert/--no-litert", default=None,
              help="With --export: also write each network as a LiteRT .tflite file (converted by litert-torch)  "
                   "[default: where the hwnas[litert] extra is installed].")
@options(*_target_options())
@format_option
def validate(path: Path, archs: int, seed: int, repeats: int, save: bool, details: Path | None, export: int | None,
             output: Path | None, litert: bool | None, target: str | None, pin: str | None, keep: bool,
             fmt: str) -> None:
    """Measure random whole architectures on the table's device and report how well the table predicts them.

    A calibration (scale and offset) is fitted on half of the architectures and every figure is reported
    on the other half: mean absolute % error, share within 5 % and 10 %, Kendall tau; raw table sum,
    calibrated table, and MACs fitted the same way as the baseline. With --repeats 2 or more, the
    agreement between two measurements of the same networks is printed below them: no predictor can be
    judged closer than that.

    With --export N -o KIT nothing is measured: N random architectures go to KIT as ONNX files (and LiteRT
    .tflite files, see --litert) to be timed elsewhere (a phone, a board without Python), with a manifest and a
    measured.csv that `hwnas table adapt` reads back once its latency_ms column is filled in.
    """
    if export is not None or output is not None or litert is not None:
        _export_kit(path, export, output, seed, save=save, details=details, repeats=repeats, target=target,
                    pin=pin, keep=keep, fmt=fmt, litert=litert)
        return
    import pandas as pd

    from hwnas.files import write_atomic
    from hwnas.outputs import check_output_file, file_lock
    from hwnas.profiler.session import table_device
    from hwnas.profiler.validate import check_measurable, validate_table
    from hwnas.tables import LookupTable

    if details is not None:  # refused now, not after every architecture was measured
        check_output_file(details, "--details")
        if os.path.realpath(details) == os.path.realpath(path):
            from hwnas.errors import ConfigError

            raise ConfigError(f"--details must name a file other than the table it validates, but got {details}")
    t = LookupTable.load(path)
    check_measurable(t)
    device = table_device(t)
    target, cpus, keep = _target(target, pin, keep)
    # --save rewrites the table: no other writer meanwhile
    with file_lock(path, "table") if save else nullcontext(), ProgressDisplay() as progress:
        report = validate_table(t, device, archs=archs, seed=seed, repeats=repeats, on_progress=progress,
                                target=target, keep=keep, pin=cpus)
        if details:
            write_atomic(details, pd.DataFrame(report.arch_rows()).to_csv(index=False))
        if save:
            t.set_calibration(report.calibration)
            t.save()
    extra = {"table": str(path), "device": t.device_name, "archs": len(report.archs), "repeats": repeats,
             "fitted_on": len(report.fit_index), "tested_on": len(report.test_index),
             "measured": "as timed" if report.timed_ms is None else
                         f"drift-corrected to the reference level {t.header['reference_level_ms']} ms",
             "calibration": f"scale {report.calibration.scale:.4f}, offset {report.calibration.offset_ms:.4f} ms"
                            + (" (saved)" if save else "")}
    if fmt == "json":  # the reference level and the calibration as numbers
        extra["measured"] = "as timed" if report.timed_ms is None else "drift-corrected"
        extra["reference_level_ms"] = None if report.timed_ms is None else t.header["reference_level_ms"]
        extra["calibration"] = {"scale": report.calibration.scale, "offset_ms": report.calibration.offset_ms,
                                "saved": save}
    click.echo(render(report.rows(), fmt, extra=extra))


def _export_kit(path: Path, export: int | None, output: Path | None, seed: int, *, save: bool, details: Path | None,
                repeats: int, target: str | None, pin: str | None, keep: bool, fmt: str, litert: bool | None) -> None:
    """`validate --export N -o KIT`: the networks to measure elsewhere, nothing measured here."""
    from hwnas.errors import ConfigError
    from hwnas.profiler.kit import ADAPT_NEEDS, check_kit_dir, export_kit
    from hwnas.tables import LookupTable

    if export is None and output is None:
        raise ConfigError("--litert applies to a kit (--export N -o KIT), but got neither --export nor -o")
    if export is None or output is None:
        raise ConfigError("--export N and -o KIT go together: the networks to measure elsewhere and where they go, "
                          f"but got only {'-o' if export is None else '--export'}")
    here = [name for name, given in (("--save", save), ("--details", details is not None), ("--repeats", repeats != 1),
                                     ("--on", target is not None), ("--pin", pin is not None), ("--keep", keep))
            if given]
    if here:
        raise ConfigError(f"--export writes networks to be measured elsewhere, but got {here[0]}, which measures here")
    check_kit_dir(output)  # before the table is read: nothing is written into a kit being filled in
    table = LookupTable.load(path)
    with ProgressDisplay() as progress:
        kit = export_kit(table, export, output, seed=seed, litert=litert, on_progress=progress)
    row = {"kit": str(output), "networks": len(kit.archs), "table": str(path), "device": table.device_name,
           "files": f"models/net_*.onnx{', models/net_*.tflite' if kit.litert else ''}, manifest.json, measured.csv, "
                    "README.txt",
           **({"table_ms": f"{min(kit.predicted_ms):.4g}..{max(kit.predicted_ms):.4g}"} if fmt == "table" else
              {"table_ms_min": float(min(kit.predicted_ms)), "table_ms_max": float(max(kit.predicted_ms))}),
           "next": f"fill in {output}/measured.csv, then hwnas table adapt {path} {output}/measured.csv -o ADAPTED"}
    click.echo(render([row], fmt))
    if len(kit.archs) < ADAPT_NEEDS:
        click.echo(f"note: `hwnas table adapt` needs {ADAPT_NEEDS} measured networks; this kit holds {len(kit.archs)}",
                   err=True)
