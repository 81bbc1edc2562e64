// The encoded forms of a secret that Airlock promises to keep out of everything a connector
// sends (docs/security.md): raw; hex lower and upper; base64 and base64url of the secret at
// byte offsets 0, 1 and 2, padded and unpadded; percent-encoded (upper and lower hex);
// JSON-escaped (with and without "\/"). Written independently of the C++ redactor.

// Whole encodings, as an adversarial server would emit them.
export function emittedForms(secret) {
  const s = Buffer.from(secret, "utf8");
  const forms = [s.toString("utf8"), s.toString("hex"), s.toString("hex").toUpperCase()];
  for (let k = 0; k < 3; k++) {
    const b = Buffer.concat([Buffer.from("xyz".slice(0, k)), s]);
    const std = b.toString("base64");
    forms.push(std, std.replace(/=+$/, ""));
    const url = std.replace(/\+/g, "-").replace(/\//g, "_");
    forms.push(url, url.replace(/=+$/, ""));
  }
  forms.push(percent(s, true), percent(s, false));
  const json = JSON.stringify(secret).slice(1, -1);
  forms.push(json, json.replace(/\//g, "\\/"));
  return [...new Set(forms)];
}

// What must never be found, in decoded text or in the bytes on the wire: the forms, with base64
// cut to the characters that depend on the secret alone (the first and last may mix in
// neighbouring bytes), and each form JSON-escaped as it is on the wire inside a JSON string.
export function searchForms(secret) {
  const s = Buffer.from(secret, "utf8");
  const out = [s.toString("utf8"), s.toString("hex"), s.toString("hex").toUpperCase(),
               percent(s, true), percent(s, false)];
  const json = JSON.stringify(secret).slice(1, -1);
  out.push(json, json.replace(/\//g, "\\/"));
  for (let k = 0; k < 3; k++) {
    const std = Buffer.concat([Buffer.alloc(k), s, Buffer.alloc(2)]).toString("base64");
    const first = Math.ceil((8 * k) / 6), last = Math.floor((8 * k + 8 * s.length) / 6);
    const core = std.slice(first, last);
    out.push(core, core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  for (const f of [...out]) out.push(JSON.stringify(f).slice(1, -1));
  return [...new Set(out)];
}

function percent(buf, upper) {
  let out = "";
  for (const c of buf) {
    const ch = String.fromCharCode(c);
    if (/[A-Za-z0-9\-._~]/.test(ch)) out += ch;
    else {
      const h = c.toString(16).padStart(2, "0");
      out += "%" + (upper ? h.toUpperCase() : h);
    }
  }
  return out;
}

// Every (secret, form) found in `bytes` (a Buffer or string).
export function findLeaks(bytes, secrets) {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const hits = [];
  for (const [name, value] of Object.entries(secrets)) {
    for (const f of searchForms(value)) {
      if (buf.includes(Buffer.from(f, "utf8"))) hits.push(`${name}: ${JSON.stringify(f)}`);
    }
  }
  return hits;
}
