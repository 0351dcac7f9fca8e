"""The SecretStore pallet: `pallet.SecretStore` composes its parts, one module each (`key_server_set`, `claims`,
`server_key_generation`, `server_key_retrieval`, `document_key_store`, `document_key_shadow_retrieval`) over what
they share (`base`: errors, shared storage items, request intake and response handling; `responses`: counting;
`types`: storage records); `api` serves the runtime API traits of `secretstore.interface`."""
