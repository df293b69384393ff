import multiprocessing
import threading

import pytest
import torch

from mlcore.devices import across_cores


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_across_cores_gives_each_slice_its_own_thread_and_keeps_their_order(two_threads):
    seen = []

    def describe(rows: torch.Tensor) -> tuple[list[int], int, bool]:
        seen.append(threading.get_ident())
        return rows.tolist(), torch.get_num_threads(), torch.is_inference_mode_enabled()

    with torch.inference_mode():
        results = across_cores(describe, torch.arange(5))
    assert [rows for rows, _, _ in results] == [[0, 1, 2], [3, 4]]
    assert all(threads == 1 and inference for _, threads, inference in results)
    assert len(set(seen)) == 2
    assert torch.get_num_threads() == 2  # restored
    assert across_cores(describe, torch.arange(1))[0][0] == [0]  # one row: no split


def test_across_cores_passes_a_slices_error_on_and_restores_the_threads(two_threads):
    def fail_on_the_second(rows: torch.Tensor) -> int:
        if rows[0] > 0:
            raise ValueError("second slice")
        return 0

    with pytest.raises(ValueError, match="second slice"):
        across_cores(fail_on_the_second, torch.arange(4))
    assert torch.get_num_threads() == 2


def test_across_cores_works_in_a_process_forked_after_it_ran(two_threads):
    # A forked child inherits the parent's thread pool object but none of its threads: work handed to it would
    # wait forever (a worker process forked from one that had captioned).
    across_cores(lambda part: part * 2, torch.arange(4.0))
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        doubled = pool.apply_async(_doubled_across_cores).get(timeout=60)
    assert doubled == [0.0, 2.0, 4.0, 6.0]


def _doubled_across_cores() -> list[float]:
    torch.set_num_threads(2)
    return torch.cat(across_cores(lambda part: part * 2, torch.arange(4.0))).tolist()
