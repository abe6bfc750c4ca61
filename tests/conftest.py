"""Fixtures shared by test modules."""

import pytest


@pytest.fixture(scope="module")
def client():
    """A Dask ``LocalCluster`` of two one-thread worker processes, one per test module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
