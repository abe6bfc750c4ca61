"""Numba's cache writes under a lock (``numba_rmsprop.engine.cache_lock``): processes can
share one cache folder (numba/numba#4807)."""

import os
import subprocess
import sys
import threading

from helpers import ROOT
from numba.core import caching

import numba_rmsprop  # noqa: F401  (installs the lock)
from numba_rmsprop.engine import cache_lock


def test_the_lock_is_installed_on_import():
    assert caching.IndexDataCacheFile.save is cache_lock._save


def _files(tmp_path):
    # Two writers of one function's index, as two processes would have them.
    return [caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1)) for _ in "ab"]


def test_a_second_writer_waits_and_picks_another_data_file(tmp_path):
    a, b = _files(tmp_path)
    inside, release = threading.Event(), threading.Event()
    write_a = a._save_data
    b_read_the_index = []

    def slow_write(name, data):  # writer a holds the lock while it writes its data
        inside.set()
        assert release.wait(10)
        write_a(name, data)

    def read_index():
        b_read_the_index.append(True)
        return caching.IndexDataCacheFile._load_index(b)

    a._save_data, b._load_index = slow_write, read_index
    ta = threading.Thread(target=a.save, args=("key a", "data a"))
    tb = threading.Thread(target=b.save, args=("key b", "data b"))
    ta.start()
    assert inside.wait(10)
    tb.start()
    tb.join(0.5)
    assert tb.is_alive() and not b_read_the_index  # b waits for a's lock
    assert a._load_index() == {}  # a writes its data before the index entry naming it
    release.set()
    ta.join(10)
    tb.join(10)
    index = a._load_index()
    assert set(index) == {"key a", "key b"} and index["key a"] != index["key b"]
    assert a.load("key a") == "data a" and a.load("key b") == "data b"


def test_an_existing_entry_is_overwritten_in_place(tmp_path):
    a, b = _files(tmp_path)
    a.save("key", "old")
    name = a._load_index()["key"]
    b.save("key", "new")
    assert a._load_index() == {"key": name} and a.load("key") == "new"


_COMPILE = """
import sys
import numpy as np
import numba_rmsprop  # the lock
from shared_fn import plus_one
types = [np.int8, np.int16, np.int32, np.int64, np.float32, np.float64, np.uint8, np.uint16]
for t in (types if sys.argv[-1] == "up" else types[::-1]):
    assert plus_one(t(3)) == 4, t
if sys.argv[-1] == "check":  # everything came from the cache
    assert not plus_one.stats.cache_misses and len(plus_one.stats.cache_hits) == 8, plus_one.stats
"""


def test_two_processes_compile_into_one_folder(tmp_path):
    """Two processes compile eight signatures of one cached function at once (in opposite
    orders) into one empty folder; a third loads each signature from the cache and gets
    that signature's code. (Whether the two writes overlap here depends on timing; the
    interleaving itself is pinned down by the threads of the tests above.)"""
    (tmp_path / "shared_fn.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef plus_one(x):\n    return x + 1\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT, env.get("PYTHONPATH", "")])

    def python(way):
        return subprocess.Popen([sys.executable, "-c", _COMPILE, way], env=env, cwd=tmp_path)

    assert [p.wait(300) for p in [python("up"), python("down")]] == [0, 0]
    assert python("check").wait(300) == 0
