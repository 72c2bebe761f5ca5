"""Counting in a compiled program: kernel calls and collectives, from the HLO text.

The one place that reads XLA's text: the tests, the benchmarks and
:func:`~brainpy_halfproj.step_collectives` all count here. An event kernel is a custom
call; a custom call inside a ``conditional``'s branch runs only in the steps that take the
branch (a fused call's float kernel for event counts above one), so it is counted apart.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax

__all__ = ["COLLECTIVES", "count_collectives", "count_kernel_calls", "kernel_targets", "compiled_text",
           "step_collectives"]

#: HLO collective operations counted by :func:`count_collectives`.
COLLECTIVES: tuple[str, ...] = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute",
                                "all-to-all", "collective-broadcast")

_CUSTOM_CALL = re.compile(r'custom_call_target="')


def count_collectives(hlo: str) -> dict[str, int]:
    """Number of each collective operation in an HLO module's text.

    Pass the text of a compiled program (``jax.jit(f).lower(...).compile().as_text()``, or
    ``brainpy_halfproj._hlo.compiled_text``). Operations inside a loop body count once: for a compiled
    ``for_loop`` of steps it is the count per step.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> bhp.count_collectives("%ag = f32[8] all-gather(f32[4] %x), dimensions={0}")
    {'all-gather': 1, 'all-reduce': 0, 'reduce-scatter': 0, 'collective-permute': 0, 'all-to-all': 0,
     'collective-broadcast': 0}
    """
    # an instruction: `= type op(` or `op-start(` (asynchronous pairs count once)
    return {op: len(re.findall(rf"\s{re.escape(op)}(?:-start)?\(", hlo)) for op in COLLECTIVES}


def _computations(hlo: str) -> dict[str, str]:
    """``name -> body`` of each computation in a compiled HLO module's text."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^(?:ENTRY )?%?([\w.\-]+) [^\n]*\{\n(.*?)^\}", hlo, re.M | re.S):
        blocks[match.group(1)] = match.group(2)
    return blocks


def count_kernel_calls(hlo: str) -> tuple[int, int]:
    """``(always, in branches)``: custom calls (kernel calls) in a compiled HLO module's text.

    ``always``: outside the branches of ``conditional`` instructions (each runs whenever its
    computation runs; in a loop body, once per iteration); ``in branches``: inside them.

    Examples
    --------
    >>> from brainpy_halfproj._hlo import count_kernel_calls
    >>> count_kernel_calls('''
    ... %branch (p: f32[2]) -> f32[2] {
    ...   ROOT %k = f32[2] custom-call(f32[2] %p), custom_call_target="float_kernel"
    ... }
    ... ENTRY %main (x: f32[2]) -> f32[2] {
    ...   %e = f32[2] custom-call(f32[2] %x), custom_call_target="event_kernel"
    ...   ROOT %c = f32[2] conditional(pred[] %b, f32[2] %e, f32[2] %e), true_computation=%branch
    ... }
    ... ''')
    (1, 1)
    """
    blocks = _computations(hlo)
    branches: set[str] = set()
    for body in blocks.values():
        for refs in re.findall(r"(?:true_computation|false_computation)=%?([\w.\-]+)", body):
            branches.add(refs)
        for group in re.findall(r"branch_computations=\{([^}]*)\}", body):
            branches.update(name.strip().lstrip("%") for name in group.split(","))
    # computations called from a branch are in it too
    frontier = list(branches)
    while frontier:
        body = blocks.get(frontier.pop(), "")
        for called in re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", body):
            if called not in branches:
                branches.add(called)
                frontier.append(called)
    inside = sum(len(_CUSTOM_CALL.findall(body)) for name, body in blocks.items() if name in branches)
    return len(_CUSTOM_CALL.findall(hlo)) - inside, inside


def kernel_targets(text: str) -> set[str]:
    """Names of the custom-call targets in a lowered (StableHLO) or compiled (HLO) program's text.

    Examples
    --------
    >>> from brainpy_halfproj._hlo import kernel_targets
    >>> sorted(kernel_targets('stablehlo.custom_call @kernel_a(%0) ... custom_call_target="kernel_b"'))
    ['kernel_a', 'kernel_b']
    """
    return (set(re.findall(r"custom_call @(\w+)", text)) | set(re.findall(r'call_target_name = "(\w+)"', text))
            | set(re.findall(r'custom_call_target="(\w+)"', text)))


def compiled_text(model: bp.DynamicalSystem, step: Callable[..., Any], *args: Any) -> str:
    """The compiled HLO text of ``step(*args)``, a function that runs ``model`` (not run).

    Lowered through brainpy's own ``bm.jit`` where it has ``lower`` (brainpy >= 2.6), so
    that state, including the connectivity of fused calls, enters as arguments: plain
    ``jax.jit`` would close over it and copy it into the program as constants (gigabytes
    for the full-scale microcircuit). On brainpy 2.5 it is ``jax.jit``, which writes
    tracers into the model's variables: their values are put back. ``model`` is left as
    it was.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._hlo import compiled_text, count_kernel_calls
    >>> net = bhp.EINet(400)
    >>> count_kernel_calls(compiled_text(net, lambda: net.step_run(0, 20.)))[0]  # E and I
    2
    """
    jitted = bm.jit(lambda: step(*args))
    if hasattr(jitted, "lower"):
        return jitted.lower().compile().as_text()
    state = [(var, var.value) for var in model.vars().unique().values()]  # Variables are unhashable on 2.5
    try:
        return jax.jit(lambda: step(*args)).lower().compile().as_text()
    finally:
        for var, value in state:
            var.value = value


def step_collectives(model: bp.DynamicalSystem, *args: Any) -> dict[str, int]:
    """Collectives in one compiled step of ``model`` (``model.step_run(0, *args)``).

    Compiles the step without running it.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> _ = bhp.partition(net, 1)
    >>> sum(bhp.step_collectives(net, 20.).values())  # one device: nothing to exchange
    0
    """
    return count_collectives(compiled_text(model, lambda: model.step_run(0, *args)))
