"""The largest fused elementwise kernel of a compiled cuda step, timed alone, and the device's
peak memory bandwidth to compare it with (for benchmarks/cuda.py).

How one kernel is isolated: the generated module's host driver looks its kernels up by name
(`kernel_7[grid](...)`) in the module's globals at every call, so for one step each kernel
attribute is replaced by a recorder that notes the launch (grid, arguments: device views into
the step's arenas, which stay valid) and launches it.  The elementwise kernels are the
grid-stride ones without a reduction (render.py); the bytes a launch moves are read off its
source: every array it loads (`x = a3[...]`) is read once and every array it stores
(`a3[...] = t`) written once, at the size the launch passed (a broadcast operand is small).
That is the least traffic the kernel can make, so bytes / time is the achieved bandwidth.

Timing the launch alone: a numba-cuda launch costs the host several microseconds of Python,
longer than a small kernel runs, so a loop of launches measures the host.  On a GPU the
launches are therefore queued behind a kernel that sleeps on the device (`cuda.nanosleep`)
while the host enqueues them; CUDA events around the queued launches then time the device
alone.  The host's own time per launch (launch and synchronise) is reported beside it.  In
the simulator there are no device clocks: both are wall-clock times and mean nothing.

Peak bandwidth, two ways: the theoretical one from the device's attributes (memory clock rate
x 2 for double data rate x bus width), and the practical one measured as a large
device-to-device copy (cuMemcpyDtoD; it reads and writes each byte).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

_KERNEL = re.compile(r"^def (kernel_\d+)\(([^)]*)\):\n((?:    .*\n|\n)*)", re.MULTILINE)
_LOAD = re.compile(r"= (a\d+)\[")
_STORE = re.compile(r"^\s*(a\d+)\[[^\]]*\] = ", re.MULTILINE)


@dataclass
class Launch:
    """One recorded kernel launch of the host driver."""

    name: str
    kernel: object              # the real dispatcher
    config: tuple
    args: tuple


@dataclass
class KernelMeasurement:
    workload: str
    kernel: str
    groups: str                 # the driver's comment(s) naming the fused ops
    elements: int
    arrays: str                 # "3 read, 3 written"
    bytes: int
    device_us: float            # per launch, device time (GPU: events, queued launches)
    host_us: float              # per launch, launch + synchronise on the host
    queued: bool                # whether the queue stayed full while timing (GPU only)
    note: str = ""

    @property
    def gbps(self) -> float:
        return self.bytes / (self.device_us * 1e-6) / 1e9


def elementwise_kernels(source: str) -> dict[str, tuple[list[str], set[str], set[str]]]:
    """name -> (parameter names, arrays loaded, arrays stored) of each elementwise kernel of a
    generated module (grid-stride, no reduction: no shared memory, no per-cell loop)."""
    found = {}
    for match in _KERNEL.finditer(source):
        name, params, body = match.group(1), match.group(2), match.group(3)
        if "while g < total:" not in body or "cuda.shared" in body:
            continue
        found[name] = ([p.strip() for p in params.split(",") if p.strip()],
                       set(_LOAD.findall(body)), set(_STORE.findall(body)))
    return found


def _groups_of(source: str, name: str) -> str:
    """The driver's comments (`# k39 matmul: matmul mul ...`) of the groups launching `name`."""
    lines = source.splitlines()
    seen = []
    for k, line in enumerate(lines):
        if line.strip().startswith(f"{name}["):
            comments = [c.strip() for c in lines[:k] if c.strip().startswith("# k")]
            if comments:
                comment = comments[-1][2:].split(" ", 1)[1]
                if comment not in seen:
                    seen.append(comment)
    return "; ".join(seen) or "?"


class _Recorder:
    """Stands in for a kernel in the module's globals: records each launch, then runs it."""

    def __init__(self, name: str, kernel, log: list[Launch]):
        self.name, self.kernel, self.log = name, kernel, log

    def __getitem__(self, config):
        launcher = self.kernel[config]

        def launch(*args):
            self.log.append(Launch(self.name, self.kernel, config, args))
            return launcher(*args)
        return launch


def record_launches(compiled, step) -> list[Launch]:
    """The kernel launches of one call of `step` (a bound step of `compiled`)."""
    module, log = compiled.module, []
    names = [n for n in vars(module) if re.fullmatch(r"kernel_\d+", n)]
    originals = {n: getattr(module, n) for n in names}
    try:
        for name, kernel in originals.items():
            setattr(module, name, _Recorder(name, kernel, log))
        step()
    finally:
        for name, kernel in originals.items():
            setattr(module, name, kernel)
    return log


def _bytes(launch: Launch, params, loaded, stored) -> tuple[int, int]:
    """(bytes moved, elements) of a launch: loads read once, stores written once."""
    by_name = dict(zip(params, launch.args))
    size = lambda a: int(a.size) * np.dtype(a.dtype).itemsize        # noqa: E731
    moved = sum(size(by_name[p]) for p in loaded) + sum(size(by_name[p]) for p in stored)
    elements = max((int(by_name[p].size) for p in stored), default=0)
    return moved, elements


def largest_elementwise(compiled, launches: list[Launch]):
    """(launch, bytes, elements, loaded, stored) of the elementwise launch moving most bytes."""
    kernels = elementwise_kernels(compiled.source)
    best = None
    for launch in launches:
        if launch.name in kernels:
            params, loaded, stored = kernels[launch.name]
            moved, elements = _bytes(launch, params, loaded, stored)
            if best is None or moved > best[1]:
                best = (launch, moved, elements, loaded, stored)
    return best


def _sleep_kernel(cuda):
    @cuda.jit
    def sleep(microseconds):
        for _ in range(microseconds):
            cuda.nanosleep(1000)
    return sleep


def time_launch(cuda, launch: Launch, repeats: int, simulated: bool) -> tuple[float, float, bool]:
    """(device µs, host µs, queue stayed full) per launch of the recorded `launch`."""
    run = launch.kernel[launch.config]
    run(*launch.args)                                   # compiled and warm
    cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        run(*launch.args)
        cuda.synchronize()
    host_us = (time.perf_counter() - started) / repeats * 1e6
    if simulated:
        return host_us, host_us, False
    sleep = _sleep_kernel(cuda)
    sleep[1, 1](1)
    cuda.synchronize()
    sleep_us = int(3 * host_us * repeats) + 2000        # longer than enqueueing all of them
    for _ in range(3):              # nanosleep may sleep less than asked: then sleep longer
        before, start, end = cuda.event(), cuda.event(), cuda.event()
        before.record()
        sleep[1, 1](sleep_us)
        start.record()
        enqueue = time.perf_counter()
        for _ in range(repeats):
            run(*launch.args)
        enqueue_ms = (time.perf_counter() - enqueue) * 1e3
        end.record()
        end.synchronize()
        queued = enqueue_ms < before.elapsed_time(start)
        if queued:
            break
        sleep_us *= 4
    return start.elapsed_time(end) / repeats * 1e3, host_us, queued


def measure_largest(workload: str, compiled, step, cuda, simulated: bool,
                    repeats: int) -> KernelMeasurement | None:
    """Record one step's launches and time the largest elementwise one alone.  Run it after
    the step timings: the repeated launches (an Adam update, typically) change the state."""
    found = largest_elementwise(compiled, record_launches(compiled, step))
    if found is None:
        return None
    launch, moved, elements, loaded, stored = found
    device_us, host_us, queued = time_launch(cuda, launch, repeats, simulated)
    note = "simulator: wall clock" if simulated else \
        ("" if queued else "host fell behind: the queue drained, device time overstated")
    return KernelMeasurement(workload, launch.name, _groups_of(compiled.source, launch.name),
                             elements, f"{len(loaded)} read, {len(stored)} written", moved,
                             device_us, host_us, queued, note)


@dataclass
class Peak:
    theoretical_gbps: float | None        # from memory clock x 2 x bus width
    copy_gbps: float                      # measured device-to-device copy
    copy_bytes: int
    device: str


def peak_bandwidth(cuda, simulated: bool, copy_bytes: int) -> Peak:
    device = cuda.get_current_device()
    name = getattr(device, "name", b"simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    theoretical = None
    if not simulated:
        try:                            # kHz and bits; a driver may no longer report them
            clock_khz, bus_bits = device.MEMORY_CLOCK_RATE, device.GLOBAL_MEMORY_BUS_WIDTH
            theoretical = clock_khz * 1e3 * 2 * bus_bits / 8 / 1e9 or None
        except Exception:               # noqa: BLE001 - then only the measured copy
            theoretical = None
    source = cuda.to_device(np.ones(copy_bytes, np.uint8))
    target = cuda.device_array(copy_bytes, np.uint8)
    target.copy_to_device(source)                       # warm
    cuda.synchronize()
    repeats = 20 if not simulated else 3
    if simulated:
        started = time.perf_counter()
        for _ in range(repeats):
            target.copy_to_device(source)
        seconds = (time.perf_counter() - started) / repeats
    else:
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(repeats):
            target.copy_to_device(source)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / repeats / 1e3
    return Peak(theoretical, 2 * copy_bytes / seconds / 1e9, copy_bytes, name)


__all__ = ["KernelMeasurement", "Peak", "elementwise_kernels", "largest_elementwise",
           "measure_largest", "peak_bandwidth", "record_launches", "time_launch"]
