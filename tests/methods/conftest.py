"""Shared by the method tests: one thread for tiny matrices, and peft's known harmless warnings.

Known warnings: BOFT's optional CUDA kernel (it falls back, see methods/boft.py) and LNTuning's
generic notice for RMSNorm, which it handles like any module it copies.
"""
import pytest
import torch


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.parent.name == "methods":
            for msg in ("Failed to load the CUDA extension", "Setting boft_n_butterfly_factor to 1",
                        "Unsupported layer type.*RMSNorm"):
                item.add_marker(pytest.mark.filterwarnings(f"ignore:{msg}"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is as fast, and avoids thrashing when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
