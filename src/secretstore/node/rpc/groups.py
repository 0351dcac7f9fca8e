"""The method groups the node serves. A new group is a module with a `MethodGroup` subclass, listed here."""

from .archive import ArchiveMethods
from .author import AuthorMethods
from .chain import ChainMethods
from .chain_head import ChainHeadMethods
from .chain_spec import ChainSpecMethods
from .payment import PaymentMethods
from .state import StateMethods
from .system import SystemMethods
from .transaction import TransactionMethods

GROUPS = (SystemMethods, ChainMethods, StateMethods, AuthorMethods, PaymentMethods, ChainHeadMethods, ChainSpecMethods,
          TransactionMethods, ArchiveMethods)
