"""What the processor is, from /proc/cpuinfo: its feature flags and its maker (the BLAS's
choice and whether netdsl's own float32 kernels run depend on them, blas_library.py)."""
from __future__ import annotations

from functools import lru_cache

# What AVX-512 kernels use (OpenBLAS's SkylakeX kernels, netdsl's own gemm_*.py).
AVX512 = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})


def cpu_flags() -> frozenset[str]:
    """The processor's feature flags from /proc/cpuinfo (empty where there is none)."""
    return frozenset(cpuinfo().get("flags", "").split())


@lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo, read once (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break                        # the end of the first processor's block
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def intel() -> bool:
    """Whether the processor is Intel's."""
    vendor = cpuinfo().get("vendor_id")
    if vendor is not None:
        return "GenuineIntel" in vendor
    import platform
    return "intel" in platform.processor().lower()


__all__ = ["AVX512", "cpu_flags", "cpuinfo", "intel"]
