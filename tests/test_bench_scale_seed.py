"""The keys `./run bench scale` seeds into stopped key servers' databases (benchmarks/scale_seed.py) are real joint
sharings made by the key servers' own batched generation: every server holds a share of every key, sealed under its
own secret, any t + 1 of them give the server key public (test-only reconstruction), and the stored commitments
give each holder's public share."""

import itertools
import sys
from pathlib import Path

from secretstore.crypto import Address
from secretstore.crypto import math as m
from secretstore.keyserver.storage import KeyStorage
from secretstore.keyserver.testing import key_server_secret

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from scale_seed import seed_keys  # noqa: E402

AUTHOR = Address(b"\x22" * 20)


def test_seeded_keys_are_joint_sharings_of_every_server(tmp_path):
    servers = [key_server_secret(i) for i in range(4)]
    databases = [tmp_path / f"key-server-{i + 1}" / "keys.sqlite" for i in range(4)]
    assert seed_keys(databases, servers, AUTHOR, 1, 7, workers=2) > 0
    storages = [KeyStorage(path, secret) for path, secret in zip(databases, servers)]
    try:
        key_ids = storages[0].key_ids()
        assert len(key_ids) == 7 and all(s.key_ids() == key_ids for s in storages)
        holders = sorted((secret.public().address() for secret in servers), key=bytes)
        for key_id in key_ids:
            shares = [s.get(key_id) for s in storages]
            public = shares[0].public
            assert all(sh.public == public and sh.threshold == 1 and sh.author == AUTHOR
                       and list(sh.holders) == holders and sh.version == shares[0].version for sh in shares)
            points = {m.id_number(secret.public().address()): sh.secret_share for secret, sh in zip(servers, shares)}
            for pair in itertools.combinations(points.items(), 2):
                assert m.base_mul(m.reconstruct(dict(pair))) == public
            commitments = storages[0].commitments(shares[0])
            assert commitments[0] == public
            assert all(m.commitment_at(commitments, x) == m.base_mul(s) for x, s in points.items())
    finally:
        for storage in storages:
            storage.close()
