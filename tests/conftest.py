"""Shared fixtures: offline HF settings, one TUNEBENCH_HOME per test session, tiny models."""
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads, and OpenMP spin-waits thrash a busy 2-core box.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Reuse the Makefile's home (models and data built once); otherwise a throwaway one.
os.environ.setdefault("TUNEBENCH_HOME", tempfile.mkdtemp(prefix="tunebench-test-"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama():
    from bench.models import prepare

    return prepare("tiny-llama")


@pytest.fixture(scope="session")
def tiny_llama_bias():
    from bench.models import prepare

    return prepare("tiny-llama-bias")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct built into the session's home (a fresh CI clone has none yet)."""
    from bench.models import prepare

    return prepare("smollm2-135m")


@pytest.fixture(scope="session")
def gsm_symbolic():
    from bench import taskdata

    taskdata.prepare("gsm-symbolic")
    return "gsm-symbolic"
