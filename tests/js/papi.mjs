// polkadot-api (new JSON-RPC interface: chainHead_v1, transaction_v1) through its unsafe API, which needs no
// codegen: every type comes from the chain's metadata V15. Same checks as the other client scripts.
import { createClient } from "polkadot-api";
import { getWsProvider } from "polkadot-api/ws";
import { getPolkadotSigner } from "polkadot-api/signer";
import { sr25519CreateDerive } from "@polkadot-labs/hdkd";
import { DEV_PHRASE, entropyToMiniSecret, mnemonicToEntropy, ss58Address } from "@polkadot-labs/hdkd-helpers";
import { firstValueFrom, filter, lastValueFrom, map, tap, toArray } from "rxjs";
import { deadline, keyId, report, url } from "./common.mjs";

deadline(90);
const derive = sr25519CreateDerive(entropyToMiniSecret(mnemonicToEntropy(DEV_PHRASE)));
const aliceKeys = derive("//Alice");
const alice = getPolkadotSigner(aliceKeys.publicKey, "Sr25519", aliceKeys.sign);
const aliceAddress = ss58Address(aliceKeys.publicKey, 42);

const client = createClient(getWsProvider(url));
const api = client.getUnsafeApi();

const finalized = [];
const heads = client.finalizedBlock$.subscribe((block) => finalized.push(block.number));

const account = await api.query.System.Account.getValue(aliceAddress);
const tasks = await api.apis.SecretStoreServiceApi.server_key_generation_tasks(0, 10);
const set = await api.apis.SecretStoreKeyServerSetApi.current_set_with_indices();

// watched before the request is sent, so that the answer cannot be missed
const generated = firstValueFrom(api.event.SecretStore.ServerKeyGenerated.watch().pipe(
  map(({ events }) => events.find((event) => event.payload.id === keyId)),
  filter((event) => event !== undefined),
));

async function submitAndWatch(tx) {
  const updates = [];
  const done = await lastValueFrom(tx.signSubmitAndWatch(alice).pipe(
    tap((event) => updates.push(event.type)),
    filter((event) => event.type === "finalized"),
    toArray(),
  ));
  const last = done.at(-1);
  return {
    updates,
    block: last.block.hash,
    events: last.events.map((event) => `${event.type}.${event.value.type}`),
    failed: last.ok ? null : JSON.stringify(last.dispatchError),
  };
}

const claim = await submitAndWatch(api.tx.SecretStore.claim_key({ id: keyId }));
const generate = await submitAndWatch(api.tx.SecretStore.generate_server_key({ id: keyId, threshold: 1 }));
const serverKey = (await generated).payload.public;
const after = await api.query.System.Account.getValue(aliceAddress);
heads.unsubscribe();
client.destroy();

report({
  finalized,
  account: { nonce: account.nonce, free: account.data.free },
  nonceAfter: after.nonce,
  tasks,
  set,
  claim,
  generate,
  serverKey,
});
process.exit(0);
