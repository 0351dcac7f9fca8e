"""The SecretStore pallet."""
