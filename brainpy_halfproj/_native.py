"""Native XLA FFI handlers for brainevent's numba CPU kernels (opt-in).

Why
---
On brainpy 2.8/2.9 every CPU event kernel is a numba function that brainevent
registers with XLA through a ctypes trampoline
(``brainevent._op.numba_ffi.NumbaCpuFfiHandler``): on each call XLA enters
Python, takes the GIL, walks the call frame with ctypes, wraps every buffer in
``np.frombuffer`` and calls the numba dispatcher. That costs tens of
microseconds per call, whatever the number of spikes, and it dominates small
and medium networks (BENCHMARKS.md, "Kernel paths").

How
---
brainevent funnels every registration through one module-level function,
``_register_numba_cpu_ffi_target(kernel, in_shapes, in_dtypes, out_shapes,
out_dtypes) -> (target_name, out_types)``, looked up at call time by
``numba_kernel``. While native kernels are enabled, that name points to
:func:`_register_native`, which compiles a numba ``@cfunc`` handler for the
*same* numba kernel: the handler reads the XLA call frame with pointer loads,
views each buffer with ``numba.carray`` and calls the kernel, all in machine
code, without Python or the GIL. The call-frame layout is read from
brainevent's own ctypes mirror of XLA's ``c_api.h``, and the FFI API version
it reports is brainevent's. A kernel that cannot be compiled this way keeps
brainevent's path, and :func:`native_kernel_report` says which and why.

What it covers
--------------
On brainevent 0.2.1 and 0.3.0 every numba CPU kernel registers through that one function, and
every other CPU default of brainevent's primitives is plain XLA (no custom call at all). So the
switch covers the kernels that ``bp.dyn`` layers reach and those that brainpy.state networks reach
through brainstate's layers alike: ``FixedNumPerPre``/``FixedNumPerPost`` (the
``ell_binary_matvec`` kernels behind ``brainstate.nn.EventFixedProb``), ``CSR``/``CSC``,
``Dense``, the JIT connectivity classes, as matrix-vector and matrix-matrix products, binary,
weighted or float, and the plasticity updates (``tests/test_native.py``,
``tests/test_native_state.py``).

Nothing here runs on import: importing the plugin leaves brainevent as it is.
Programs traced while the switch is on keep the handlers they were compiled
with; switching off affects programs traced afterwards.

Scope across threads
--------------------
brainevent calls its registration function while a program is traced, in the
thread that traces it. While anything asks for native kernels, that function
is :func:`_dispatch`, which asks the tracing thread's setting:

* :func:`use_native_kernels` sets the process-wide setting, which every thread
  follows;
* inside a :func:`native_kernels` block, the block's setting holds for the
  thread that entered it, until the block exits; blocks nest, and each one
  restores what its thread had before. Blocks in other threads, entered or left
  in any order, do not affect it.

brainevent's own function is put back when the process-wide setting is off and
no thread is inside a block that switches native kernels on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._compat import event_kernel_library

__all__ = [
    "NativeKernelsError",
    "KernelRecord",
    "use_native_kernels",
    "native_kernels",
    "native_kernels_enabled",
    "native_kernel_report",
    "TESTED_BRAINEVENT",
]

#: brainevent releases whose registration function and ctypes mirror this module was tested with.
TESTED_BRAINEVENT: tuple[str, ...] = ("0.2.1", "0.3.0")
#: XLA FFI API versions (``XLA_FFI_API_MAJOR``, ``XLA_FFI_API_MINOR``) tested with.
TESTED_FFI_API: tuple[tuple[int, int], ...] = ((0, 3), (0, 5))


class NativeKernelsError(RuntimeError):
    """Native kernel handlers cannot be used with the installed brainevent or jax.

    Raised by :func:`use_native_kernels` (and :func:`native_kernels`) on a brainevent
    release or XLA FFI version they were not tested with; brainevent is then left as it is.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> issubclass(bhp.NativeKernelsError, RuntimeError)
    True
    """


@dataclasses.dataclass(frozen=True)
class KernelRecord:
    """One numba kernel registered with XLA while native kernels were enabled.

    Attributes
    ----------
    kernel
        The kernel's qualified name (``module.function``).
    target
        The XLA FFI target name the kernel runs under.
    native
        ``True`` if it runs through a native handler, ``False`` if it kept
        brainevent's Python bridge.
    reason
        Why a kernel kept the Python bridge (``None`` for native kernels).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> all(isinstance(record, bhp.KernelRecord) for record in bhp.native_kernel_report())
    True
    """

    kernel: str
    target: str
    native: bool
    reason: str | None = None


_LOCK = threading.RLock()
# "brainevent": brainevent's registration function, kept from the first time _dispatch replaced it
# (a thread may still be inside _dispatch when another puts it back); "installed": whether _dispatch
# replaces it now; "process": the process-wide setting; "blocks": native_kernels(True) blocks open
# in any thread.
_STATE: dict[str, Any] = {"brainevent": None, "installed": False, "process": False, "blocks": 0}
_THREAD = threading.local()  # .stack: the settings of the native_kernels blocks this thread is in
_TARGETS: dict[tuple, tuple[str, KernelRecord]] = {}  # signature -> (target name, record)
_PINNED: list[Any] = []  # cfuncs and kernels that XLA holds raw pointers into: never freed
_COUNTER = itertools.count()


def _ffi_module() -> Any:
    from brainevent._op import numba_ffi

    return numba_ffi


def _unsupported_reason() -> str | None:
    """``None`` if native handlers can be used here, else a sentence saying why not."""
    if event_kernel_library() != "brainevent":
        return None  # brainpylib kernels are native custom calls already; nothing to switch
    try:
        version = importlib.metadata.version("brainevent")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - brainpy >= 2.6 requires it
        return "brainevent is not installed"
    if version not in TESTED_BRAINEVENT:
        return (f"brainevent {version} is installed, but native kernels were tested with brainevent "
                f"{' and '.join(TESTED_BRAINEVENT)} only; their registration internals may differ. "
                f"Install a tested brainevent, or run without native kernels")
    try:
        import numba  # noqa: F401
    except ImportError:
        return "numba is not installed; install the plugin with the [cpu] extra"
    ffi = _ffi_module()
    needed = ("_register_numba_cpu_ffi_target", "XLA_FFI_CallFrame", "XLA_FFI_Buffer", "XLA_FFI_Args",
              "XLA_FFI_Rets", "XLA_FFI_Extension_Base", "XLA_FFI_Metadata_Extension", "XLA_FFI_Metadata",
              "XLA_FFI_Api_Version", "XLA_FFI_API_MAJOR", "XLA_FFI_API_MINOR")
    missing = [name for name in needed if not hasattr(ffi, name)]
    if missing:
        return f"brainevent {version} lacks {', '.join(missing)} in brainevent._op.numba_ffi"
    try:
        from brainevent._op.ffi_naming import kernel_content_fingerprint  # noqa: F401
    except ImportError:
        return f"brainevent {version} lacks brainevent._op.ffi_naming.kernel_content_fingerprint"
    api = (ffi.XLA_FFI_API_MAJOR, ffi.XLA_FFI_API_MINOR)
    if api not in TESTED_FFI_API:
        return (f"the installed jaxlib implements XLA FFI API {api[0]}.{api[1]}, but native kernels were "
                f"tested with {', '.join(f'{a}.{b}' for a, b in TESTED_FFI_API)} only")
    return None


# ----------------------------------------------------------------- the handler


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Byte offsets into XLA's FFI structs, read from brainevent's ctypes mirror."""

    frame_ext: int
    frame_args: int
    frame_rets: int
    ext_type: int
    ext_next: int
    metadata_ext_metadata: int
    metadata_major: int
    metadata_minor: int
    metadata_traits: int
    buffer_data: int
    buffer_dims: int
    metadata_type: int
    api_major: int
    api_minor: int

    @classmethod
    def from_brainevent(cls) -> _Layout:
        f = _ffi_module()
        frame, args, rets = f.XLA_FFI_CallFrame, f.XLA_FFI_Args, f.XLA_FFI_Rets
        version = f.XLA_FFI_Metadata.api_version.offset
        return cls(
            frame_ext=frame.extension_start.offset,
            frame_args=frame.args.offset + args.args.offset,
            frame_rets=frame.rets.offset + rets.rets.offset,
            ext_type=f.XLA_FFI_Extension_Base.type.offset,
            ext_next=f.XLA_FFI_Extension_Base.next.offset,
            metadata_ext_metadata=f.XLA_FFI_Metadata_Extension.metadata.offset,
            metadata_major=version + f.XLA_FFI_Api_Version.major_version.offset,
            metadata_minor=version + f.XLA_FFI_Api_Version.minor_version.offset,
            metadata_traits=f.XLA_FFI_Metadata.traits.offset,
            buffer_data=f.XLA_FFI_Buffer.data.offset,
            buffer_dims=f.XLA_FFI_Buffer.dims.offset,
            metadata_type=int(f.XLA_FFI_Extension_Type.Metadata),
            api_major=int(f.XLA_FFI_API_MAJOR),
            api_minor=int(f.XLA_FFI_API_MINOR),
        )


_INTRINSICS: dict[str, Callable] = {}


def _intrinsics() -> dict[str, Callable]:
    """Pointer access for numba: ``load_i64(address)``, ``load_i32``, ``store_i32(address, value)``, ``voidptr``."""
    if _INTRINSICS:
        return _INTRINSICS
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    def loader(bits: int, result: Any) -> Callable:
        @intrinsic
        def load(typingctx, address):
            def codegen(context, builder, signature, args):
                return builder.load(builder.inttoptr(args[0], ir.PointerType(ir.IntType(bits))))
            return result(types.intp), codegen
        return load

    @intrinsic
    def store_i32(typingctx, address, value):
        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ir.PointerType(ir.IntType(32)))
            builder.store(builder.trunc(args[1], ir.IntType(32)), ptr)
            return context.get_dummy_value()
        return types.void(types.intp, types.intp), codegen

    @intrinsic
    def voidptr(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        return types.voidptr(types.intp), codegen

    _INTRINSICS.update(load_i64=loader(64, types.int64), load_i32=loader(32, types.int32),
                       store_i32=store_i32, voidptr=voidptr)
    return _INTRINSICS


def _handler_source(layout: _Layout, in_ranks: tuple[int, ...], out_ranks: tuple[int, ...]) -> str:
    """Python source of a typed XLA FFI handler for buffers of these ranks (offsets as literals)."""
    lines = [
        "def handler(frame):",
        "    ext = load_i64(frame + L.frame_ext)",
        "    while ext != 0:",
        "        if load_i32(ext + L.ext_type) == L.metadata_type:",
        "            meta = load_i64(ext + L.metadata_ext_metadata)",
        "            store_i32(meta + L.metadata_major, L.api_major)",
        "            store_i32(meta + L.metadata_minor, L.api_minor)",
        "            store_i32(meta + L.metadata_traits, 0)",
        "            return 0",
        "        ext = load_i64(ext + L.ext_next)",
        "    args = load_i64(frame + L.frame_args)",
        "    rets = load_i64(frame + L.frame_rets)",
    ]
    names = []
    for kind, ranks in (("args", in_ranks), ("rets", out_ranks)):
        for i, rank in enumerate(ranks):
            name = f"{kind[0]}{i}"
            names.append(name)
            lines.append(f"    buf = load_i64({kind} + {8 * i})")
            lines.append("    dims = load_i64(buf + L.buffer_dims)")
            shape = "".join(f"load_i64(dims + {8 * d}), " for d in range(rank))
            lines.append(f"    {name} = carray(voidptr(load_i64(buf + L.buffer_data)), ({shape}), "
                         f"DTYPES[{len(names) - 1}])")
    lines.append(f"    kernel({', '.join(names)})")
    lines.append("    return 0")
    source = "\n".join(lines) + "\n"
    return re.sub(r"L\.(\w+)", lambda m: str(getattr(layout, m.group(1))), source)


def _compile_handler(kernel: Any, in_ranks: tuple[int, ...], in_dtypes: tuple[np.dtype, ...],
                     out_ranks: tuple[int, ...], out_dtypes: tuple[np.dtype, ...]) -> Any:
    """A numba ``@cfunc`` with XLA's handler signature, calling ``kernel`` on the frame's buffers."""
    import numba
    from numba import types

    scope: dict[str, Any] = dict(_intrinsics(), carray=numba.carray,
                                 kernel=kernel, DTYPES=tuple(np.dtype(d).type for d in in_dtypes + out_dtypes))
    source = _handler_source(_Layout.from_brainevent(), in_ranks, out_ranks)
    exec(compile(source, "<brainpy_halfproj native handler>", "exec"), scope)
    return numba.cfunc(types.intp(types.intp), nopython=True)(scope["handler"])


def _kernel_name(kernel: Any) -> str:
    fn = getattr(kernel, "py_func", kernel)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(kernel).__name__)}"


def _register_native(kernel: Any, input_shapes: tuple, input_dtypes: tuple, output_shapes: tuple,
                     output_dtypes: tuple) -> tuple[str, tuple]:
    """Drop-in for brainevent's ``_register_numba_cpu_ffi_target``: a native handler where possible."""
    import jax
    from brainevent._op.ffi_naming import kernel_content_fingerprint

    in_ranks = tuple(len(s) for s in input_shapes)
    out_ranks = tuple(len(s) for s in output_shapes)
    # brainevent builds a new kernel object for every trace; kernels with the same content (code,
    # constants and closure values) share one handler, as they share one target in brainevent.
    identity = kernel_content_fingerprint(kernel) or id(kernel)
    signature = (identity, tuple(map(str, input_dtypes)), in_ranks, tuple(map(str, output_dtypes)), out_ranks)
    out_types = tuple(jax.ShapeDtypeStruct(s, d) for s, d in zip(output_shapes, output_dtypes, strict=True))
    with _LOCK:
        hit = _TARGETS.get(signature)
        if hit is not None:
            return hit[0], out_types
        name = f"brainpy_halfproj_native_{next(_COUNTER)}"
        try:
            handler = _compile_handler(kernel, in_ranks, input_dtypes, out_ranks, output_dtypes)
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler.address), platform="cpu")
        except Exception as err:  # noqa: BLE001 - any failure keeps brainevent's own path
            name, _ = _STATE["brainevent"](kernel, input_shapes, input_dtypes, output_shapes, output_dtypes)
            record = KernelRecord(_kernel_name(kernel), name, False, f"{type(err).__name__}: {err}")
        else:
            _PINNED.extend((handler, kernel))
            record = KernelRecord(_kernel_name(kernel), name, True)
        _TARGETS[signature] = (name, record)
        return name, out_types


# ----------------------------------------------------------------- the switch


def _dispatch(kernel: Any, input_shapes: tuple, input_dtypes: tuple, output_shapes: tuple,
              output_dtypes: tuple) -> tuple[str, tuple]:
    """brainevent's registration function while native kernels are asked for: the tracing thread's choice."""
    if native_kernels_enabled():
        return _register_native(kernel, input_shapes, input_dtypes, output_shapes, output_dtypes)
    return _STATE["brainevent"](kernel, input_shapes, input_dtypes, output_shapes, output_dtypes)


def _stack() -> list[bool]:
    stack = getattr(_THREAD, "stack", None)
    if stack is None:
        stack = _THREAD.stack = []
    return stack


def _update_hook() -> None:
    """Install :func:`_dispatch` while anything asks for native kernels, else restore brainevent's function.

    Call with ``_LOCK`` held; raises ``NativeKernelsError`` (changing nothing) where they cannot be used.
    """
    wanted = _STATE["process"] or _STATE["blocks"] > 0
    if wanted == _STATE["installed"]:
        return
    ffi = _ffi_module()
    if wanted:
        reason = _unsupported_reason()
        if reason is not None:
            raise NativeKernelsError(f"use_native_kernels: {reason}.")
        _STATE["brainevent"] = ffi._register_numba_cpu_ffi_target
        ffi._register_numba_cpu_ffi_target = _dispatch
    else:
        ffi._register_numba_cpu_ffi_target = _STATE["brainevent"]
    _STATE["installed"] = wanted


def native_kernels_enabled() -> bool:
    """Whether programs traced now, in this thread, get native kernel handlers.

    That is the innermost :func:`native_kernels` block of this thread, if any, else the
    process-wide :func:`use_native_kernels` setting (``False`` on brainpy 2.5, where the
    switch does nothing).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> bhp.native_kernels_enabled()
    False
    """
    if event_kernel_library() != "brainevent":
        return False
    stack = _stack()
    return stack[-1] if stack else bool(_STATE["process"])


def use_native_kernels(enable: bool = True) -> None:
    """Run brainevent's numba CPU kernels through native XLA handlers (or stop doing so).

    On brainpy 2.8/2.9 each CPU event-kernel call otherwise passes through a
    Python callback that costs tens of microseconds. With native handlers the
    same numba kernels are called with the same arguments from machine code,
    so results are identical and the fixed cost per call falls to a few
    microseconds. Kernels that cannot be compiled this way keep brainevent's
    path (see :func:`native_kernel_report`).

    This is the process-wide setting: every thread follows it, except inside a
    :func:`native_kernels` block, which decides for its own thread until it exits
    (the module docstring states the rule). The switch affects programs traced
    (``bm.jit``, ``bm.for_loop``, ...) after it; programs already compiled keep
    their handlers. It changes nothing in brainpy itself. On brainpy 2.5 the
    brainpylib kernels are native already, and the call does nothing.

    Parameters
    ----------
    enable
        ``True`` to switch native handlers on, ``False`` to switch them off.

    Raises
    ------
    NativeKernelsError
        When enabling on an untested brainevent, XLA FFI API or without numba;
        the message names the version found and what was tested. brainevent is
        then left as it is.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> bhp.use_native_kernels()
    >>> net = bhp.EINet(400)
    >>> bhp.run_einet(net, 100).shape
    (100, 400)
    >>> bhp.use_native_kernels(False)
    """
    if not isinstance(enable, bool):
        raise TypeError(f"use_native_kernels: `enable` must be True or False, got {enable!r}.")
    if event_kernel_library() != "brainevent":
        return
    with _LOCK:
        before = _STATE["process"]
        _STATE["process"] = enable
        try:
            _update_hook()
        except NativeKernelsError:
            _STATE["process"] = before
            raise


@contextlib.contextmanager
def native_kernels(enable: bool = True) -> Iterator[None]:
    """Native kernel handlers on (or off) for the programs this thread traces inside the block.

    The block's setting holds for the thread that entered it, whatever other threads do
    (their blocks, entered and left in any order, or :func:`use_native_kernels`); on exit
    the thread gets back what it had before. Blocks nest.

    Parameters
    ----------
    enable
        ``True``: native handlers inside the block; ``False``: brainevent's Python bridge.

    Raises
    ------
    NativeKernelsError
        As :func:`use_native_kernels`, when entering a block that enables them.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> with bhp.native_kernels():
    ...     spikes = bhp.run_einet(bhp.EINet(400), 50)
    >>> bhp.native_kernels_enabled()
    False
    """
    if not isinstance(enable, bool):
        raise TypeError(f"native_kernels: `enable` must be True or False, got {enable!r}.")
    if event_kernel_library() != "brainevent":
        yield
        return
    stack = _stack()  # this thread's, even if the block is left from another thread
    with _LOCK:
        _STATE["blocks"] += enable
        try:
            _update_hook()
        except NativeKernelsError:
            _STATE["blocks"] -= enable
            raise
        stack.append(enable)
    try:
        yield
    finally:
        with _LOCK:
            stack.pop()
            _STATE["blocks"] -= enable
            _update_hook()


def native_kernel_report() -> list[KernelRecord]:
    """Every numba kernel registered while native kernels were on: native, or why not.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> with bhp.native_kernels():
    ...     _ = bhp.run_einet(bhp.EINet(400), 10)
    >>> records = bhp.native_kernel_report()  # empty on brainpy 2.5, whose kernels are native already
    >>> all(isinstance(r, bhp.KernelRecord) and (r.native or r.reason) for r in records)
    True
    """
    with _LOCK:
        return [record for _, record in _TARGETS.values()]
