from secretstore.codec.primitives import H160
from secretstore.runtime.secretstore.types import KeyServerSetSnapshot

from .conftest import ALICE, BOB, CHARLIE, DAVE, DAVE_ID, KS_IDS, make_chain, names, ss

ADDR = b"127.0.0.1:10003"


def snapshot(chain, ks=KS_IDS[0]):
    return chain.api("key_server_set_snapshot", H160, ks, KeyServerSetSnapshot)


def ids(servers):
    return [s["id"] for s in servers]


def test_before_initialization_changes_apply_directly():
    chain = make_chain(is_initialization_completed=False)
    assert names(ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=ADDR)) == ["KeyServerAdded"]
    snap = snapshot(chain)
    assert ids(snap["current_set"]) == ids(snap["new_set"]) == KS_IDS + [DAVE_ID]
    assert snap["migration"] is None
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[1])
    assert ids(snapshot(chain)["current_set"]) == [KS_IDS[0], KS_IDS[2], DAVE_ID]
    ss(chain, ALICE, "complete_initialization")
    chain.fails(ALICE, "SecretStore", "complete_initialization", "InitializationAlreadyCompleted")


def test_set_changes_are_owner_only_and_validated(chain):
    chain.fails(BOB, "SecretStore", "add_key_server", "NotOwner", id=DAVE_ID, network_address=ADDR)
    chain.fails(ALICE, "SecretStore", "add_key_server", "InvalidNetworkAddress", id=DAVE_ID, network_address=b"")
    chain.fails(ALICE, "SecretStore", "add_key_server", "KeyServerAlreadyAdded", id=KS_IDS[0],
                network_address=b"127.0.0.1:10000")
    chain.fails(ALICE, "SecretStore", "remove_key_server", "UnknownKeyServer", id=DAVE_ID)
    chain.fails(BOB, "SecretStore", "remove_key_server", "NotOwner", id=KS_IDS[0])


def test_address_update_needs_no_migration(chain):
    assert names(ss(chain, ALICE, "add_key_server", id=KS_IDS[0], network_address=b"10.0.0.1:1")) == ["KeyServerUpdated"]
    snap = snapshot(chain)
    assert snap["current_set"][0]["address"] == b"10.0.0.1:1"
    chain.fails(BOB, "SecretStore", "start_migration", "MigrationNotRequired", migration_id=b"\x01" * 32)


def test_add_server_then_migrate():
    chain = make_chain()
    ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=ADDR)
    snap = snapshot(chain)
    assert ids(snap["current_set"]) == KS_IDS and ids(snap["new_set"]) == KS_IDS + [DAVE_ID]
    mid = b"\x01" * 32
    stranger = b"\x79" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", stranger), value=10**9)
    ss(chain, stranger, "claim_id", id=b"\x66" * 20)
    chain.fails(stranger, "SecretStore", "start_migration", "NotAKeyServer", migration_id=mid)
    # a server of the new set (Dave's entity) may start it
    events = ss(chain, DAVE, "start_migration", migration_id=mid)
    assert events == [("SecretStore", "MigrationStarted", {"migration_id": mid, "master": DAVE_ID})]
    chain.fails(BOB, "SecretStore", "start_migration", "MigrationAlreadyStarted", migration_id=mid)
    chain.fails(BOB, "SecretStore", "confirm_migration", "WrongMigrationId", migration_id=b"\x02" * 32)
    chain.fails(stranger, "SecretStore", "confirm_migration", "NotInMigrationSet", migration_id=mid)
    for who in (ALICE, BOB, CHARLIE):
        assert ss(chain, who, "confirm_migration", migration_id=mid) == []
    assert snapshot(chain, KS_IDS[0])["migration"]["is_confirmed"]
    assert not snapshot(chain, DAVE_ID)["migration"]["is_confirmed"]
    chain.fails(ALICE, "SecretStore", "confirm_migration", "MigrationAlreadyConfirmed", migration_id=mid)
    chain.next_block()
    assert names(ss(chain, DAVE, "confirm_migration", migration_id=mid)) == ["MigrationCompleted"]
    snap = snapshot(chain)
    assert ids(snap["current_set"]) == KS_IDS + [DAVE_ID] and snap["migration"] is None
    assert chain.runtime.secretstore.CurrentSetChangeBlock.get(chain.storage) == chain.number
    chain.fails(ALICE, "SecretStore", "confirm_migration", "NoActiveMigration", migration_id=mid)


def test_remove_server_then_migrate():
    chain = make_chain()
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[2])
    mid = b"\x03" * 32
    ss(chain, CHARLIE, "start_migration", migration_id=mid)  # a server of the current set
    ss(chain, ALICE, "confirm_migration", migration_id=mid)
    chain.fails(CHARLIE, "SecretStore", "confirm_migration", "NotInMigrationSet", migration_id=mid)
    assert names(ss(chain, BOB, "confirm_migration", migration_id=mid)) == ["MigrationCompleted"]
    assert ids(snapshot(chain)["current_set"]) == KS_IDS[:2]
