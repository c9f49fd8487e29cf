"""Which BLAS netdsl's compiled products call: SciPy's OpenBLAS, or Intel's MKL.

The products (lowerings/linalg.py) call `netdsl_sgemm` / `netdsl_dgemm`, Fortran gemm (every
argument by address, 32-bit integers), and blas_threads.py sets the thread count through
`netdsl_blas_set_num_threads` / `netdsl_blas_get_num_threads`.  `bind()` points these four
symbols at one library for LLVM (`llvmlite.binding.add_symbol`) when blas_threads.py is imported,
which every generated module does before Numba loads its cached code; the machine code names the
symbols only, so the same cached kernels run on either library.

Why two: on an Intel Xeon (Sapphire Rapids, 2 cores) MKL ran the benchmark's products faster
than OpenBLAS's SkylakeX kernels, one thread each: [128, 784] @ [784, 256] 328 against 402 us,
[32, 128] @ [128, 512] (an LSTM step's) 32 against 52 us; the MLP step 1.41 -> 1.20-1.28 ms,
the LSTM step 8.0-8.7 -> 6.5 ms.  On AMD processors MKL does not use its AVX-512 kernels, so
OpenBLAS stays their default, unless OPENBLAS_CORETYPE holds OpenBLAS to kernels without
AVX-512 on an AVX-512 processor (`Haswell`, as the environment of the AMD EPYC (Zen 5) of
2026-12-05 set it).  Then both run AVX2 kernels and MKL's were as fast or faster: sgemm
[128, 784] @ [784, 256] 474 against 470 us, [32, 128] @ [128, 512] 46 against 55 us, one
thread; the steps at two / one threads, MKL against OpenBLAS: LeNet-5 2.04 / 3.22 against
2.53 / 4.54 ms, LSTM 4.4 / 7.2 against 7.0 / 7.6, GRU 3.1 / 5.2 against 5.0 / 5.7, the MLP's
forward 0.35 / 0.67 against 0.40 / 0.69; the MLP's step 1.01 / 1.59 against 0.86 / 1.51.

On an AMD processor without AVX-512 the two run AVX2 kernels too, and MKL won again: on the
AMD EPYC (Zen 3, AVX2) of 2026-12-07, `benchmarks/run.py --quick`, MKL and OpenBLAS
alternated twice, ms at two / one threads, MKL against OpenBLAS: LeNet-5 5.6-6.1 / 7.0-8.9
against 7.4-8.6 / 11.3-11.7, ResNet 45-51 / 87-101 against 53-67 / 116-131, LSTM 7.0-7.4 /
11.1-13.5 against 12.9-13.5 / 14.0-14.9, GRU 5.2-5.6 / 8.1-9.9 against 10.3-12.0 /
10.9-12.1, the MLP's forward 0.55-0.60 / 0.90-0.99 against 0.83-0.86 / 1.09-1.23; the
transformer, VAE, GAN and DDPM within the noise.  The MLP's step, which the first two rounds
had slower on MKL (2.2 against 1.7-1.8 ms at two threads), five more alternations: medians
1.70 / 2.46 against 2.16 / 2.75 ms.

Where MKL runs on a processor not Intel's, products of 2 to 15 columns call OpenBLAS instead,
on one thread (`narrow_library`: MKL's kernels for them were 2.5-3.5x slower on the Zen 3).

`NETDSL_BLAS=openblas|mkl` chooses; unset or `auto`: MKL where the `mkl` package is installed
(`pip install netdsl[mkl]`) and the processor is Intel's, or OpenBLAS runs no AVX-512 kernels
on it (held below them as above, or the processor has none), else OpenBLAS.

On an AMD processor with AVX-512, float32 products of 16 columns or more run in netdsl's own
kernels whichever BLAS is chosen (`own_sgemm`, `own_by_default`); the BLAS keeps the rest.
On the AMD EPYC (Zen 4) of 2026-12-06, with OpenBLAS on its own SkylakeX kernels, the steps
ran as fast with MKL under the own kernels as with OpenBLAS (LeNet-5, ResNet, the MLP, the
transformer, the VAE, two runs each, within the machine's noise), so OpenBLAS stays.

MKL's first call sets it up for the processor (loads its kernel library: 10.3 ms on the Zen
3), which a process's first step paid; `bind()` makes that call (a 1 x 1 product) on a thread
of its own, beside the rest of the compile (ctypes releases the GIL), and `ready()` waits for
it, which the compile does before handing out its graph and every fork does first
(`os.register_at_fork`: a forked child must not inherit a lock held by a thread it lacks).

Loading the libraries takes time too (on the Zen 3: MKL's libmkl_rt 25 ms, SciPy's OpenBLAS
12 ms), which the warm start paid in `bind()`, after Numba's import.  The CPU target's compile
starts `preload()` first, a thread that loads them while the compile's passes, code generation
and imports go on (the dynamic loader runs without the GIL); `chosen()` and `narrow_library()`
wait for it, and so does every fork.

MKL runs sequentially (unless MKL_THREADING_LAYER says otherwise) and netdsl cuts its large
products across Numba's threads (linalg.matmul_2d_parallel).  MKL's own threads were a little
faster (MLP step at two threads: TBB layer 0.87-0.91 ms, GNU OpenMP 0.92, Intel OpenMP 0.96;
cut across Numba's: 0.96), but each costs more than that: on TBB, Numba's fork handler (the
compile helper forks) waited forever for MKL's TBB workers; OpenMP's threads spin, which a
busy machine pays for, and GNU OpenMP does not survive a fork.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

from .processor import AVX512, cpu_flags, intel

SYMBOLS = ("netdsl_sgemm", "netdsl_dgemm", "netdsl_blas_set_num_threads",
           "netdsl_blas_get_num_threads")
# The gemms of narrow products, `narrow_library()`'s: out of more than one column and fewer
# than NARROW_COLUMNS (linalg._block).  Its own bound, measured for MKL on the Zen 3, though
# it equals linalg.OWN_MIN_COLUMNS today, a bound measured for netdsl's own kernels.
NARROW_SYMBOLS = ("netdsl_sgemm_narrow", "netdsl_dgemm_narrow")
NARROW_COLUMNS = 16
_OPENBLAS_THREADS = (("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                     ("openblas_set_num_threads", "openblas_get_num_threads"))
_MKL_THREADING = {"INTEL": 0, "SEQUENTIAL": 1, "TBB": 2, "GNU": 3}
_SET_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)
_GET_TYPE = ctypes.CFUNCTYPE(ctypes.c_int)
_KEEP = []                                  # ctypes callbacks whose addresses LLVM holds
# An int32 that compiled code reads before a float32 product: 1 where it runs in netdsl's own
# kernels (own_sgemm) and they are loaded (own_entry.load), and the function it then calls
# (own_entry.trampoline, to their C entry point own_gemm.py), both bound by symbol like the
# four above, so that cached code follows the process's choice.  Where the kernels do not
# run, the function's symbol names one that does nothing, never called.
OWN_SGEMM, OWN_GEMM = "netdsl_own_sgemm", "netdsl_own_gemm_f32"
_OWN_SGEMM_FLAG = ctypes.c_int32(0)
_NO_GEMM = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 8))(
    lambda *args: None)
_CAPSULE_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
_CAPSULE_NAME = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)
_first_call: threading.Thread | None = None     # MKL's first call, on its own thread
_preload: threading.Thread | None = None        # loading the libraries, on its own thread
_loading = threading.RLock()                    # held while chosen()/narrow_library() load


@dataclass(frozen=True)
class BlasLibrary:
    name: str                               # "openblas" | "mkl"
    path: str
    addresses: tuple[int, int, int, int]    # sgemm, dgemm, set threads, get threads
    # Whether it runs a product on threads of its own (OpenBLAS; MKL on a threading layer set
    # by MKL_THREADING_LAYER), or on one thread, netdsl cutting large products across Numba's.
    own_threads: bool = True


def choose(requested: str, mkl_installed: bool, intel: bool,
           openblas_held_back: bool = False, avx512: bool = True) -> str:
    """The library's name for NETDSL_BLAS=`requested` (a netdsl.Error for an unknown one or
    for mkl where it is not installed); `openblas_held_back`: OPENBLAS_CORETYPE keeps OpenBLAS
    from the processor's AVX-512 kernels (`_openblas_held_back`); `avx512`: the processor has
    them (`processor.AVX512`)."""
    from ...errors import Error
    requested = requested.strip().lower() or "auto"
    if requested not in ("auto", "openblas", "mkl"):
        raise Error(f"NETDSL_BLAS must be openblas, mkl or auto, got {requested!r}",
                    hint="unset it to let netdsl choose (MKL on Intel processors where the "
                         "mkl package is installed)")
    if requested == "mkl" and not mkl_installed:
        raise Error("NETDSL_BLAS=mkl, but Intel MKL is not installed",
                    hint="pip install mkl (or netdsl[mkl]), or unset NETDSL_BLAS")
    if requested == "auto":
        return ("mkl" if mkl_installed and (intel or openblas_held_back or not avx512)
                else "openblas")
    return requested


def chosen() -> BlasLibrary:
    """The library this process's products call, loaded (once)."""
    with _loading:
        return _load_chosen()


@lru_cache(maxsize=1)
def _load_chosen() -> BlasLibrary:
    name, mkl_path = _choice()
    return _mkl(mkl_path) if name == "mkl" else _openblas()


@lru_cache(maxsize=1)
def _choice() -> tuple[str, str | None]:
    """The chosen library's name and MKL's path (None where it is not installed), decided
    without loading either library."""
    mkl_path = _mkl_path()
    flags = cpu_flags()
    return choose(os.environ.get("NETDSL_BLAS", ""), mkl_path is not None, intel(),
                  _openblas_held_back(os.environ.get("OPENBLAS_CORETYPE"), flags),
                  AVX512 <= flags), mkl_path


def _own_threads(name: str) -> bool:
    """BlasLibrary.own_threads of the library `name`: MKL runs sequentially, unless
    MKL_THREADING_LAYER says otherwise."""
    return name != "mkl" or "MKL_THREADING_LAYER" in os.environ


def narrow_library() -> BlasLibrary:
    """The library of narrow products, out of 2 to 15 columns (a classifier's last layer):
    SciPy's OpenBLAS, held to one thread, where MKL is chosen on a processor not Intel's, and
    otherwise the chosen library.  MKL's kernels for them on AMD processors are slow: on the
    AMD EPYC (Zen 3) of 2026-12-07, one thread, MKL against OpenBLAS: [128, 256] @ [10, 256]ᵀ
    (the MLP's last layer) 72 against 22 us, [64, 84] @ [10, 84]ᵀ (LeNet-5's) 13.6 against 5.3,
    [256, 64] @ [64, 8] 21 against 8.6, [128, 512] @ [4, 512]ᵀ 37 against 30; a single column
    stays with MKL (2.7 against 12.4 us).  One thread, so that a narrow product inside a
    parallel loop (a convolution's chunk) runs on the thread that calls it, as MKL's do; SciPy's
    own linear algebra in the same process then runs on one thread too (NumPy's OpenBLAS is
    another library, untouched)."""
    with _loading:
        return _load_narrow()


@lru_cache(maxsize=1)
def _load_narrow() -> BlasLibrary:
    library = chosen()
    if library.name != "mkl" or intel():
        return library
    narrow = _openblas()
    _SET_TYPE(narrow.addresses[2])(1)
    return narrow


def bind() -> BlasLibrary:
    """Point the four symbols at the chosen library, the narrow products' two at
    `narrow_library()`, OWN_SGEMM at its flag (0 until own_entry.load raises it) and OWN_GEMM
    at the trampoline to netdsl's own kernels (or a no-op where they do not run); returns
    the chosen library."""
    import llvmlite.binding as llvm
    library = chosen()
    for symbol, address in zip(SYMBOLS, library.addresses):
        llvm.add_symbol(symbol, address)
    for symbol, address in zip(NARROW_SYMBOLS, narrow_library().addresses):
        llvm.add_symbol(symbol, address)
    llvm.add_symbol(OWN_SGEMM, ctypes.addressof(_OWN_SGEMM_FLAG))
    if own_sgemm():
        from .own_entry import trampoline
        llvm.add_symbol(OWN_GEMM, trampoline())
    else:
        llvm.add_symbol(OWN_GEMM, _address(_NO_GEMM))
    if library.name == "mkl":
        _start_first_call(library.addresses[0])
    return library


def preload() -> None:
    """Load the chosen library and the narrow products' on a thread of its own, once per
    process (see the module docstring).  A failure there (NETDSL_BLAS naming no library) is
    left for the caller's own chosen() to raise again."""
    global _preload
    if _preload is not None or _load_narrow.cache_info().currsize:
        return

    def load():
        try:
            narrow_library()
        except Exception:       # chosen() raises it again where the compile calls it
            pass

    _preload = threading.Thread(target=load, name="netdsl-blas-load", daemon=True)
    _preload.start()


def ready() -> None:
    """Wait for the libraries' loading and MKL's first call where `preload()` and `bind()`
    started them (see the module docstring)."""
    global _first_call
    if _preload is not None:
        _preload.join()
    if _first_call is not None:
        _first_call.join()
        _first_call = None


def _start_first_call(sgemm_address: int) -> None:
    global _first_call
    if _first_call is not None:
        return
    sgemm = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(sgemm_address)

    def first_call():
        no, size = ctypes.c_char(b"n"), ctypes.c_int(1)
        one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
        a, b, c = ctypes.c_float(1.0), ctypes.c_float(1.0), ctypes.c_float(0.0)
        at = ctypes.byref
        sgemm(at(no), at(no), at(size), at(size), at(size), at(one), at(a), at(size), at(b),
              at(size), at(zero), at(c), at(size))

    _first_call = threading.Thread(target=first_call, name="netdsl-mkl-first-call",
                                   daemon=True)
    _first_call.start()


os.register_at_fork(before=ready)


def set_own_sgemm_flag() -> None:
    """Float32 products run in netdsl's own kernels from now on (own_entry.load, once their
    entry point is loaded)."""
    _OWN_SGEMM_FLAG.value = 1


@lru_cache(maxsize=1)
def own_sgemm() -> bool:
    """Whether float32 products (but aᵀ @ bᵀ, and but those narrower than 16 columns:
    linalg.OWN_MIN_COLUMNS) run in netdsl's own kernels (gemm_nt.py, gemm_nn.py: 1.8-2.6x
    MKL's AVX2 kernels on a Zen 5 EPYC) rather than in the BLAS.  NETDSL_SGEMM=netdsl or blas
    chooses; unset or auto: `own_by_default`."""
    from ...errors import Error
    requested = os.environ.get("NETDSL_SGEMM", "").strip().lower() or "auto"
    if requested not in ("auto", "netdsl", "blas"):
        raise Error(f"NETDSL_SGEMM must be netdsl, blas or auto, got {requested!r}",
                    hint="unset it to let netdsl choose (its own float32 products where "
                         "the BLAS runs without the processor's AVX-512)")
    if requested != "auto":
        return requested == "netdsl"
    flags = cpu_flags()
    return own_by_default(flags, intel(), _choice()[0],
                          _openblas_held_back(os.environ.get("OPENBLAS_CORETYPE"), flags))


def netdsl_cuts_products() -> bool:
    """Whether netdsl cuts a large product across Numba's threads (linalg.matmul_2d_parallel)
    rather than leaving it to the BLAS's own threads: where the BLAS runs one thread (MKL as
    netdsl loads it) or netdsl's own float32 kernels, which are serial, run the products."""
    return not _own_threads(_choice()[0]) or own_sgemm()


def own_by_default(flags: frozenset[str], intel: bool, blas: str, held_back: bool) -> bool:
    """Whether netdsl's own float32 kernels run unless NETDSL_SGEMM says: on a processor with
    AVX-512 that is not Intel's, whatever the BLAS (MKL keeps its AVX-512 kernels for Intel's;
    OpenBLAS's SkylakeX kernels, which it runs on an AMD Zen 4, lost to them in every step
    measured there), and on Intel's where OpenBLAS is held below its AVX-512 kernels.
    Measured on an AMD EPYC (Zen 4) on 2026-12-06, OpenBLAS's own kernels against netdsl's
    (OPENBLAS_CORETYPE unset, both ways beside torch, ms at two / one threads): LeNet-5
    3.67 / 5.71 against 2.13 / 4.56, ResNet 47.6 / 69.2 against 31.0 / 50.7, LSTM 8.66 / 10.0
    against 3.57 / 6.99, GRU 4.80 / 7.57 against 2.66 / 5.79, the MLP's forward 0.47 / 0.77
    against 0.35 / 0.72."""
    if not AVX512 <= flags:
        return False
    if not intel:
        return True
    return blas != "mkl" and held_back


# OpenBLAS's names (OPENBLAS_CORETYPE, any case) of its kernels that use AVX-512.
_AVX512_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


def _openblas_held_back(coretype: str | None, flags: frozenset[str]) -> bool:
    """Whether OPENBLAS_CORETYPE=`coretype` names kernels without AVX-512 on a processor with
    `flags` that has it (unset or empty: OpenBLAS chooses for the processor itself)."""
    coretype = (coretype or "").strip().lower()
    return bool(coretype) and coretype not in _AVX512_CORES and AVX512 <= flags


def _mkl_path() -> str | None:
    """libmkl_rt where the mkl package (or a system MKL) put it, or None."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
        if found:
            return found[-1]
    return ctypes.util.find_library("mkl_rt")


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value


def _mkl(path: str) -> BlasLibrary:
    library = ctypes.CDLL(path)
    # Sequential: netdsl cuts large products across Numba's threads itself (linalg.py).  The
    # threading layer is fixed by MKL's first call; MKL_THREADING_LAYER, if set, decides.
    sequential = not _own_threads("mkl")
    if sequential:
        library.MKL_Set_Threading_Layer(_MKL_THREADING["SEQUENTIAL"])
    return BlasLibrary("mkl", path, (_address(library.sgemm), _address(library.dgemm),
                                     _address(library.MKL_Set_Num_Threads),
                                     _address(library.MKL_Get_Max_Threads)),
                       own_threads=not sequential)


def _openblas() -> BlasLibrary:
    """SciPy's OpenBLAS: gemm from its cython_blas table (what Numba's np.dot calls), the
    thread functions by name from the library file it loaded."""
    from ..scipy_blas import load_cython_blas
    table = load_cython_blas().__pyx_capi__
    # Prototypes of our own: setting argtypes on ctypes.pythonapi's would change them for
    # everything else in the process that calls these functions.
    pointer = _CAPSULE_POINTER(("PyCapsule_GetPointer", ctypes.pythonapi))
    name_of = _CAPSULE_NAME(("PyCapsule_GetName", ctypes.pythonapi))
    gemms = tuple(pointer(table[f], name_of(table[f])) for f in ("sgemm", "dgemm"))
    path, threads = _openblas_threads()
    return BlasLibrary("openblas", path, gemms + threads)


def _openblas_threads() -> tuple[str, tuple[int, int]]:
    """The OpenBLAS file SciPy loaded and its (set, get) thread functions; where there is
    none, functions that do nothing and report 0 threads (blas_threads: no control)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_THREADS:  # the 64-bit-integer build's end in 64_
            if hasattr(library, set_name) and hasattr(library, get_name):
                return path, (_address(getattr(library, set_name)),
                              _address(getattr(library, get_name)))
    fallback = (_SET_TYPE(lambda n: None), _GET_TYPE(lambda: 0))
    _KEEP.extend(fallback)
    return "", tuple(_address(f) for f in fallback)


__all__ = ["OWN_GEMM", "OWN_SGEMM", "BlasLibrary", "bind", "choose", "chosen", "own_sgemm",
           "preload", "ready"]
