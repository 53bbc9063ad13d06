"""Search at scale: every kernel gives the same integers, the kernel choice is measured and cached, memory
stays bounded (no unpacked index kept), the first-stage table is the same stored or derived, compaction
keeps chunk files at a sensible size, and shards of a library merge into exactly the single search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mofind.index import kernels
from mofind.index.chunk import Chunk, chunk_bytes
from mofind.index.codec import RotatedCodec
from mofind.index.manifest import IndexSpec
from mofind.index.pooling import coarse_levels
from mofind.index.search import Filters, Searcher, merge_hits
from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for

ROWS, COLS, DIM = 4, 3, 32
SPEC = IndexSpec(model_hash="m", model_name="test", dim=DIM, grid=(ROWS, COLS), frames_per_row=4,
                 window_frames=16, stride_frames=8, fps=20.0, part_names=("a", "b", "c"))


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def add_clips(writer, count, rng, start=0, windows=3):
    for i in range(start, start + count):
        source = f"/lib/clip_{i:03d}.bvh"
        record = ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=str(i), size=1, mtime_ns=1,
                            format="bvh", frame_range=(0, 90), source_fps=30.0, num_frames=60, duration=3.0,
                            skeleton="bandai")
        valid = np.ones(ROWS * COLS, bool)
        valid[-COLS * (i % 2):] = i % 2 == 0  # every other clip has a padded last row
        writer.add(record, [WindowEmbedding(8 * w, 12 * w, 12 * w + 24, unit(rng.standard_normal((ROWS * COLS, DIM))),
                                            valid) for w in range(windows)])


@pytest.mark.parametrize("name", kernels.CPU_KERNELS)
def test_every_kernel_gives_the_reference_integer_maxima(name):
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 32, (5 * 7, 64)).astype(np.int8)
    q8 = rng.integers(-127, 128, (3, 64)).astype(np.int8)
    reference = (levels.astype(np.int64) @ q8.T.astype(np.int64)).reshape(5, 7, 3).max(1)
    kernel = kernels.make_kernel(name)
    got = kernel.max_dots(kernel.rows(levels), kernel.queries(q8), 7)
    np.testing.assert_array_equal(got, reference)


@pytest.mark.parametrize("dim", [32, 128, 256])
def test_the_avx2_kernel_is_exact_at_the_extremes_of_its_16_bit_pair_sums(dim):
    """`vpmaddubsw` sums byte products in pairs into 16 bits: with the largest stored level (31) against +-127 and
    -128 every pair sum is at the end of its range; any query count (4 per call, padded) and any width."""
    kernel = kernels.make_kernel("avx2-u8s8")
    if not kernel.available():
        pytest.skip("no AVX2 here, or numba is missing: the kernel is never offered")
    rng = np.random.default_rng(dim)
    levels = np.where(rng.random((9 * 5, dim)) < 0.7, 31, rng.integers(0, 32, (9 * 5, dim))).astype(np.int8)
    for count in (1, 4, 5, 9):
        q8 = rng.choice(np.array([-128, -127, 127, 126, 0], np.int8), (count, dim))
        products = levels.astype(np.int64) @ q8.T.astype(np.int64)
        np.testing.assert_array_equal(kernel.max_dots(kernel.rows(levels), kernel.queries(q8), 9),
                                      products.reshape(5, 9, count).max(1))
        np.testing.assert_array_equal(kernel.dots(kernel.rows(levels), kernel.queries(q8)), products)
    with pytest.raises(ValueError, match="do not fit"):
        kernel.max_dots(kernel.rows(levels[:, :dim - 8]), kernel.queries(q8[:, :dim - 8]), 9)


@pytest.mark.parametrize("dim", [16, 128, 256])
def test_the_interleaved_first_stage_kernel_is_exact_at_the_extremes_and_for_any_window_and_query_count(dim):
    """The row-interleaved table sums four chunks of 8 products in 16 bits: levels 31 against -128 and 127 put
    every lane at the end of its range; an odd window count is padded, any query count is padded to four, and
    eight query rows are multiplied in one pass (1 to 8 rows, and more than eight in passes of eight)."""
    from mofind.index import avx2_dots

    if not avx2_dots.available():
        pytest.skip("no AVX2 here, or numba is missing: the table is never offered")
    assert avx2_dots.interleaved_available() and kernels.InterleavedTable.available()  # offered wherever AVX2 is
    rng = np.random.default_rng(dim)
    for windows in (1, 2, 5, 64):
        levels = np.where(rng.random((windows * 4, dim)) < 0.7, 31, rng.integers(0, 32, (windows * 4, dim)))
        table = avx2_dots.interleaved_rows(levels.astype(np.uint8), 4)
        assert table.shape == (-(-windows // 2), 8 * dim)
        for count in (1, 4, 5, 7, 8, 9, 13):
            q8 = rng.choice(np.array([-128, -127, 127, 126, 0], np.int8), (count, dim))
            expected = (levels.astype(np.int64) @ q8.T.astype(np.int64)).reshape(windows, 4, count).max(1)
            np.testing.assert_array_equal(
                avx2_dots.interleaved_max_dots(table, avx2_dots.interleaved_queries(q8), windows, count), expected)
    built = kernels.InterleavedTable(np.full((12, dim), 31, np.int8), 4)
    np.testing.assert_array_equal(built.maxima(built.queries(np.full((3, dim), -128, np.int8))),
                                  np.full((3, 3), 31 * -128 * dim, np.float32))
    with pytest.raises(ValueError, match="at most 31"):
        avx2_dots.interleaved_rows(np.full((4, dim), 32, np.uint8), 4)
    with pytest.raises(ValueError, match="do not fit"):
        avx2_dots.interleaved_rows(np.zeros((6, dim), np.uint8), 3)


def test_query_sums_weigh_each_querys_own_rows_alike_compiled_and_in_numpy():
    """Each query's score reads only its own rows (the batch's rows are stacked query after query); the compiled
    sums and numpy's are the same float32 operations in the same order, so the same scores to the bit."""
    from mofind.index.query_sums import QueryMap, query_sums, query_sums_numpy

    rng = np.random.default_rng(31)
    maxima = rng.integers(-600_000, 600_000, (257, 12)).astype(np.int32)  # 12 columns: 2 of padding
    query_map = QueryMap(np.array([0, 1, 5, 10]), rng.standard_normal(10).astype(np.float32),
                         rng.standard_normal(3).astype(np.float32))
    found = query_sums(maxima, query_map)
    np.testing.assert_array_equal(found, query_sums_numpy(maxima, query_map, np.empty_like(found)))
    np.testing.assert_array_equal(query_sums(maxima.astype(np.float32), query_map), found)  # floats holding integers
    expected = np.stack([maxima[:, a:b].astype(np.float64) @ query_map.weights[a:b] + query_map.bias[q]
                         for q, (a, b) in enumerate(zip(query_map.starts[:-1], query_map.starts[1:]))], axis=1)
    magnitude = np.stack([np.abs(maxima[:, a:b].astype(np.float64)) @ np.abs(query_map.weights[a:b])
                          for a, b in zip(query_map.starts[:-1], query_map.starts[1:])], axis=1)
    assert np.all(np.abs(found - expected) <= 1e-6 * (magnitude + 1))  # float32 rounding of its terms only
    changed = maxima.copy()
    changed[:, 10:] = 7  # padding columns are never read
    np.testing.assert_array_equal(query_sums(changed, query_map), found)
    with pytest.raises(ValueError, match="fewer than"):
        query_sums(maxima[:, :9], query_map)


def test_query_means_average_each_querys_own_cosines_alike_compiled_and_in_numpy():
    """The exact scores: each row's cosine as `to_scores` gives it, averaged over the query's own rows only, in
    row order (so never depending on the other queries of a batch); compiled and numpy the same to the bit;
    only the picked entries, -inf elsewhere."""
    from mofind.index.codec import QuantizedQueries
    from mofind.index.query_sums import query_means, query_means_numpy

    rng = np.random.default_rng(37)
    starts = np.array([0, 1, 5, 10])
    quantized = QuantizedQueries(q8=np.zeros((10, 4), np.int8), scale=rng.uniform(0.001, 0.02, 10).astype(np.float32),
                                 row_sum=rng.integers(-500, 500, 10), step=0.0213, level_count=32)
    factor = quantized.scale * quantized.step / 2.0
    offset = (quantized.level_count - 1) * quantized.row_sum
    maxima = rng.integers(-60_000, 60_000, (257, 12)).astype(np.int32)  # 12 columns: 2 of padding
    found = query_means(maxima, factor, offset, starts)
    cosines = quantized.to_scores(maxima[:, :10]).astype(np.float64)
    expected = np.stack([cosines[:, a:b].mean(axis=1) for a, b in zip(starts[:-1], starts[1:])], axis=1)
    np.testing.assert_allclose(found, expected, rtol=1e-14, atol=1e-15)
    picked = rng.random((257, 3)) < 0.3
    some = query_means(maxima, factor, offset, starts, picked)
    np.testing.assert_array_equal(some, np.where(picked, found, -np.inf))
    np.testing.assert_array_equal(query_means_numpy(maxima, np.asarray(factor, np.float64), offset.astype(np.float64),
                                                    starts, picked, np.full_like(some, -np.inf)), some)
    alone = query_means(maxima[:, 5:10], factor[5:10], offset[5:10], np.array([0, 5]))
    np.testing.assert_array_equal(alone[:, 0], found[:, 2])  # the same query without the others: the same bits
    with pytest.raises(ValueError, match="does not fit"):
        query_means(maxima, factor, offset, starts, picked[:, :2])


@pytest.mark.parametrize("dim", [64, 128])
def test_the_interleaved_pass_sums_its_integer_maxima_for_any_window_count_and_query_split(dim):
    """The fused pass (`interleaved_scores`: maxima a piece at a time, summed per query, the last group of query
    rows multiplying only its real rows, eight rows a pass) gives exactly `query_sums` of the exact integer maxima:
    window counts across a piece boundary, odd counts, 1 to 13 query rows split into one or several queries,
    extreme values."""
    from mofind.index import avx2_dots
    from mofind.index.query_sums import QueryMap, query_sums

    if not avx2_dots.interleaved_available():
        pytest.skip("no AVX2 here, or numba is missing: the table is never offered")
    rng = np.random.default_rng(dim + 1)
    piece = 2 * avx2_dots.PIECE_BLOCKS
    for windows in (1, 2, 7, piece, piece + 1, 2 * piece + 3):
        levels = np.where(rng.random((windows * 4, dim)) < 0.5, 31, rng.integers(0, 32, (windows * 4, dim)))
        table = avx2_dots.interleaved_rows(levels.astype(np.uint8), 4)
        for rows in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13):
            q8 = rng.choice(np.array([-128, -127, 127, 126, 0, 5], np.int8), (rows, dim))
            split = [rows] if rows < 4 else [1, rows - 3, 2]
            query_map = QueryMap(np.concatenate([[0], np.cumsum(split)]).astype(np.int64),
                                 rng.standard_normal(rows).astype(np.float32),
                                 rng.standard_normal(len(split)).astype(np.float32))
            maxima = (levels.astype(np.int64) @ q8.T.astype(np.int64)).reshape(windows, 4, rows).max(1)
            np.testing.assert_array_equal(
                avx2_dots.interleaved_scores(table, avx2_dots.interleaved_queries(q8), windows, query_map),
                query_sums(maxima.astype(np.int32), query_map))


@pytest.mark.parametrize("bits", [4, 5])
@pytest.mark.parametrize("dim", [64, 128, 256])
def test_the_avx2_kernel_reads_packed_codes_as_the_unpacking_does(dim, bits):
    """Any bytes are valid codes: nibbles, then (5 bits) the fifth-bit plane; windows of any row count."""
    from mofind.index import avx2_dots, unpack

    if not avx2_dots.available():
        pytest.skip("no AVX2 here, or numba is missing: the kernel is never offered")
    rng = np.random.default_rng(dim + bits)
    packed = rng.integers(0, 256, (300, dim // 2 + (dim // 8 if bits == 5 else 0))).astype(np.uint8)
    levels = unpack.levels(packed, dim, bits).astype(np.int64)
    starts, counts = rng.integers(0, 290, 40), rng.integers(1, 11, 40)
    for count in (1, 4, 6):
        q8 = rng.integers(-128, 128, (count, dim)).astype(np.int8)
        expected = np.array([(levels[a:a + n] @ q8.T.astype(np.int64)).max(0) for a, n in zip(starts, counts)])
        np.testing.assert_array_equal(
            avx2_dots.packed_max_dots(packed, starts, counts, dim, bits, avx2_dots.padded_queries(q8), count), expected)
    with pytest.raises(IndexError, match="outside"):
        avx2_dots.packed_max_dots(packed, np.array([295]), np.array([10]), dim, bits, avx2_dots.padded_queries(q8), 1)


@pytest.mark.parametrize("dim", [64, 128, 256])
def test_the_avx2_kernel_sums_packed_rows_at_the_extremes_in_16_bits(dim):
    """Packed rows are summed four chunks at a time in 16 bits too: every level 31 (all bytes 0xFF at 5 bits)
    against -128 and 127 puts each of those sums at its limit (4 x 7,936); rows in pairs and an odd last row."""
    from mofind.index import avx2_dots, unpack

    if not avx2_dots.available():
        pytest.skip("no AVX2 here, or numba is missing: the kernel is never offered")
    rng = np.random.default_rng(dim)
    packed = np.where(rng.random((12, dim // 2 + dim // 8)) < 0.8, 255, rng.integers(0, 256, (12, dim // 2 + dim // 8)))
    packed = packed.astype(np.uint8)
    levels = unpack.levels(packed, dim, 5).astype(np.int64)
    for q8 in (np.full((5, dim), -128, np.int8), np.full((5, dim), 127, np.int8),
               rng.choice(np.array([-128, 127], np.int8), (5, dim))):
        for starts, counts in ((np.array([0, 3]), np.array([3, 9])), (np.array([1]), np.array([11]))):
            expected = np.array([(levels[a:a + n] @ q8.T.astype(np.int64)).max(0) for a, n in zip(starts, counts)])
            np.testing.assert_array_equal(
                avx2_dots.packed_max_dots(packed, starts, counts, dim, 5, avx2_dots.padded_queries(q8), 5), expected)


@pytest.mark.parametrize("dim", [32, 128])
def test_the_avx2_kernel_reads_picked_windows_of_a_whole_chunk_as_gathering_them_does(dim):
    """Scattered, unsorted and repeated windows of a chunk kept unpacked, read where they lie."""
    from mofind.index import avx2_dots

    kernel = kernels.make_kernel("avx2-u8s8")
    if not kernel.available():
        pytest.skip("no AVX2 here, or numba is missing: the kernel is never offered")
    rng = np.random.default_rng(dim)
    windows = rng.integers(0, 32, (50, 7, dim)).astype(np.uint8)
    picks = np.array([49, 3, 3, 0, 17, 48])
    for count in (1, 4, 6):
        q8 = rng.integers(-128, 128, (count, dim)).astype(np.int8)
        gathered = windows[picks].reshape(-1, dim)
        expected = (gathered.astype(np.int64) @ q8.T.astype(np.int64)).reshape(len(picks), 7, count).max(1)
        np.testing.assert_array_equal(kernel.picked_max_dots(windows, picks, kernel.queries(q8)), expected)
    with pytest.raises(IndexError, match="outside"):
        avx2_dots.picked_max_dots(windows, np.array([50]), avx2_dots.padded_queries(q8), 1)


def test_kernel_is_calibrated_once_per_machine_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MOFIND_CACHE", str(tmp_path))
    monkeypatch.delenv("MOFIND_KERNEL", raising=False)
    monkeypatch.delenv("MOFIND_FIRST_STAGE", raising=False)
    kernels._cached_choice.cache_clear()
    try:
        first = kernels.choose_kernel(DIM, ROWS * COLS)
        stored = json.loads((tmp_path / "kernel-calibration.json").read_text())
        assert list(stored) == [kernels.machine_key(DIM, ROWS * COLS)]
        assert first.kernel.name in kernels.CPU_KERNELS and not first.cached
        assert set(kernels.CPU_KERNELS) <= set(first.timings_ms)
        # the fastest exact kernel was chosen, and the reason names every timing
        assert first.timings_ms[first.kernel.name] == min(first.timings_ms[n] for n in kernels.CPU_KERNELS)
        assert all(name in first.reason for name in kernels.CPU_KERNELS)
        # the first stage's table too: the faster of the measured exact ones, kept with the kernel
        tables = {n.removeprefix("first stage "): ms for n, ms in first.timings_ms.items()
                  if n.startswith("first stage")}
        assert kernels.KERNEL_TABLE in tables and first.table == min(tables, key=tables.get)
        assert stored[kernels.machine_key(DIM, ROWS * COLS)]["first_stage"]["table"] == first.table
        kernels._cached_choice.cache_clear()
        again = kernels.choose_kernel(DIM, ROWS * COLS)
        assert again.cached and again.kernel.name == first.kernel.name and again.table == first.table
    finally:
        kernels._cached_choice.cache_clear()


WITHOUT_VNNI_SCRIPT = """
import json, sys
import numpy as np
from mofind.index import kernels
from mofind.index.codec import RotatedCodec
from mofind.index.search import Searcher
from mofind.index.store import IndexReader

choice = kernels.choose_kernel(128, 168)
codec = RotatedCodec.create(128)
rng = np.random.default_rng(5)
levels = rng.integers(0, 32, (64 * 168, 128)).astype(np.int8)
q8 = rng.integers(-127, 128, (8, 128)).astype(np.int8)
reference = (levels.astype(np.float64) @ q8.T.astype(np.float64)).reshape(64, 168, 8).max(1)
kernel = choice.kernel
int8 = kernels.make_kernel("int8")
searcher = Searcher(IndexReader.open(sys.argv[1]))
queries = [np.asarray(q, np.float32) for q in json.loads(sys.argv[2])]
hits = {mode: [[(h.clip_id, round(h.score, 6)) for h in found] for found in
               searcher.search_tokens(queries, k=5, mode=mode)] for mode in ("exact", "two_stage")}
print(json.dumps({"kernel": kernel.name, "reason": choice.reason, "table": choice.table,
                  "exact": bool(np.array_equal(kernel.max_dots(kernel.rows(levels), kernel.queries(q8), 168),
                                               reference)),
                  "int8_exact": bool(np.array_equal(int8.max_dots(levels, int8.queries(q8), 168), reference)),
                  "hits": hits}))
"""


def test_without_vnni_the_calibration_keeps_only_exact_kernels_and_search_is_unchanged(library, tmp_path):
    """With the math libraries held to AVX2 (a CPU without AVX-512 VNNI or AMX), `torch._int_mm` computes int8
    products through saturating 16-bit sums: the calibration must measure exactness against a true reference,
    pick an exact kernel, say which were not exact, and every search must rank exactly as natively."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(21)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (3, 7)]
    native = {mode: [[(h.clip_id, round(h.score, 6)) for h in found] for found in
                     Searcher(library).search_tokens(queries, k=5, mode=mode)] for mode in ("exact", "two_stage")}
    env = os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                        "OPENBLAS_CORETYPE": "Haswell", "MOFIND_CACHE": str(tmp_path / "cache")}
    env.pop("MOFIND_KERNEL", None)
    env.pop("MOFIND_FIRST_STAGE", None)
    done = subprocess.run([sys.executable, "-c", WITHOUT_VNNI_SCRIPT, str(library.folder),
                           json.dumps([q.tolist() for q in queries])], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["exact"], found["reason"]
    if not found["int8_exact"]:  # what oneDNN does on this CPU under the cap: int8 must be named and never used
        assert found["kernel"] != "int8" and "not exact on this CPU, never used: int8" in found["reason"]
    for mode in ("exact", "two_stage"):
        assert [[c for c, _ in hits] for hits in found["hits"][mode]] == [[c for c, _ in h] for h in native[mode]]
        np.testing.assert_allclose([[v for _, v in h] for h in found["hits"][mode]],
                                   [[v for _, v in h] for h in native[mode]], atol=1e-5)


def test_an_instruction_set_override_is_calibrated_apart(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (acting as a CPU without VNNI/AMX) must not reuse this CPU's calibration."""
    for name in kernels.ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    plain = kernels.machine_key(DIM, ROWS * COLS)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    limited = kernels.machine_key(DIM, ROWS * COLS)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert len({plain, limited, kernels.machine_key(DIM, ROWS * COLS)}) == 3


def test_forced_kernel_and_unknown_kernel(monkeypatch):
    kernels._cached_choice.cache_clear()
    monkeypatch.setenv("MOFIND_KERNEL", "fp32-numpy")
    try:
        assert kernels.choose_kernel(DIM, 12).kernel.name == "fp32-numpy"
    finally:
        kernels._cached_choice.cache_clear()
    with pytest.raises(ValueError, match="unknown MaxSim kernel"):
        kernels.make_kernel("int4")


@pytest.fixture()
def library(tmp_path):
    rng = np.random.default_rng(3)
    for part in range(4):  # four commits: four chunks
        with IndexWriter(tmp_path, SPEC) as writer:
            add_clips(writer, 15, rng, start=15 * part)
    return IndexReader.open(tmp_path, SPEC)


def test_all_kernels_rank_identically_and_exact_mode_keeps_nothing_unpacked(library, monkeypatch):
    rng = np.random.default_rng(9)
    queries = [unit(rng.standard_normal((5, DIM))) for _ in range(3)]
    results = {}
    for name in kernels.CPU_KERNELS:
        monkeypatch.setenv("MOFIND_KERNEL", name)
        kernels._cached_choice.cache_clear()
        searcher = Searcher(library, cache_bytes=0)
        assert searcher.kernel_info()["name"] == name
        results[name] = [[(h.clip_id, h.start_frame, h.score) for h in hits]
                         for hits in searcher.search_tokens(queries, k=7, mode="exact")]
        assert searcher.resident_bytes() == 0  # exact mode streams blocks, it caches no unpacked codes
        staged = searcher.search_tokens(queries, k=7, mode="two_stage", candidates=20)
        assert searcher.resident_bytes() > 0  # the compact first-stage table only
        assert all(len(hits) == 7 for hits in staged)
    kernels._cached_choice.cache_clear()
    first = results[kernels.CPU_KERNELS[0]]
    assert all(found == first for found in results.values())


def test_unpacked_block_cache_stays_within_its_budget_and_changes_no_result(library):
    rng = np.random.default_rng(5)
    queries = [unit(rng.standard_normal((5, DIM))) for _ in range(2)]
    plain = Searcher(library, cache_bytes=0).search_tokens(queries, k=10, per_take=2, mode="exact")
    block = 256 * ROWS * COLS * DIM  # one block of int8 levels, or of a chunk's 45 windows if smaller
    for budget in (block, 10 * block):
        searcher = Searcher(library, cache_bytes=budget)
        for _ in range(2):  # the second search reads the blocks the first one kept
            assert searcher.search_tokens(queries, k=10, per_take=2, mode="exact") == plain
            assert 0 < searcher.cache.used <= budget


def test_warm_unpacks_a_library_that_fits_the_cache_and_the_re_rank_reads_it(library):
    rng = np.random.default_rng(6)
    queries = [unit(rng.standard_normal((4, DIM))) for _ in range(3)]
    plain = Searcher(library, cache_bytes=0)
    plain.warm("two_stage")
    assert plain.cache.used == 0
    expected = plain.search_tokens(queries, k=10, mode="two_stage", candidates=20)
    whole = sum(scan.unpacked_bytes(plain.kernel) for scan in plain.snapshot.scans)
    roomy = Searcher(library, cache_bytes=whole)
    roomy.warm("two_stage")
    assert roomy.cache.used == whole  # every block of every chunk, unpacked once
    assert roomy.search_tokens(queries, k=10, mode="two_stage", candidates=20) == expected
    tight = Searcher(library, cache_bytes=whole - 1)
    tight.warm("two_stage")
    assert tight.cache.used == 0  # a library that does not fit is left to the exact scans (first come, kept)


def test_warm_builds_the_name_fusion_tables_and_searches_reuse_them(library):
    """The per-snapshot tables of the name fusion are built by `warm` (the server warms in the background after
    each commit), not by the first search that fuses names."""
    from mofind.index.text_match import SearchedTakes, library_text

    searcher = Searcher(library)
    snapshot = searcher.snapshot
    assert "_library_text" not in vars(snapshot) and "_searched_takes" not in vars(snapshot)
    searcher.warm("two_stage")
    table, takes = vars(snapshot)["_library_text"], vars(snapshot)["_searched_takes"]
    assert takes.counts.sum() == snapshot.num_windows
    query = unit(np.random.default_rng(2).standard_normal((4, DIM)))
    searcher.search_tokens([query], k=5, mode="two_stage", texts=["a take"], names_weight=0.25)
    assert library_text(snapshot, SPEC.dim) is table
    assert SearchedTakes.searched(snapshot, snapshot.all_windows) is takes


def test_two_stage_cascade_finds_a_planted_window(library):
    searcher = Searcher(library)
    target = library.clips()[37].clip_id
    ref = library.windows(target)[1]
    patches, valid = library.window_patches(ref)
    query = unit(patches[valid][:4] + 0.05)
    hits = searcher.search_tokens([query], k=3, mode="two_stage", candidates=8)[0]
    assert hits[0].clip_id == target and hits[0].start_frame == ref.source_start


def test_first_stage_tables_regions_now_kmeans_for_older_chunks_and_restaging_upgrades(library, tmp_path):
    """New chunks store one coarse vector per body region; a chunk written before keeps its k-means table (stored,
    or derived from `pooled` when it predates both: the same levels) and its 20 % middle stage; restaging it
    (compaction, moves) derives region vectors from its decoded patches, close to those of the float patches."""
    from mofind.index.pooling import KMEANS_ARRAY, REGIONS_ARRAY, coarse_codes, coarse_kind, region_coarse
    from mofind.index.search import middle_per_chunk
    from mofind.index.store import _restage

    chunk = library.chunks[0]
    width = len(chunk.arrays["pooled"]) // chunk.num_windows
    assert coarse_kind(chunk) == "regions" and KMEANS_ARRAY not in chunk.arrays
    codec, pooled_codec = library.codec, library.pooled_codec
    stored = pooled_codec.decode(np.asarray(chunk.arrays[REGIONS_ARRAY])).reshape(chunk.num_windows, 4, DIM)
    patches, valid = library.window_patches(library.windows(chunk.clips[1]["clip_id"])[0])  # a padded window
    assert not valid.all()
    want = region_coarse(codec.rotate(patches)[None], valid[None], SPEC.grid, SPEC.part_names)[0]
    window = int(library.windows(chunk.clips[1]["clip_id"])[0].index)
    cosines = np.sum(unit(stored[window]) * want, axis=1)
    assert cosines.min() > 0.95, cosines  # what was stored: the region means, through the 4-bit codec

    kept = {name: np.asarray(array) for name, array in chunk.arrays.items() if name != REGIONS_ARRAY}
    kmeans = coarse_codes(chunk.arrays["pooled"], pooled_codec, width)
    (tmp_path / "kmeans.safetensors").write_bytes(chunk_bytes(kept | {KMEANS_ARRAY: kmeans}, chunk.clips))
    (tmp_path / "older.safetensors").write_bytes(chunk_bytes(kept, chunk.clips))  # predates both tables
    legacy, older = Chunk.open(tmp_path / "kmeans.safetensors"), Chunk.open(tmp_path / "older.safetensors")
    assert coarse_kind(legacy) == coarse_kind(older) == "kmeans"
    np.testing.assert_array_equal(coarse_levels(legacy, pooled_codec, width), pooled_codec.levels(kmeans))
    np.testing.assert_array_equal(coarse_levels(older, pooled_codec, width), pooled_codec.levels(kmeans))
    assert middle_per_chunk(10_000, "kmeans") == 2_000 and middle_per_chunk(10_000, "regions") == 1_000

    for index in range(len(chunk.clips)):
        restaged, original = _restage(older, index, library), _restage(chunk, index, library)
        assert len(restaged.coarse) == len(original.coarse) == 4 * len(original.counts)
        again = unit(pooled_codec.decode(restaged.coarse))
        assert np.sum(again * unit(pooled_codec.decode(original.coarse)), axis=1).min() > 0.95


def test_shards_by_chunk_merge_into_the_single_search(library):
    searcher = Searcher(library)
    rng = np.random.default_rng(4)
    query = unit(rng.standard_normal((6, DIM)))
    whole = searcher.search_tokens([query], k=9, per_take=2, mode="exact")[0]
    names = [chunk.name for chunk in library.chunks]
    parts = []
    for shard in (names[:1], names[1:3], names[3:]):
        windows = searcher.chunk_windows(shard)
        scores = searcher.score_windows([query], windows, mode="exact")
        parts.append(searcher._top_takes(searcher.snapshot, windows, scores[:, 0], 9, 2))
    merged = merge_hits(parts, k=9, per_take=2)
    assert [(h.clip_id, h.start_frame, h.score) for h in merged] == \
        [(h.clip_id, h.start_frame, h.score) for h in whole]


def test_coarse_scores_are_the_integer_maxima_through_the_query_map(library):
    from mofind.index.search import _QueryBatch

    searcher = Searcher(library)
    rng = np.random.default_rng(8)
    batch = _QueryBatch([unit(rng.standard_normal((n, DIM))) for n in (3, 6)], library, searcher.kernel)
    snapshot = searcher.snapshot
    every = np.arange(snapshot.num_windows)
    maxima = []  # by hand: each window's best coarse row for every query row, in integers
    for scan in snapshot.scans:
        levels = coarse_levels(scan.chunk, library.pooled_codec, scan.pool_width).astype(np.int64)
        dots = levels @ batch.quantized.q8.astype(np.int64).T
        maxima.append(dots.reshape(scan.num_windows, scan.coarse_width, -1).max(axis=1))
    maxima = np.concatenate(maxima)[np.concatenate([snapshot.chunk_windows[c] for c in range(len(snapshot.scans))])
                                    .argsort()]
    reference = batch.scores(maxima, pooled=True)
    np.testing.assert_allclose(searcher.coarse_scores(snapshot, every, batch), reference, atol=1e-5)
    some = every[::3][::-1]  # a subset, out of order, across chunks
    np.testing.assert_allclose(searcher.coarse_scores(snapshot, some, batch), reference[some], atol=1e-5)


def test_a_batch_scores_each_querys_own_shortlist_alone_with_the_scores_each_query_gets_alone(library, monkeypatch):
    """A batch whose queries each pick their own windows (the 62 prompts of the match-quality null bank) scores each
    picked window against the picking queries' rows only, in the middle stage and the re-rank: the same scores
    to the bit as scoring every picked window against every row, and each query's as it gets searched alone."""
    from mofind.index import search
    from mofind.index.search import _QueryBatch, _shortlist, _split_pays

    searcher = Searcher(library)
    snapshot = searcher.snapshot
    every = snapshot.all_windows
    rng = np.random.default_rng(12)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (1, 2, 3, 4, 5, 6, 7, 9, 2, 3)]
    batch = _QueryBatch(queries, library, searcher.kernel)
    rows, first = searcher._first_stage(queries, every, snapshot, batch)
    assert not _split_pays(_shortlist(first, 8), batch.starts, search.SPLIT_CALL_RERANK)  # a small library: whole
    assert _split_pays(_shortlist(first, 8), batch.starts, 0)  # each query's 8 of these ~100: less work alone
    assert not _split_pays(_shortlist(first, 8)[:, :1], batch.starts[:2], 0)  # one query: nothing to split

    found = {}
    for cost in (0, 10**9):  # every batch split by query, then none
        monkeypatch.setattr(search, "SPLIT_CALL_RERANK", cost)
        monkeypatch.setattr(search, "SPLIT_CALL_MIDDLE", cost)
        found[cost] = (searcher.first_stage_scores(queries, every), searcher.score_windows(
            queries, every, mode="two_stage", candidates=8), searcher.search_tokens(queries, k=5, mode="two_stage",
                                                                                    candidates=8))
    for split, whole in zip(found[0][:2], found[10**9][:2]):
        np.testing.assert_array_equal(split, whole)
    assert [[(h.clip_id, h.start_frame, h.score) for h in hits] for hits in found[0][2]] == \
        [[(h.clip_id, h.start_frame, h.score) for h in hits] for hits in found[10**9][2]]
    assert np.isfinite(found[0][1]).sum(axis=0).min() >= 8  # each query's shortlist, ties included
    for q, query in enumerate(queries):  # alone, up to the float32 rounding of its rotated rows (BLAS per batch)
        alone = searcher.score_windows([query], every, mode="two_stage", candidates=8)[:, 0]
        np.testing.assert_array_equal(np.isfinite(alone), np.isfinite(found[0][1][:, q]))
        np.testing.assert_allclose(alone, found[0][1][:, q], rtol=1e-6)


def test_every_first_stage_table_gives_the_same_scores_and_hits(library, monkeypatch, tmp_path):
    monkeypatch.setenv("MOFIND_CACHE", str(tmp_path))
    monkeypatch.delenv("MOFIND_KERNEL", raising=False)
    tables = [name for name, kind in kernels.TABLES.items() if kind.available()]
    if not tables:
        pytest.skip("neither oneDNN's quantized linear nor AVX2 here: the kernel's own table is the only one")
    from mofind.index.search import _QueryBatch

    rng = np.random.default_rng(12)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (2, 5, 9)]
    found = {}
    for table in (kernels.KERNEL_TABLE, *tables):
        monkeypatch.setenv("MOFIND_FIRST_STAGE", table)
        kernels._cached_choice.cache_clear()
        searcher = Searcher(library)
        assert searcher.kernel_info()["first_stage"]["table"] == table
        snapshot = searcher.snapshot
        batch = _QueryBatch(queries, library, searcher.kernel)
        found[table] = (searcher.coarse_scores(snapshot, np.arange(snapshot.num_windows), batch),
                        searcher.search_tokens(queries, k=6, per_take=2, mode="two_stage", candidates=12))
    kernels._cached_choice.cache_clear()
    monkeypatch.delenv("MOFIND_FIRST_STAGE")
    assert "forced" not in kernels.choose_kernel(DIM, ROWS * COLS).table_reason  # a forced table is never cached
    kernels._cached_choice.cache_clear()
    plain = found[kernels.KERNEL_TABLE]
    for table in tables:
        np.testing.assert_array_equal(found[table][0], plain[0])
        assert found[table][1] == plain[1]


def test_a_search_spread_over_threads_gives_the_same_hits(library):
    from mofind.index import search

    rng = np.random.default_rng(13)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (3, 7)]
    found = {}
    for threads in (1, 2, 3):
        searcher = Searcher(library, threads=threads)
        assert searcher.threads == threads and searcher.kernel_info()["search_threads"] == threads
        found[threads] = [searcher.search_tokens(queries, k=8, per_take=2, mode=mode, candidates=15)
                          for mode in ("exact", "two_stage")]
    assert found[2] == found[1] and found[3] == found[1]
    assert Searcher(library, threads=1).request_bytes(1000) < Searcher(library, threads=2).request_bytes(1000)
    try:
        search.set_default_search_threads(2)  # what `mofind serve --search-threads 2` does
        assert Searcher(library).threads == 2
    finally:
        search._default_threads[0] = 0


def test_padded_rows_per_block_and_released_pages_change_no_result(library):
    searcher = Searcher(library, cache_bytes=0)
    scan = searcher.snapshot.scans[0]
    counts = np.diff(np.asarray(scan.chunk.arrays["win_offsets"]))
    windows = np.arange(scan.num_windows)[::-1]
    np.testing.assert_array_equal(scan.real(windows).sum(1), counts[windows])
    rows = scan.padded(windows)[0]
    starts = np.asarray(scan.chunk.arrays["win_offsets"])[windows]
    assert np.all((rows >= starts[:, None]) & (rows < (starts + counts[windows])[:, None]))
    rng = np.random.default_rng(6)
    queries = [unit(rng.standard_normal((4, DIM)))]
    before = searcher.search_tokens(queries, k=10, mode="exact")
    for chunk in library.chunks:  # what Searcher.bound_mapped_pages does past its budget
        chunk.release("patches")
        chunk.release("pooled")
    assert searcher.search_tokens(queries, k=10, mode="exact") == before


def test_request_memory_estimate_grows_with_the_library_not_with_blocks(library):
    searcher = Searcher(library)
    small = searcher.request_bytes(1_000, mode="exact")
    large = searcher.request_bytes(1_000_000, mode="exact")
    assert small < large < small + 1_000_000 * 300  # per-window score arrays only, no unpacked codes


def test_compaction_merges_small_chunks_into_bounded_files(tmp_path):
    rng = np.random.default_rng(1)
    for part in range(10):  # ten commits of 4 clips x 3 windows = 12 windows each
        with IndexWriter(tmp_path, SPEC) as writer:
            add_clips(writer, 4, rng, start=4 * part)
    before = IndexReader.open(tmp_path, SPEC)
    codes = {c: before.window_patches(before.windows(c)[0])[0] for c in before.clip_ids()}
    with IndexWriter(tmp_path, SPEC) as writer:
        stats = writer.compact(target_windows=42)
    after = IndexReader.open(tmp_path, SPEC)
    assert stats["chunks_before"] == 10 and stats["chunks_after"] == 3  # 120 windows in files of <= 42
    assert all(entry.windows <= 42 for entry in after.manifest.chunks)
    assert sorted(after.clip_ids()) == sorted(codes)
    for clip_id, patches in codes.items():
        np.testing.assert_array_equal(after.window_patches(after.windows(clip_id)[0])[0], patches)
    with IndexWriter(tmp_path, SPEC) as writer:  # files near the target are left alone
        assert writer.compact(target_windows=42)["chunks_after"] == 3


def test_compaction_writes_chunks_of_about_equal_size_so_search_threads_share_a_small_library(tmp_path):
    """120 windows merged with a 100-window target: the fewest chunks (two), of 60 windows each, not 99 + 21 (a
    search's threads take whole chunks); whole clips only, and no sliver of a last chunk."""
    from mofind.index.store import chunk_share, starts_new_chunk

    rng = np.random.default_rng(2)
    for part in range(10):  # ten commits of 4 clips x 3 windows
        with IndexWriter(tmp_path, SPEC) as writer:
            add_clips(writer, 4, rng, start=4 * part)
    with IndexWriter(tmp_path, SPEC) as writer:
        assert writer.compact(target_windows=100)["chunks_after"] == 2
    after = IndexReader.open(tmp_path, SPEC)
    assert [entry.windows for entry in after.manifest.chunks] == [60, 60]
    assert len(after.clip_ids()) == 40
    sizes, filled, share = [], 0, chunk_share(10_001, 8192)
    for _ in range(1429):  # 10,003 windows in 7-window clips: 5,005 + 4,998, not 8,190 + 1,813
        if starts_new_chunk(filled, 7, share, 8192):
            sizes.append(filled)
            filled = 0
        filled += 7
    assert sizes + [filled] == [5005, 4998]


def test_window_levels_unpack_the_mapped_rows_and_a_cut_file_is_an_error(library, tmp_path):
    """Re-rank rows are unpacked where they lie in the map (padded windows repeat their first row), their
    pages are released after the block, and a chunk file cut short is refused when opened (never read)."""
    import shutil

    from mofind.index.chunk import ChunkFormatError
    from mofind.index.search import mapped_file_bytes

    chunk = library.chunks[0]
    patches = np.asarray(chunk.arrays["patches"])
    scan = Searcher(library).snapshot.scans[0]
    windows = np.array([5, 0, 9, 2, 1])  # full and padded windows (every other clip has a padded last row)
    assert len(set((np.diff(chunk.arrays["win_offsets"])[windows]).tolist())) == 2
    np.testing.assert_array_equal(scan.window_levels(windows),
                                  library.codec.levels(patches[scan.padded(windows)[0].reshape(-1)]))
    queries = kernels.make_kernel("int8").queries(np.ones((2, DIM), np.int8))
    # once before measuring: the first call also maps the kernel's own library code (file-backed pages too)
    scan.exact_maxima(np.arange(chunk.num_windows), kernels.make_kernel("int8"), queries, cache=None)
    before = mapped_file_bytes()
    scan.exact_maxima(np.arange(chunk.num_windows), kernels.make_kernel("int8"), queries, cache=None)
    if before is not None:  # the block's mapped pages were released: nothing of the chunk stays resident
        assert mapped_file_bytes() <= before + 4096 * 16
    copy = tmp_path / "cut.safetensors"
    shutil.copyfile(chunk.path, copy)
    with open(copy, "r+b") as handle:  # cut the file inside the patch codes
        handle.truncate(chunk.arrays["patches"].offset + patches.nbytes // 2)
    with pytest.raises(ChunkFormatError, match="truncated"):
        Chunk.open(copy)


def test_a_search_over_its_mapped_budget_releases_the_chunk_pages(library):
    """The searcher drops the chunks' mapped pages once the process's file-backed memory passes its budget
    (resident memory bounded however many queries run); within the budget it leaves them; results are unchanged."""
    from mofind.index.search import mapped_file_bytes

    if mapped_file_bytes() is None:
        pytest.skip("no /proc/self/statm: mapped pages are not measured on this system")
    rng = np.random.default_rng(8)
    queries = [unit(rng.standard_normal((4, DIM)))]
    roomy, tight = Searcher(library, mapped_budget=1 << 50), Searcher(library, mapped_budget=0)
    want = roomy.search_tokens(queries, k=10, mode="two_stage", candidates=5)
    assert roomy.bound_mapped_pages() is False
    assert tight.search_tokens(queries, k=10, mode="two_stage", candidates=5) == want
    assert tight.bound_mapped_pages() is True


def test_mapped_file_bytes_reads_this_process_now_forked_children_included(tmp_path):
    """The kept-open /proc/self/statm gives live numbers (a file mapped and read shows up, released it goes), and
    a forked child reads its own process, not the parent's through an inherited descriptor."""
    import mmap
    import os

    from mofind.index.search import mapped_file_bytes

    if mapped_file_bytes() is None:
        pytest.skip("no /proc/self/statm: mapped pages are not measured on this system")
    size = 32 << 20
    path = tmp_path / "pages.bin"
    path.write_bytes(np.ones(size, np.uint8).tobytes())

    def touched(handle) -> tuple[int, mmap.mmap]:
        before = mapped_file_bytes()
        mapping = mmap.mmap(handle.fileno(), size, prot=mmap.PROT_READ)
        np.frombuffer(mapping, np.uint8)[::4096].sum()  # fault every page in
        return mapped_file_bytes() - before, mapping

    with open(path, "rb") as handle:
        grown, mapping = touched(handle)
        assert grown >= size * 0.9
        resident = mapped_file_bytes()
        mapping.madvise(mmap.MADV_DONTNEED)
        assert resident - mapped_file_bytes() >= size * 0.9
        parent = mapped_file_bytes()
        child = os.fork()
        if child == 0:  # the child maps its own pages: only its number moves
            try:
                grown_in_child, _ = touched(handle)
                os._exit(0 if grown_in_child >= size * 0.9 else 1)
            except BaseException:  # noqa: BLE001
                os._exit(2)
        _, status = os.waitpid(child, 0)
        assert os.WEXITSTATUS(status) == 0
        assert abs(mapped_file_bytes() - parent) < size * 0.1
        mapping.close()


@pytest.mark.parametrize("candidates", [1, 4, 7, 40])
def test_the_sparse_shortlist_picks_what_the_dense_cut_picked(candidates):
    from mofind.index.search import _shortlist

    rng = np.random.default_rng(candidates)
    dense = np.full((60, 3), -np.inf)
    rows = np.sort(rng.choice(60, 12, replace=False))
    values = rng.integers(0, 5, (12, 3)).astype(np.float64)  # many ties
    values[rng.random((12, 3)) < 0.3] = -np.inf  # rows another query chose
    dense[rows] = values
    cut = -np.partition(-dense, candidates - 1, axis=0)[candidates - 1]  # the rule on the whole library
    expected = (dense >= cut[None, :]) & np.isfinite(dense)
    picked = np.zeros_like(expected)
    picked[rows] = _shortlist(values, candidates)
    np.testing.assert_array_equal(picked, expected)


def test_a_search_of_the_whole_library_equals_the_same_windows_given_apart(library):
    searcher = Searcher(library)
    snapshot = searcher.snapshot
    every = searcher.allowed_windows(snapshot, Filters())
    assert every is snapshot.all_windows and not every.flags.writeable
    rng = np.random.default_rng(9)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (2, 5)]
    copy = np.array(every)  # the same positions, not the snapshot's object: the gathered path
    for mode in ("two_stage", "exact"):
        whole = searcher.score_windows(queries, every, mode=mode, candidates=6)
        np.testing.assert_array_equal(whole, searcher.score_windows(queries, copy, mode=mode, candidates=6))
    np.testing.assert_array_equal(searcher.first_stage_scores(queries, every),
                                  searcher.first_stage_scores(queries, copy))
    shuffled = rng.permutation(copy)  # out of chunk order: each window keeps its first-stage score
    np.testing.assert_array_equal(searcher.first_stage_scores(queries, shuffled),
                                  searcher.first_stage_scores(queries, every)[shuffled])


def _mapped_resident_kib(array: np.ndarray) -> int:
    """Resident KiB of the memory mapping that holds `array` (its own np.memmap), from /proc/self/smaps."""
    address = array.ctypes.data
    inside = False
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as handle:
        for line in handle:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                start, end = (int(x, 16) for x in head.split("-"))
                inside = start <= address < end
            elif inside and line.startswith("Rss:"):
                return int(line.split()[1])
    raise AssertionError("no mapping holds the array")


def test_a_small_library_keeps_its_pooled_codes_mapped_and_a_large_one_drops_them(library, monkeypatch):
    import os

    from mofind.index import search as search_module

    if not os.path.exists("/proc/self/smaps"):
        pytest.skip("no /proc/self/smaps: mapped pages are not measured on this system")
    rng = np.random.default_rng(10)
    queries = [unit(rng.standard_normal((4, DIM)))]
    small = Searcher(library, mapped_budget=1 << 50)
    kept = small.search_tokens(queries, k=10, mode="two_stage", candidates=5)
    pooled = [scan.chunk.arrays["pooled"] for scan in small.snapshot.scans]
    assert all(_mapped_resident_kib(array) > 0 for array in pooled)
    monkeypatch.setattr(search_module, "KEEP_POOLED_SHARE", 0.0)  # as if the pooled codes outgrew the budget
    large = Searcher(IndexReader.open(library.folder, SPEC), mapped_budget=1 << 50)  # its own mappings
    assert large.search_tokens(queries, k=10, mode="two_stage", candidates=5) == kept
    assert all(_mapped_resident_kib(scan.chunk.arrays["pooled"]) == 0 for scan in large.snapshot.scans)


def test_chunk_threads_run_their_products_on_the_process_torch_thread_count():
    """A new thread's OpenMP team is every core until told otherwise; the chunk threads are told the process's
    torch thread count, so two of them never run four OpenMP threads on two cores."""
    import ctypes
    import glob
    import os

    import torch

    from mofind.index import search as search_module

    libraries = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp*.so*"))
    if not libraries or len(os.sched_getaffinity(0)) < 2 or os.environ.get("OMP_NUM_THREADS"):
        pytest.skip("needs torch's libgomp, two cores and no OMP_NUM_THREADS to tell the two apart")
    openmp = ctypes.CDLL(libraries[0])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    search_module._chunk_pool.cache_clear()
    try:
        pool = search_module._chunk_pool(2)
        teams = {pool.submit(openmp.omp_get_max_threads).result() for _ in range(4)}
        assert teams == {1}
    finally:
        search_module._chunk_pool.cache_clear()
        torch.set_num_threads(before)


def test_the_gpu_kernels_arithmetic_run_on_the_cpu_gives_the_same_maxima_and_hits(library):
    """`--device cuda` multiplies in float32 on the device; the same code on torch's CPU device must give the
    integers and hits of the calibrated CPU kernel (what bench/gpu_check.py then checks on a real GPU)."""
    gpu_code = kernels.CudaKernel("cpu")
    rng = np.random.default_rng(12)
    levels = rng.integers(0, 32, (6 * 9, DIM)).astype(np.int8)
    q8 = rng.integers(-127, 128, (4, DIM)).astype(np.int8)
    reference = (levels.astype(np.int64) @ q8.T.astype(np.int64)).reshape(6, 9, 4).max(1)
    np.testing.assert_array_equal(gpu_code.max_dots(gpu_code.rows(levels), gpu_code.queries(q8), 9), reference)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (3, 5)]
    cpu = Searcher(library)
    on_device = Searcher(library)
    on_device.kernel_choice = kernels.KernelChoice(gpu_code, "test: the CUDA kernel's code on the CPU device")
    on_device.kernel = gpu_code
    for mode in ("exact", "two_stage"):
        want = cpu.search_tokens(queries, k=6, mode=mode, candidates=12)
        got = on_device.search_tokens(queries, k=6, mode=mode, candidates=12)
        assert [[(h.clip_id, h.start_frame, round(h.score, 6)) for h in hits] for hits in got] == \
            [[(h.clip_id, h.start_frame, round(h.score, 6)) for h in hits] for hits in want]


def test_a_sparse_re_rank_of_an_uncached_chunk_skips_the_cache_and_gives_the_same_maxima(library):
    """The per-block walk of `exact_maxima` only runs where the cache holds a block of the chunk or would take
    one (a block at least half scanned); otherwise every window is read where it lies, with the same integers."""
    from mofind.index.search import _QueryBatch

    searcher = Searcher(library, cache_bytes=1 << 30)
    scan = searcher.snapshot.scans[0]
    kernel, cache = searcher.kernel, searcher.cache
    queries = _QueryBatch([unit(np.random.default_rng(13).standard_normal((3, DIM)))], library, kernel).operand
    sparse = np.arange(0, scan.num_windows, 5)  # one window in five: no 4-window block is half scanned
    assert not scan._touches_cache(sparse // 4, kernel, cache, 4)
    assert scan._touches_cache(np.array([0, 1]) // 4, kernel, cache, 4)  # half of block 0: it would be cached
    reference = scan.exact_maxima(sparse, kernel, queries, None, block=4)
    np.testing.assert_array_equal(scan.exact_maxima(sparse, kernel, queries, cache, block=4), reference)
    assert not cache.holds(scan.chunk.name, kernel.name)  # the sparse read cached nothing
    scan.exact_maxima(np.arange(scan.num_windows), kernel, queries, cache, block=4)  # an exact scan fills it
    assert cache.holds(scan.chunk.name, kernel.name) and scan._touches_cache(sparse // 4, kernel, cache, 4)
    np.testing.assert_array_equal(scan.exact_maxima(sparse, kernel, queries, cache, block=4), reference)
    cache.drop(scan.chunk.name)
    assert not cache.holds(scan.chunk.name, kernel.name) and cache.used == 0


@pytest.fixture(scope="module")
def wide_library(tmp_path_factory):
    """The model's own width (D = 128): the packed path of avx2-u8s8 needs D a multiple of 64."""
    from dataclasses import replace

    folder = tmp_path_factory.mktemp("wide")
    spec = replace(SPEC, dim=128)
    rng = np.random.default_rng(4)
    for part in range(2):
        with IndexWriter(folder, spec) as writer:
            for i in range(12 * part, 12 * part + 12):
                source = f"/lib/wide_{i:03d}.bvh"
                record = ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=str(i), size=1,
                                    mtime_ns=1, format="bvh", frame_range=(0, 90), source_fps=30.0, num_frames=60,
                                    duration=3.0, skeleton="bandai")
                valid = np.ones(ROWS * COLS, bool)
                valid[-COLS * (i % 2):] = i % 2 == 0  # every other clip has a padded last row
                writer.add(record, [WindowEmbedding(8 * w, 12 * w, 12 * w + 24,
                                                    unit(rng.standard_normal((ROWS * COLS, 128))), valid)
                                    for w in range(3)])
    return IndexReader.open(folder, spec)


@pytest.mark.parametrize("name", kernels.CPU_KERNELS)
def test_windows_read_from_packed_codes_give_the_unpacked_maxima(wide_library, name):
    """A re-rank of windows no cache holds, and the middle stage, read the packed codes where they lie; a kernel
    with a packed path (avx2-u8s8) multiplies them unpacked in registers. The integers are those of unpacking
    every window (padded slots included) and taking the max, for patches (5 bits) and pooled vectors (4 bits)."""
    from mofind.index.search import _QueryBatch

    kernel = kernels.make_kernel(name)
    if not kernel.available():
        pytest.skip(f"{name} does not run here")
    library = wide_library
    scan = Searcher(library).snapshot.scans[0]
    packed_path = kernel.packed_max_dots(scan.chunk.arrays["patches"], np.array([0]), np.array([1]), scan.codec,
                                         kernel.queries(np.ones((1, 128), np.int8)))
    assert (packed_path is not None) == (name == "avx2-u8s8")  # the one kernel that reads packed codes
    reference_kernel = kernels.make_kernel("fp32-numpy")
    rng = np.random.default_rng(17)
    token_sets = [unit(rng.standard_normal((count, 128))) for count in (1, 3, 6)]
    for scan in Searcher(library).snapshot.scans:
        windows = np.sort(rng.choice(scan.num_windows, min(9, scan.num_windows), replace=False))
        padded = scan.real(windows)
        assert not padded.all()  # some of these windows have padded slots (every other clip does)
        batch = _QueryBatch(token_sets, library, kernel)
        expected_batch = _QueryBatch(token_sets, library, reference_kernel)
        levels = reference_kernel.rows(scan.window_levels(windows))
        np.testing.assert_array_equal(scan.exact_maxima(windows, kernel, batch.operand, None),
                                      reference_kernel.max_dots(levels, expected_batch.operand, scan.num_patches))
        pooled = reference_kernel.rows(scan.pooled_levels(windows))
        np.testing.assert_array_equal(scan.pooled_maxima(windows, kernel, batch.operand),
                                      reference_kernel.max_dots(pooled, expected_batch.operand, scan.pool_width))


def test_a_chunk_that_fits_the_cache_is_kept_whole_and_any_windows_read_from_it_give_the_same_maxima(library):
    """`warm` unpacks a chunk that fits as one array (`BlockCache.whole`), so a re-rank gathers its windows in
    one call instead of walking blocks; scattered, unsorted, repeated and consecutive windows all give the
    integers of reading them from the codes."""
    from mofind.index.search import _QueryBatch

    searcher = Searcher(library, cache_bytes=1 << 30)
    kernel, cache = searcher.kernel, searcher.cache
    scans = searcher.snapshot.scans
    assert all(cache.whole(scan.chunk.name, kernel.name) is None for scan in scans)
    searcher.warm("two_stage")
    queries = _QueryBatch([unit(np.random.default_rng(14).standard_normal((3, DIM)))], library, kernel).operand
    for scan in scans:
        whole = cache.whole(scan.chunk.name, kernel.name)
        assert whole is not None and whole.shape[:2] == (scan.num_windows, scan.num_patches)
        assert cache.get((scan.chunk.name, kernel.name, 0)).base is whole  # its blocks are views, not copies
        for windows in (np.array([7, 2, 2, 30]), np.arange(scan.num_windows), np.arange(3, 9), np.array([5])):
            np.testing.assert_array_equal(scan.exact_maxima(windows, kernel, queries, cache, block=4),
                                          scan.exact_maxima(windows, kernel, queries, None, block=4))
    assert cache.used == sum(scan.unpacked_bytes(kernel) for scan in scans)
    cache.drop(scans[0].chunk.name)
    assert cache.whole(scans[0].chunk.name, kernel.name) is None and not cache.holds(scans[0].chunk.name, kernel.name)
    # room for one chunk and a half: the first goes in whole, the second block by block as far as the budget goes
    first = scans[0].unpacked_bytes(kernel)
    tight = kernels.BlockCache(first + first // 2)
    for scan in scans[:2]:
        scan.fill_cache(kernel, tight, block=4)
    assert tight.whole(scans[0].chunk.name, kernel.name) is not None
    assert tight.whole(scans[1].chunk.name, kernel.name) is None and tight.holds(scans[1].chunk.name, kernel.name)
    assert first < tight.used <= tight.budget
    np.testing.assert_array_equal(scans[1].exact_maxima(np.arange(scans[1].num_windows), kernel, queries, tight, 4),
                                  scans[1].exact_maxima(np.arange(scans[1].num_windows), kernel, queries, None, 4))


def test_threads_share_a_chunk_in_pieces_and_give_the_same_hits(library, monkeypatch):
    """A re-rank is cut into pieces (`_pieces`) that the caller and the pool threads take as they come free:
    every window is scored once, and the hits are those of one thread."""
    from mofind.index import search

    rng = np.random.default_rng(15)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (2, 6)]
    one = Searcher(library, threads=1)
    expected = [one.search_tokens(queries, k=8, per_take=2, mode=mode, candidates=25)
                for mode in ("exact", "two_stage")]
    monkeypatch.setattr(search, "PIECE_MIN_WINDOWS", 2)
    groups = one.snapshot.groups(one.chunk_windows([one.snapshot.scans[0].chunk.name]))  # one chunk's windows
    pieces = search._pieces(groups, 2)
    assert len(groups) == 1 and len(pieces) == 4  # about a (2 x threads)-th each
    for chunk, where in groups:
        np.testing.assert_array_equal(np.concatenate([w for c, w in pieces if c == chunk]), where)
    assert search._pieces(groups, 1) is groups
    two = Searcher(library, threads=2)
    assert [two.search_tokens(queries, k=8, per_take=2, mode=mode, candidates=25)
            for mode in ("exact", "two_stage")] == expected


def test_each_chunk_runs_every_group_once_across_threads_and_re_raises_an_error():
    """The caller and a pool thread share the groups: the first group's work waits until the other thread has
    taken one, which only happens if both take groups from the same queue."""
    import threading

    from mofind.index.search import Searcher as SearcherClass

    searcher = SearcherClass.__new__(SearcherClass)
    searcher.threads = 2
    seen, lock, both = [], threading.Lock(), threading.Event()

    def record(group):
        with lock:
            seen.append((group, threading.get_ident()))
            if len({thread for _, thread in seen}) == 2:
                both.set()
        if group == 0:
            assert both.wait(10), "the other thread never took a group"

    searcher._each_chunk(list(range(50)), record)
    assert sorted(group for group, _ in seen) == list(range(50))
    assert threading.get_ident() in {thread for _, thread in seen} and both.is_set()

    def fail_on_seven(group):
        if group == 7:
            raise RuntimeError("chunk 7 is cut short")

    with pytest.raises(RuntimeError, match="chunk 7"):
        searcher._each_chunk(list(range(20)), fail_on_seven)


def test_a_search_whose_helper_is_queued_behind_other_work_does_not_wait_for_it():
    """With the pool busy (another request's work), the caller does every group itself and returns: its queued
    helper is cancelled, not waited for."""
    import threading

    from mofind.index import search
    from mofind.index.search import Searcher as SearcherClass

    searcher = SearcherClass.__new__(SearcherClass)
    searcher.threads = 2
    release = threading.Event()
    busy = search._chunk_pool(1).submit(release.wait, 30)  # the one helper thread, held by other work
    try:
        seen = []
        searcher._each_chunk(list(range(10)), seen.append)
        assert sorted(seen) == list(range(10)) and not busy.done()  # returned while the pool was still held
    finally:
        release.set()
    assert busy.result(30)


def test_chunks_kept_whole_follow_commits_and_compaction(tmp_path):
    """A served library changes under its searcher: the whole-chunk arrays of chunks that left the snapshot
    are dropped, and every search after `refresh` (and a new `warm`) equals a fresh searcher's."""
    rng = np.random.default_rng(16)
    for part in range(3):
        with IndexWriter(tmp_path, SPEC) as writer:
            add_clips(writer, 5, rng, start=5 * part)
    queries = [unit(rng.standard_normal((4, DIM))) for _ in range(2)]
    served = Searcher(IndexReader.open(tmp_path, SPEC), cache_bytes=1 << 30)
    served.warm("two_stage")
    kernel = served.kernel.name
    first_names = [scan.chunk.name for scan in served.snapshot.scans]
    assert all(served.cache.whole(name, kernel) is not None for name in first_names)

    def fresh():
        searcher = Searcher(IndexReader.open(tmp_path, SPEC), cache_bytes=0)
        return [searcher.search_tokens(queries, k=6, mode=mode, candidates=12) for mode in ("exact", "two_stage")]

    with IndexWriter(tmp_path, SPEC) as writer:
        add_clips(writer, 5, rng, start=15)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.compact(target_windows=1000)  # every chunk merged into a new file
    assert served.refresh()
    assert all(served.cache.whole(name, kernel) is None for name in first_names)  # dropped with their chunks
    served.warm("two_stage")
    assert all(served.cache.whole(scan.chunk.name, kernel) is not None for scan in served.snapshot.scans)
    assert [served.search_tokens(queries, k=6, mode=mode, candidates=12) for mode in ("exact", "two_stage")] \
        == fresh()


def test_a_chunk_an_exact_scan_cached_in_blocks_is_kept_whole_at_the_next_warm(library):
    """Blocks an exact scan cached first are replaced by the whole array (same bytes, counted once), and a
    second warm after that changes nothing."""
    from mofind.index.search import _QueryBatch

    searcher = Searcher(library, cache_bytes=1 << 30)
    kernel, cache = searcher.kernel, searcher.cache
    scan = searcher.snapshot.scans[0]
    queries = _QueryBatch([unit(np.random.default_rng(17).standard_normal((3, DIM)))], library, kernel).operand
    everything = np.arange(scan.num_windows)
    reference = scan.exact_maxima(everything, kernel, queries, None)
    scan.exact_maxima(everything, kernel, queries, cache, block=4)  # an exact scan caches it block by block
    assert cache.holds(scan.chunk.name, kernel.name) and cache.whole(scan.chunk.name, kernel.name) is None
    assert cache.held_bytes(scan.chunk.name, kernel.name) == scan.unpacked_bytes(kernel) == cache.used
    searcher.warm("two_stage")
    whole = cache.whole(scan.chunk.name, kernel.name)
    assert whole is not None
    assert cache.used == sum(s.unpacked_bytes(kernel) for s in searcher.snapshot.scans)
    np.testing.assert_array_equal(scan.exact_maxima(everything, kernel, queries, cache), reference)
    searcher.warm("two_stage")
    assert cache.whole(scan.chunk.name, kernel.name) is whole


def test_a_chunk_with_a_removed_take_is_gathered_and_the_others_are_read_whole_with_the_same_scores(tmp_path):
    """`_Snapshot.chunk_spans`: a chunk whose every window is live and in order is read where it lies; one with a
    removed take is not, and either way every window gets the score of the gathered path."""
    rng = np.random.default_rng(21)
    for part in range(3):
        with IndexWriter(tmp_path, SPEC) as writer:
            add_clips(writer, 6, rng, start=6 * part)
    reader = IndexReader.open(tmp_path, SPEC)
    removed = reader.chunks[1].clips[2]["clip_id"]
    with IndexWriter(tmp_path, SPEC) as writer:
        assert writer.remove([removed]) == 1
    searcher = Searcher(IndexReader.open(tmp_path, SPEC))
    snapshot = searcher.snapshot
    assert [span is None for span in snapshot.chunk_spans] == [False, True, False]
    queries = [unit(rng.standard_normal((n, DIM))) for n in (3, 6)]
    every, copy = snapshot.all_windows, np.array(snapshot.all_windows)
    from mofind.index.search import _QueryBatch

    batch = _QueryBatch(queries, snapshot.reader, searcher.kernel)
    np.testing.assert_array_equal(searcher.coarse_scores(snapshot, every, batch),
                                  searcher.coarse_scores(snapshot, copy, batch))
    np.testing.assert_array_equal(searcher.first_stage_scores(queries, every),
                                  searcher.first_stage_scores(queries, copy))
    hits = searcher.search_tokens(queries, k=5, mode="two_stage", candidates=8)
    assert all(hit.clip_id != removed for found in hits for hit in found)
