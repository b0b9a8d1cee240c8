// Node's own HTTP client against a running vitalog, for test_transport.py.
//
//   node node_clients.mjs post-oversize URL SIZE TRIES
//
// POSTs a body of SIZE bytes ({"resourceType":"Observation","pad":"xxx…"})
// to URL with fetch(), TRIES times in sequence (the 413 closes its
// connection, so every try is on a new one),
// and prints one JSON array on stdout: per try {"status", "contentType",
// "body"} (the body's first 2000 characters) or {"error", "code"} when
// fetch failed (e.g. code EPIPE or ECONNRESET: the client never saw the
// answer).

const [mode, url, sizeText, triesText] = process.argv.slice(2);
if (mode !== "post-oversize" || !url || !sizeText || !triesText) {
  console.error("usage: node node_clients.mjs post-oversize URL SIZE TRIES");
  process.exit(2);
}
const size = Number(sizeText), tries = Number(triesText);
const head = Buffer.from('{"resourceType":"Observation","pad":"'), tail = Buffer.from('"}');
const body = Buffer.concat([head, Buffer.alloc(size - head.length - tail.length, "x"), tail]);

const results = [];
for (let i = 0; i < tries; i++) {
  try {
    const reply = await fetch(url, {
      method: "POST",
      body,
      headers: {"content-type": "application/fhir+json"},
    });
    const text = await reply.text();
    results.push({status: reply.status, contentType: reply.headers.get("content-type"),
                  body: text.slice(0, 2000)});
  } catch (e) {
    const cause = e.cause || {};
    results.push({error: String(e), code: String(cause.code || cause.message || cause)});
  }
}
console.log(JSON.stringify(results));
