// dedot over the new JSON-RPC interface (forced: no fallback to the legacy methods), its runtime API calls typed
// from metadata V15; signed with a @polkadot/keyring pair, as dedot documents. Same checks as the other scripts.
import { DedotClient, WsProvider } from "dedot";
import { Keyring } from "@polkadot/keyring";
import { cryptoWaitReady } from "@polkadot/util-crypto";
import { deadline, keyId, report, until, url } from "./common.mjs";

deadline(90);
await cryptoWaitReady();
const alice = new Keyring({ type: "sr25519", ss58Format: 42 }).addFromUri("//Alice");
const client = await DedotClient.new({ provider: new WsProvider(url), rpcVersion: "v2" });

const finalized = [];
const unsubscribeHeads = await client.block.finalized((block) => finalized.push(block.number));

const account = await client.query.system.account(alice.address);
const tasks = await client.call.secretStoreServiceApi.serverKeyGenerationTasks(0, 10);
const set = await client.call.secretStoreKeyServerSetApi.currentSetWithIndices();

async function submitAndWatch(tx) {
  const updates = [];
  const result = await tx.signAndSend(alice, ({ status }) => updates.push(status.type)).untilFinalized();
  return {
    updates,
    block: result.status.value.blockHash,
    events: result.events.map(({ event }) => `${event.pallet}.${event.palletEvent.name ?? event.palletEvent}`),
    failed: result.dispatchError ? JSON.stringify(result.dispatchError) : null,
  };
}

const claim = await submitAndWatch(client.tx.secretStore.claimKey(keyId));
// Watched from here, before the request is sent. Not earlier: dedot 1.3's watch() throws on a best block without
// events (its filter reads the first record of an empty list), which a fresh chain's genesis is.
let generated;
const unsubscribeEvents = await client.events.secretStore.ServerKeyGenerated.watch((events) => {
  const ours = events.find((event) => event.palletEvent.data.id === keyId);
  if (ours) generated = ours.palletEvent.data.public;
});
const generate = await submitAndWatch(client.tx.secretStore.generateServerKey(keyId, 1));
const serverKey = await until(() => generated, "ServerKeyGenerated");
const after = await client.query.system.account(alice.address);
unsubscribeEvents();
unsubscribeHeads();
await client.disconnect();

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
