"""A parallel loop nest's prange cut into a part function (numba_cpu/parallel_nests.py): what
is passed, what is left whole, and the same numbers as the prange for any thread count."""
from __future__ import annotations

import numpy as np

from netdsl.backends.numba_cpu.parallel_nests import split_parallel

SPLIT_REDUCTION = """def kernel_3(n0, n1, a0, a1):
    a1_r = _view(a1, 0, (n1,))
    chunks = max(1, min(16, n0 // 8))
    parts = _empty((chunks * n1,), np.float64)
    for c in prange(chunks):
        for j in range(n1):
            parts[c * n1 + j] = 0.0
        for i0 in range(c * n0 // chunks, (c + 1) * n0 // chunks):
            for i1 in range(n1):
                parts[c * n1 + i1] = parts[c * n1 + i1] + a0[i0, i1]
    for k in range(n1):
        total = parts[k]
        for q in range(1, chunks):
            total = total + parts[q * n1 + k]
        a1_r[k] = total
    return 0"""


def test_the_prange_becomes_a_part_function_of_what_it_reads():
    new, part, aliased = split_parallel(SPLIT_REDUCTION.splitlines(), "kernel_3")
    assert not aliased
    assert part[0] == "def kernel_3_part(part_number, part_total, part_extent, n0, n1, a0, " \
                      "chunks, parts):"               # not a1 nor a1_r: the loop reads neither
    assert "prange" not in "\n".join(new + part)
    assert "    kernel_3_parts(parallel_k, parallel_k, parallel_n, n0, n1, a0, chunks, " \
           "parts)" in new
    assert new[-1] == "    return 0" and "        a1_r[k] = total" in new   # the combine stays


def test_what_cannot_be_cut_stays_whole():
    nested = ["def kernel_1(n0, a0):", "    for i in range(2):",
              "        for j in prange(n0):", "            a0[j] += i", "    return 0"]
    assert split_parallel(nested, "kernel_1") is None          # not a statement of the body
    read_after = ["def kernel_2(n0, a0):", "    for j in prange(n0):", "        t = a0[j]",
                  "    a0[0] = t", "    return 0"]
    assert split_parallel(read_after, "kernel_2") is None      # a loop local read after it


def test_the_parts_sum_as_the_prange_does_at_any_thread_count():
    # The cut function run as plain Python, its parts called in every split of the chunks:
    # each chunk's partial sums are the same, so the result is too, bit for bit.
    new, part, _ = split_parallel(SPLIT_REDUCTION.splitlines(), "kernel_3")
    rng = np.random.default_rng(0)
    a0 = rng.standard_normal((200, 5)).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 16):
        namespace = {"np": np, "_empty": np.empty, "_min2": min, "max": max, "min": min,
                     "_threads": lambda threads=threads: threads,
                     "_view": lambda a, offset, shape: a.reshape(-1)[offset:].reshape(shape)}
        exec("\n".join(part), namespace)
        function = namespace["kernel_3_part"]

        def parts(count, *arguments, function=function):
            for number in range(count):
                function(number, *arguments)
        namespace["kernel_3_parts"] = parts
        exec("\n".join(new), namespace)
        out = np.zeros(5, np.float32)
        namespace["kernel_3"](200, 5, a0, out)
        results.append(out)
    assert all(np.array_equal(results[0], other) for other in results[1:])
    np.testing.assert_allclose(results[0], a0.astype(np.float64).sum(axis=0), rtol=1e-6)


def test_two_views_of_one_array_make_the_part_careful():
    lines = ["def kernel_4(n0, a0):", "    a0_v = _view(a0, 0, (n0,))",
             "    a0_w = _view(a0, 0, (n0, 1))", "    for i0 in prange(n0):",
             "        a0_v[i0] = a0_w[i0, 0] + 1.0", "    return 0"]
    assert split_parallel(lines, "kernel_4")[2]            # may overlap: no `noalias`
    lines[2] = "    a1_w = _view(a1, 0, (n0, 1))"
    lines[0], lines[4] = "def kernel_4(n0, a0, a1):", "        a0_v[i0] = a1_w[i0, 0] + 1.0"
    assert not split_parallel(lines, "kernel_4")[2]
    # Buffers carved from one arena without an owner (support.unowned_view) may overlap too.
    carved = ["def kernel_5(n0, arena_f32, offsets):",
              "    v_1 = _unowned_view(arena_f32, offsets[1], (n0,))",
              "    v_2 = _unowned_view(arena_f32, offsets[2], (n0,))", "    for i0 in prange(n0):",
              "        v_1[i0] = v_2[i0] + 1.0", "    return 0"]
    assert split_parallel(carved, "kernel_5")[2]
