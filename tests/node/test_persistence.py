"""State survives restarts and kill -9: every block is committed atomically."""

import time

from substrateinterface import SubstrateInterface

from secretstore.node.testing import NodeProcess, free_port, rpc_call


def test_restart_keeps_state(tmp_path, alice):
    node = NodeProcess(tmp_path, free_port()).start()
    try:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        call = api.compose_call("SecretStore", "claim_key", {"id": "0x" + "ee" * 32})
        assert api.submit_extrinsic(api.create_signed_extrinsic(call, alice), wait_for_inclusion=True).is_success
        head = api.get_chain_head()
        api.close()
    finally:
        node.stop()
    node = NodeProcess(tmp_path, free_port()).start()
    try:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        assert api.get_chain_head() == head
        assert api.query("SecretStore", "KeyOwners", ["0x" + "ee" * 32]).value == [
            "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"]
        assert api.get_account_nonce(alice.ss58_address) == 1
        api.close()
    finally:
        node.stop()


def test_kill_9_leaves_a_consistent_database(tmp_path, alice):
    node = NodeProcess(tmp_path, free_port()).start()
    api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    nonce = api.get_account_nonce(alice.ss58_address)
    for i in range(30):  # a stream of transactions, killed while blocks are being written
        call = api.compose_call("System", "remark", {"remark": "0x%04x" % i})
        api.submit_extrinsic(api.create_signed_extrinsic(call, alice, nonce=nonce + i))
    time.sleep(0.05)
    node.stop(kill=True)
    api.close()
    node = NodeProcess(tmp_path, free_port()).start()
    try:
        head = rpc_call(node.http_url, "chain_getHeader")["result"]
        number = int(head["number"], 16)
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        # the head block's own state is there: its number, its events, and one nonce per included remark
        assert api.query("System", "Number").value == number
        included = sum(len(api.get_block(block_number=n)["extrinsics"]) for n in range(1, number + 1))
        assert api.get_account_nonce(alice.ss58_address) == included
        # and the chain goes on from there
        call = api.compose_call("System", "remark", {"remark": "0xff"})
        assert api.submit_extrinsic(api.create_signed_extrinsic(call, alice), wait_for_inclusion=True).is_success
        api.close()
    finally:
        node.stop()


def test_pool_survives_a_crash(tmp_path, alice):
    """A transaction waiting in the pool (its nonce is ahead) is still there after kill -9 and lands once the gap
    is filled."""
    node = NodeProcess(tmp_path, free_port()).start()
    api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    nonce = api.get_account_nonce(alice.ss58_address)
    ahead = api.create_signed_extrinsic(api.compose_call("System", "remark", {"remark": "0x0a"}), alice, nonce=nonce + 1)
    assert "result" in rpc_call(node.http_url, "author_submitExtrinsic", [str(ahead.data)])
    api.close()
    node.stop(kill=True)
    node = NodeProcess(tmp_path, free_port()).start()
    try:
        assert rpc_call(node.http_url, "author_pendingExtrinsics")["result"] == [str(ahead.data)]
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        gap = api.create_signed_extrinsic(api.compose_call("System", "remark", {"remark": "0x0b"}), alice, nonce=nonce)
        api.submit_extrinsic(gap, wait_for_inclusion=True)
        deadline = time.monotonic() + 10
        while api.get_account_nonce(alice.ss58_address) < nonce + 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert rpc_call(node.http_url, "author_pendingExtrinsics")["result"] == []
        api.close()
    finally:
        node.stop()
