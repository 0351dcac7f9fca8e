"""MathChain SecretStore in Python."""
