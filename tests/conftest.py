"""Fixtures shared across the test packages."""

import pytest

from secretstore.node.testing import NodeProcess, free_port


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A real node process (instant seal, dev chain) on a free port, for one test module."""
    with NodeProcess(tmp_path_factory.mktemp("node"), free_port()) as process:
        yield process
