"""What a key server learns from a block's events between full scans: which services changed, which requests were
announced (acted on at once) and which ended (dropped from the cached task lists)."""

from secretstore.chain.client import ChainEvent
from secretstore.chain.secretstore_api import (
    GenerateServerKey, PersonalPartTally, RetrieveShadowDocumentKeyCommon, RetrieveShadowDocumentKeyPersonal, task_identity,
)
from secretstore.crypto import Address, Secret, ServerKeyId
from secretstore.keyserver.service import ALL, ChainService

KEY = "0x" + "ab" * 32
AUTHOR = "0x" + "cd" * 20
REQUESTER = Secret(b"\x05" * 32).public()


def ss(name: str, **attributes) -> ChainEvent:
    return ChainEvent("SecretStore", name, attributes or None)


def learn(*blocks: list[ChainEvent], tally: PersonalPartTally | None = None):
    announced, ended, changed = {}, set(), set()
    for events in blocks:
        changed |= ChainService._changed(events, announced, ended, tally)
    return changed, announced, ended


def test_blocks_that_change_no_task_are_not_scanned():
    changed, announced, ended = learn(
        [ChainEvent("System", "ExtrinsicSuccess", {}), ss("KeyClaimed", id=KEY, owner=AUTHOR),
         ChainEvent("Balances", "Transfer", {})], [])
    assert changed == set() and announced == {} and ended == set()


def test_a_request_is_announced_and_its_result_ends_it():
    generation = GenerateServerKey(ServerKeyId.from_hex(KEY), Address.from_hex(AUTHOR), 1)
    changed, announced, ended = learn([ss("ServerKeyGenerationRequested", id=KEY, author=AUTHOR, threshold=1)])
    assert changed == {"server_key_generation"} and list(announced.values()) == [generation] and not ended

    # requested and answered within the blocks taken together: not announced (nothing to start), but ended
    changed, announced, ended = learn([ss("ServerKeyGenerationRequested", id=KEY, author=AUTHOR, threshold=1)],
                                      [ss("ServerKeyGenerated", id=KEY, public="0x" + "02" * 64)])
    assert announced == {} and ended == {task_identity(generation)}

    # answered, then requested again: ended (the old one) and announced (the new one)
    changed, announced, ended = learn([ss("ServerKeyGenerationError", id=KEY)],
                                      [ss("ServerKeyGenerationRequested", id=KEY, author=AUTHOR, threshold=1)])
    assert list(announced.values()) == [generation] and ended == {task_identity(generation)}


def test_a_shadow_retrieval_moves_from_its_common_to_its_personal_part():
    requester = REQUESTER.address()
    changed, announced, ended = learn([
        ss("DocumentKeyCommonRetrieved", id=KEY, requester=requester.hex(), common_point="0x" + "02" * 64,
           threshold=1),
        ss("DocumentKeyPersonalRetrievalRequested", id=KEY, requester_public=REQUESTER.hex())])
    assert changed == {"document_key_shadow_retrieval"}
    common = RetrieveShadowDocumentKeyCommon(ServerKeyId.from_hex(KEY), requester)
    personal = RetrieveShadowDocumentKeyPersonal(ServerKeyId.from_hex(KEY), bytes(REQUESTER))
    assert ended == {task_identity(common)} and list(announced.values()) == [personal]

    changed, announced, ended = learn([ss("DocumentKeyShadowRetrievalError", id=KEY, requester=requester.hex())])
    assert ended == {task_identity(common), task_identity(personal)}


def test_a_personal_part_ends_with_the_last_report_of_one_session():
    requester = REQUESTER.address()
    personal = RetrieveShadowDocumentKeyPersonal(ServerKeyId.from_hex(KEY), bytes(REQUESTER))
    tally = PersonalPartTally()

    def report(secret: str) -> ChainEvent:
        return ss("DocumentKeyPersonalRetrieved", id=KEY, requester=requester.hex(), decrypted_secret=secret,
                  shadow="0x00")

    _, _, ended = learn([ss("DocumentKeyCommonRetrieved", id=KEY, requester=requester.hex(),
                            common_point="0x" + "02" * 64, threshold=2)], [report("0x01"), report("0x01")],
                        tally=tally)
    assert task_identity(personal) not in ended  # 2 of t + 1 = 3
    _, _, ended = learn([report("0x02")], tally=tally)  # another session's part does not add up with them
    assert task_identity(personal) not in ended
    _, _, ended = learn([report("0x01")], tally=tally)
    assert ended == {task_identity(personal)} and not tally.reports and not tally.thresholds
    # without the common part's threshold (a server that started later) nothing is assumed ended
    _, _, ended = learn([report("0x01")] * 5, tally=PersonalPartTally())
    assert task_identity(personal) not in ended


def test_what_it_cannot_read_makes_it_read_everything():
    assert ALL in learn([ss("KeyServerAdded", key_server=AUTHOR)])[0]
    assert ALL in learn([ss("SomethingNew", id=KEY)])[0]
    assert ALL in learn([ss("ServerKeyGenerated", id="not hex", public="0x")])[0]
    assert ALL in learn([ChainEvent("System", "CodeUpdated", None)])[0]
