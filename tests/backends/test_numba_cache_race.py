"""Two processes saving two signatures of one function to Numba's cache at once
(numba_cache.keyed_data_files): the index never names a data file holding another key's code."""
from __future__ import annotations

from numba.core.caching import IndexDataCacheFile

import netdsl.backends.numba_cpu.jit  # noqa: F401  (installs keyed_data_files)


def test_interleaved_saves_of_two_keys_never_swap_their_code(tmp_path):
    # Process 1 reads the empty index and writes its entry; process 2 read the index before
    # that write, writes its own entry and data; then process 1's data lands.  Numbered files:
    # both took file 1, and the index named key 2's file holding key 1's code.
    first, second = (IndexDataCacheFile(str(tmp_path), "kernel", 1.0) for _ in range(2))
    deferred = []
    save_data = first._save_data
    first._save_data = lambda name, data: deferred.append((name, data))
    first.save(("key", 1), "code of key 1")
    second._load_index = lambda: {}                     # read before the first's index write
    second.save(("key", 2), "code of key 2")
    save_data(*deferred.pop())
    reader = IndexDataCacheFile(str(tmp_path), "kernel", 1.0)
    assert reader.load(("key", 2)) == "code of key 2"
    assert reader.load(("key", 1)) in (None, "code of key 1")      # a miss compiles again


def test_a_key_saved_again_keeps_its_file_and_the_other_keys(tmp_path):
    cache = IndexDataCacheFile(str(tmp_path), "kernel", 1.0)
    cache.save(("key", 1), "one")
    cache.save(("key", 2), "two")
    cache.save(("key", 1), "one again")
    assert (cache.load(("key", 1)), cache.load(("key", 2))) == ("one again", "two")
    assert len(list(tmp_path.glob("kernel.*.nbc"))) == 2
