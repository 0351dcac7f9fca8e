
from .conftest import ALICE, BOB, DAVE, DAVE_ID, KEY, KS_IDS, ss


def test_claim_id_one_each_way(chain):
    newcomer = b"\x77" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", newcomer), value=10**9)
    chain.fails(newcomer, "SecretStore", "claim_id", "IdAlreadyClaimed", id=KS_IDS[0])
    events = ss(chain, newcomer, "claim_id", id=b"\x55" * 20)
    assert events == [("SecretStore", "IdClaimed", {"account": newcomer, "id": b"\x55" * 20})]
    chain.fails(newcomer, "SecretStore", "claim_id", "AccountAlreadyHasId", id=b"\x56" * 20)


def test_calls_need_a_claimed_id(chain):
    stranger = b"\x78" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", stranger), value=10**9)
    chain.fails(stranger, "SecretStore", "claim_key", "NoAssociatedId", id=KEY)
    chain.fails(stranger, "SecretStore", "generate_server_key", "NoAssociatedId", id=KEY, threshold=1)


def test_change_owner_is_owner_only(chain):
    chain.fails(BOB, "SecretStore", "change_owner", "NotOwner", new_owner=BOB)
    ss(chain, ALICE, "change_owner", new_owner=BOB)
    chain.fails(ALICE, "SecretStore", "change_owner", "NotOwner", new_owner=ALICE)
    ss(chain, BOB, "change_owner", new_owner=ALICE)


def access(chain, key, who):
    return chain.api("SecretStoreAclApi_check", who, key)


def test_claim_and_transfer_key_control_access(chain):
    assert not access(chain, KEY, KS_IDS[0])
    events = ss(chain, ALICE, "claim_key", id=KEY)
    assert events == [("SecretStore", "KeyClaimed", {"id": KEY, "owner": KS_IDS[0]})]
    assert access(chain, KEY, KS_IDS[0])
    chain.fails(BOB, "SecretStore", "claim_key", "KeyAlreadyClaimed", id=KEY)
    chain.fails(BOB, "SecretStore", "transfer_key", "NotKeyOwner", id=KEY, new_claimant=KS_IDS[1])
    ss(chain, ALICE, "transfer_key", id=KEY, new_claimant=DAVE_ID)
    assert access(chain, KEY, DAVE_ID) and not access(chain, KEY, KS_IDS[0])
    chain.fails(ALICE, "SecretStore", "transfer_key", "NotKeyOwner", id=KEY, new_claimant=KS_IDS[0])
    ss(chain, DAVE, "transfer_key", id=KEY, new_claimant=KS_IDS[0])
    assert access(chain, KEY, KS_IDS[0])
