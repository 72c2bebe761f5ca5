"""The cortical microcircuit split over several devices: the same spikes as on one.

Builds the Potjans & Diesmann (2014) microcircuit twice with the same seed, runs one copy
on one device and the other split over ``--devices`` devices with
``brainpy_halfproj.partition``, and compares: spike rasters (identical, bit for bit),
rates per population, the collectives each step compiles to, and memory per device.
Saves a figure (raster of the split run, rates of both).

On CPU the devices are simulated (``XLA_FLAGS=--xla_force_host_platform_device_count``,
set here before JAX starts): they share the machine's cores, so this shows that the split
run is exact and how it communicates, not a speed-up. Needs brainpy >= 2.8; on the 2.5
line ``partition`` raises ``PartitionError``, which this script reports.

    python examples/partitioned_microcircuit.py                  # 4 devices, scale 0.05, 200 ms
    python examples/partitioned_microcircuit.py --devices 2 --scale 0.02 --duration 100
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=4, help="devices to split over (default 4)")
    parser.add_argument("--scale", type=float, default=0.05, help="network scale (default 0.05)")
    parser.add_argument("--duration", type=float, default=200.0, help="biological time in ms (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="model seed (default 1)")
    parser.add_argument("--output", default="partitioned_microcircuit.png", help="figure (PNG)")
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices must be at least 1, got {args.devices}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if "jax" not in sys.modules and "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={args.devices}").strip()
    import brainpy.math as bm
    import numpy as np

    import brainpy_halfproj as bhp
    from brainpy_halfproj.models import POPULATIONS, PUBLISHED_RATES, microcircuit, population_rates, simulate

    bm.set_dt(0.1)
    runs = {}
    for n in (1, args.devices):
        net = microcircuit(args.scale, seed=args.seed, size_multiple=args.devices)
        try:
            t0 = time.perf_counter()
            report = bhp.partition(net, n)
            t_partition = time.perf_counter() - t0
        except bhp.PartitionError as err:
            print(err)
            return 1
        collectives = bhp.step_collectives(net)
        t0 = time.perf_counter()
        spikes = simulate(net, args.duration, record=True)
        runs[n] = dict(report=report, spikes=spikes, rates=population_rates(net, args.duration),
                       collectives=collectives, partition_s=t_partition, run_s=time.perf_counter() - t0)
        print(report)
        print(f"  read-out and placement: {t_partition:.1f} s; compile and run {args.duration:g} ms: "
              f"{runs[n]['run_s']:.1f} s")
        print("  collectives per step: " + ", ".join(f"{k} {v}" for k, v in collectives.items() if v)
              if any(collectives.values()) else "  collectives per step: none")
        print()

    one, split = runs[1], runs[args.devices]
    same = all(np.array_equal(one["spikes"][p], split["spikes"][p]) for p in POPULATIONS)
    total = sum(int(one["spikes"][p].sum()) for p in POPULATIONS)
    print(f"spike rasters on 1 and {args.devices} devices identical: {same} ({total} spikes)")
    print(f"{'population':>10} {'neurons':>8} {'1 device':>9} {f'{args.devices} devices':>10} "
          f"{'published (full scale)':>23}")
    for p in POPULATIONS:
        print(f"{p:>10} {one['spikes'][p].shape[1]:>8} {one['rates'][p]:>9.2f} {split['rates'][p]:>10.2f} "
              f"{PUBLISHED_RATES[p]:>23.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_raster, ax_rates) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw=dict(width_ratios=[2, 1]))
    offset, ticks = 0, []
    for i, p in enumerate(POPULATIONS):
        steps, neurons = np.nonzero(split["spikes"][p])
        ax_raster.scatter(steps * 0.1, neurons + offset, s=1, color=f"C{i}")
        ticks.append(offset + split["spikes"][p].shape[1] / 2)
        offset += split["spikes"][p].shape[1]
    ax_raster.set(xlabel="time (ms)", yticks=ticks, yticklabels=POPULATIONS, ylim=(offset, 0),
                  title=f"scale {args.scale:g}, split over {args.devices} devices")
    x = np.arange(len(POPULATIONS))
    ax_rates.bar(x - 0.2, [one["rates"][p] for p in POPULATIONS], 0.4, label="1 device")
    ax_rates.bar(x + 0.2, [split["rates"][p] for p in POPULATIONS], 0.4, label=f"{args.devices} devices")
    ax_rates.set(xticks=x, ylabel="rate (spikes/s)", title="identical" if same else "DIFFERENT")
    ax_rates.set_xticklabels(POPULATIONS, rotation=45)
    ax_rates.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"figure saved to {args.output}")
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
