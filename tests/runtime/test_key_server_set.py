from .conftest import ALICE, BOB, CHARLIE, DAVE, DAVE_ID, KS_IDS, make_chain, names, ss

ADDR = b"127.0.0.1:10003"


def snapshot(chain, ks=KS_IDS[0]):
    return chain.api("SecretStoreKeyServerSetApi_snapshot", ks)


def ids(servers):
    return [ks_id for ks_id, _ in servers]


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
    assert snap["current_set"][0] == (KS_IDS[0], b"10.0.0.1:1")
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


def test_set_size_is_bounded():
    servers = [((i + 1).to_bytes(20, "big"), b"127.0.0.1:1") for i in range(255)]
    chain = make_chain(key_servers=servers, is_initialization_completed=False)
    chain.fails(ALICE, "SecretStore", "add_key_server", "TooManyKeyServers", id=DAVE_ID, network_address=ADDR)
    # an address update of a member is still fine
    assert names(ss(chain, ALICE, "add_key_server", id=servers[0][0], network_address=ADDR)) == ["KeyServerUpdated"]


def test_last_key_server_cannot_be_removed():
    chain = make_chain(key_servers=[(KS_IDS[0], b"127.0.0.1:10000")])
    chain.fails(ALICE, "SecretStore", "remove_key_server", "LastKeyServer", id=KS_IDS[0])


def test_migration_needs_a_claimed_id():
    chain = make_chain()
    ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=ADDR)
    stranger = b"\x7a" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", stranger), value=10**9)
    chain.fails(stranger, "SecretStore", "start_migration", "NoAssociatedId", migration_id=b"\x01" * 32)
    chain.fails(stranger, "SecretStore", "confirm_migration", "NoAssociatedId", migration_id=b"\x01" * 32)


def test_set_changes_during_a_migration_wait_for_the_next_one():
    chain = make_chain()
    mid = b"\x04" * 32
    ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=ADDR)
    ss(chain, ALICE, "start_migration", migration_id=mid)
    snap = snapshot(chain)
    assert snap["migration"]["id"] == mid and snap["migration"]["master"] == KS_IDS[0]
    assert ids(snap["migration"]["set"]) == KS_IDS + [DAVE_ID]
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[1])  # changes the new set only
    assert ids(snapshot(chain)["migration"]["set"]) == KS_IDS + [DAVE_ID]
    for who in (ALICE, BOB, CHARLIE, DAVE):
        ss(chain, who, "confirm_migration", migration_id=mid)
    snap = snapshot(chain)
    assert ids(snap["current_set"]) == KS_IDS + [DAVE_ID]
    assert ids(snap["new_set"]) == [KS_IDS[0], KS_IDS[2], DAVE_ID]
    # the owner's latest change needs another migration
    assert names(ss(chain, CHARLIE, "start_migration", migration_id=b"\x05" * 32)) == ["MigrationStarted"]


def test_completed_migration_restarts_pending_requests():
    from secretstore.crypto import Secret

    from .conftest import KEY, required

    chain = make_chain()
    public = bytes(Secret.random().public())
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public)
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[2])
    mid = b"\x06" * 32
    ss(chain, BOB, "start_migration", migration_id=mid)
    assert not required(chain, "server_key_generation", KS_IDS[0], KEY)  # the current set has not changed yet
    chain.next_block()
    ss(chain, ALICE, "confirm_migration", migration_id=mid)
    ss(chain, BOB, "confirm_migration", migration_id=mid)
    assert required(chain, "server_key_generation", KS_IDS[0], KEY)
    ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public)
    assert names(ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public)) == ["ServerKeyGenerated"]


def test_two_membership_changes_in_one_block_still_restart_counting():
    from secretstore.crypto import Secret

    from .conftest import KEY, required

    chain = make_chain(is_initialization_completed=False)
    public = bytes(Secret.random().public())
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    chain.next_block()
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[0])  # Bob is now index 0, Charlie index 1
    ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public)
    ss(chain, ALICE, "add_key_server", id=KS_IDS[0], network_address=b"127.0.0.1:10000")  # same block
    # Bob's vote was cast under the old indices: it must not be counted for Alice (index 2 now) or anyone else
    assert required(chain, "server_key_generation", KS_IDS[1], KEY)
    for who in (ALICE, CHARLIE):
        assert ss(chain, who, "server_key_generated", id=KEY, server_key_public=public) == []
    assert names(ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public)) == ["ServerKeyGenerated"]
