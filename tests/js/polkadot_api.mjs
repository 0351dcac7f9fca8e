// @polkadot/api (legacy JSON-RPC) against the node: finalized heads, System.Account, a SecretStore runtime API
// called by name from metadata V15, claim_key and generate_server_key signed by //Alice and watched to finalization,
// and the key servers' ServerKeyGenerated seen in System.Events.
import { ApiPromise, WsProvider } from "@polkadot/api";
import { Keyring } from "@polkadot/keyring";
import { cryptoWaitReady } from "@polkadot/util-crypto";
import { deadline, keyId, pallet, report, until, url } from "./common.mjs";

deadline(90);
await cryptoWaitReady();
const api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true, throwOnConnect: true });
const alice = new Keyring({ type: "sr25519", ss58Format: 42 }).addFromUri("//Alice");

const finalized = [];
const unsubscribeHeads = await api.rpc.chain.subscribeFinalizedHeads((header) => finalized.push(header.number.toNumber()));

const account = await api.query.system.account(alice.address);
const tasks = await api.call.secretStoreServiceApi.serverKeyGenerationTasks(0, 10);
const set = await api.call.secretStoreKeyServerSetApi.currentSetWithIndices();

let generated;
const unsubscribeEvents = await api.query.system.events((records) => {
  for (const { event } of records) {
    if (event.section === "secretStore" && event.method === "ServerKeyGenerated" && event.data[0].toHex() === keyId) {
      generated = event.data[1].toHex();
    }
  }
});

function submitAndWatch(tx) {
  return new Promise((resolve, reject) => {
    const updates = [];
    tx.signAndSend(alice, ({ status, events, dispatchError }) => {
      updates.push(status.type);
      if (status.isFinalized) {
        resolve({
          updates,
          block: status.asFinalized.toHex(),
          events: events.map(({ event }) => `${pallet(event.section)}.${event.method}`),
          failed: dispatchError ? dispatchError.toString() : null,
        });
      } else if (status.isInvalid || status.isDropped || status.isUsurped) {
        reject(new Error(`transaction ${status.type}`));
      }
    }).catch(reject);
  });
}

const claim = await submitAndWatch(api.tx.secretStore.claimKey(keyId));
const generate = await submitAndWatch(api.tx.secretStore.generateServerKey(keyId, 1));
const publicKey = await until(() => generated, "ServerKeyGenerated");
const after = await api.query.system.account(alice.address);
unsubscribeEvents();
unsubscribeHeads();
await api.disconnect();

report({
  finalized,
  account: { nonce: account.nonce.toNumber(), free: account.data.free.toString() },
  nonceAfter: after.nonce.toNumber(),
  tasks: tasks.toJSON(),
  set: set.map(([id, index]) => [id.toHex(), index.toNumber()]),
  claim,
  generate,
  serverKey: publicKey,
});
process.exit(0);
