"""The method groups the node serves. A new group is a module with a `MethodGroup` subclass, listed here."""

from .author import AuthorMethods
from .chain import ChainMethods
from .payment import PaymentMethods
from .state import StateMethods
from .system import SystemMethods

GROUPS = (SystemMethods, ChainMethods, StateMethods, AuthorMethods, PaymentMethods)
