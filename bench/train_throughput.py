"""Benchmark: training throughput of ``geoseg train`` and what it costs the machine.

Trains a config for a few epochs in a child process and prints, for the ``train()`` call
alone (imports excluded): wall seconds, training samples per second, user and system
CPU-seconds, minor page faults (``getrusage``, all threads) and the load average before and
after, since the figures of a shared machine mean little without it.

    python bench/train_throughput.py                                # the shipped CPU config
    python bench/train_throughput.py --set cache_mb=0               # tiles decoded every epoch
    python bench/train_throughput.py --env MALLOC_ARENA_MAX=2       # an allocator setting
    python bench/train_throughput.py --epochs 2 --repeats 2

Data: CAS Landslide Dataset (Xu, Ouyang, Xu, Wang, Zhao & Luo, 2023,
doi:10.5281/zenodo.10294997), Hokkaido Iburi-Tobu tiles, CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "hokkaido_cpu.config"


def child(config_path: Path, epochs: int, overrides: dict[str, object], out: Path) -> dict:
    """Run ``train()`` here and measure it; returns the figures as a dict."""
    import dataclasses

    from geoseg.config import load_config
    from geoseg.training.train import train

    config = load_config(config_path)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, **overrides))
    lines: list[str] = []
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = train(config, out_dir=out, epochs=epochs, overwrite=True, report=lines.append)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = config.train.steps_per_epoch or -(-result.train_tiles // config.train.batch_size)
    samples = steps * config.train.batch_size * (result.last_epoch - result.first_epoch + 1)
    return {"wall": wall, "samples": samples, "samples_per_s": samples / wall,
            "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "minflt": after.ru_minflt - before.ru_minflt, "epochs": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, nargs="?", default=CONFIG)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [train] key (Python literal), e.g. cache_mb=0")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable of the training process")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = {key: ast.literal_eval(value)
                 for key, value in (item.split("=", 1) for item in args.set)}
    if args.child is not None:
        figures = child(args.config, args.epochs, overrides, args.child)
        print("RESULT " + json.dumps(figures))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(item.split("=", 1) for item in args.env)
    label = " ".join(args.set + args.env) or "defaults"
    for run in range(args.repeats):
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="geoseg-throughput-") as tmp:
            command = [sys.executable, __file__, str(args.config), "--epochs", str(args.epochs),
                       "--child", tmp, *(f"--set={item}" for item in args.set)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        figures = json.loads(done.stdout.rsplit("RESULT ", 1)[1])
        for line in figures["epochs"]:
            print(f"  {line[:60]}")
        print(f"run {run} [{label}] {args.config.name}, {args.epochs} epochs: "
              f"{figures['samples']} samples in {figures['wall']:.1f} s = "
              f"{figures['samples_per_s']:.2f} samples/s; CPU user {figures['user']:.1f} s, "
              f"sys {figures['sys']:.1f} s; minor page faults {figures['minflt']:,} "
              f"({figures['minflt'] / figures['samples']:.0f}/sample); load "
              f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
