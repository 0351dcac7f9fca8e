"""The runtime's version record (`Core_version`, System.Version) and runtime API ids."""

from __future__ import annotations

import hashlib

from ..codec.scale import U8, U32, Array, Composite, Field, Sequence, Str, Tuple

RuntimeVersion = Composite(("sp_version", "RuntimeVersion"), [
    Field("spec_name", Str), Field("impl_name", Str), Field("authoring_version", U32), Field("spec_version", U32),
    Field("impl_version", U32), Field("apis", Sequence(Tuple(Array(U8, 8), U32))), Field("transaction_version", U32),
    Field("state_version", U8),
])


def api_id(name: str) -> bytes:
    """A runtime API's id: blake2b with an 8-byte digest (blake2_64) of the API trait's name, as sp-api derives it
    (so Core is 0xdf6acb689907609b, the id clients look for)."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()
