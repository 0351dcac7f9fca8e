// Shared by the client scripts: arguments, an overall deadline and the one line of JSON the test reads.
export const [url, keyId] = process.argv.slice(2);
if (!url || !/^0x[0-9a-f]{64}$/.test(keyId ?? "")) {
  console.error("usage: node <script> WS_URL KEY_ID(0x + 64 hex)");
  process.exit(2);
}

// A client that stops answering must fail the test, not hang it.
export function deadline(seconds) {
  setTimeout(() => {
    console.error(`no result after ${seconds} s`);
    process.exit(3);
  }, seconds * 1000).unref();
}

export function report(result) {
  const plain = JSON.stringify(result, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  console.log(`RESULT ${plain}`);
}

// "secretStore" / "SecretStore" -> "SecretStore": clients name pallets differently
export const pallet = (name) => name[0].toUpperCase() + name.slice(1);

export function until(predicate, what, seconds = 60) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), seconds * 1000);
    const poll = () => {
      const found = predicate();
      if (found !== undefined) {
        clearTimeout(timer);
        resolve(found);
      } else setTimeout(poll, 20);
    };
    poll();
  });
}
