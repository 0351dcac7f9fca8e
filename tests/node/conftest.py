import pytest
from substrateinterface import Keypair, SubstrateInterface

from .new_rpc_client import Client, Signer


@pytest.fixture(scope="module")
def substrate(node):
    api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    yield api
    api.close()


@pytest.fixture(scope="session")
def alice():
    return Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="session")
def bob():
    return Keypair.create_from_uri("//Bob")


@pytest.fixture
def client(node):
    """A client of the new JSON-RPC interface (chainHead_v1, transaction_v1, archive_v1) over one WebSocket."""
    with Client(node.ws_url) as c:
        yield c


@pytest.fixture
def signer(client):
    return Signer(client, Keypair.create_from_uri("//Alice"))
