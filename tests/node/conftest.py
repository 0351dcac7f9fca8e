import pytest
from substrateinterface import Keypair, SubstrateInterface


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
