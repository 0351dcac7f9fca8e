"""`--block-time` seals blocks on a clock; `--chain-spec` overrides the dev genesis (and refuses unknown fields)."""

import json
import subprocess
import sys
import time
from pathlib import Path

from substrateinterface import Keypair, SubstrateInterface

from secretstore.node.testing import NodeProcess, free_port, rpc_call


def head_number(node) -> int:
    return int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16)


def test_block_time_produces_blocks_without_transactions(tmp_path):
    with NodeProcess(tmp_path, free_port(), block_time=0.3) as node:
        first = head_number(node)
        time.sleep(1.5)
        assert head_number(node) >= first + 3


def test_chain_spec_overrides_genesis(tmp_path):
    bob = Keypair.create_from_uri("//Bob")
    spec = {
        "name": "Custom",
        "owner": bob.ss58_address,
        "key_servers": [{"id": "0x" + "11" * 20, "address": "10.0.0.1:7000"}],
        "base_fee": 1000, "byte_fee": 10, "server_key_generation_fee": 7,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with NodeProcess(tmp_path / "chain", free_port(), chain_spec=path) as node:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        assert api.chain == "Custom"
        assert api.query("SecretStore", "Owner").value == bob.ss58_address
        assert [s["address"] for s in api.query("SecretStore", "CurrentKeyServers").value] == ["10.0.0.1:7000"]
        assert api.query("SecretStore", "ServerKeyGenerationFee").value == 7
        call = api.compose_call("System", "remark", {"remark": "0x00"})
        assert int(api.get_payment_info(call, Keypair.create_from_uri("//Alice"))["partialFee"]) > 1000
        api.close()


def test_unknown_chain_spec_field_is_refused(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"key_serverz": []}))
    result = subprocess.run([str(Path(sys.executable).with_name("secretstore")), "node", "--base-path",
                             str(tmp_path / "c"), "--chain-spec", str(path), "--rpc-port", str(free_port())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "unknown field(s) key_serverz" in result.stderr and "Traceback" not in result.stderr
