// The encoded forms of a secret that Airlock promises to keep out of everything a connector
// sends (docs/security.md): raw; hex lower and upper; base64 and base64url of the secret at
// byte offsets 0, 1 and 2, padded and unpadded; percent-encoded (upper and lower hex);
// JSON-escaped (with and without "\/"); and the raw value with any of its bytes percent-encoded
// or \uXXXX-escaped, in either hex case. Written independently of the C++ redactor.

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
  // Every byte percent-encoded, in each case; every other byte, hex case alternating; every
  // character \u-escaped; and a mix of the three.
  const hex2 = (c, up) => { const h = c.toString(16).padStart(2, "0"); return up ? h.toUpperCase() : h; };
  const u4 = (c, up) => "\\u" + hex2(0, up) + hex2(c, up);
  forms.push([...s].map((c) => "%" + hex2(c, true)).join(""),
             [...s].map((c) => "%" + hex2(c, false)).join(""),
             [...s].map((c, i) => i % 2 ? String.fromCharCode(c) : "%" + hex2(c, i % 4 === 0)).join(""));
  if ([...s].every((c) => c < 0x80)) {
    forms.push([...s].map((c, i) => u4(c, i % 2 === 0)).join(""),
               [...s].map((c, i) => [String.fromCharCode(c), "%" + hex2(c, true), u4(c, false)][i % 3]).join(""));
  }
  return [...new Set(forms)];
}

// `text` with every %XX and every \uXXXX (one or two backslashes) decoded, as far as that is
// ASCII: what a client could recover from any mix of escaped and literal bytes.
function decodeEscapes(text) {
  return text.replace(/%([0-9a-fA-F]{2})|\\{1,2}u00([0-7][0-9a-fA-F])/g,
                      (m, p, u) => String.fromCharCode(parseInt(p ?? u, 16)));
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

// Every (secret, form) found in `bytes` (a Buffer or string), and every raw value found once
// its escapes are decoded.
export function findLeaks(bytes, secrets) {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const decoded = decodeEscapes(buf.toString("latin1"));
  const hits = [];
  for (const [name, value] of Object.entries(secrets)) {
    for (const f of searchForms(value)) {
      if (buf.includes(Buffer.from(f, "utf8"))) hits.push(`${name}: ${JSON.stringify(f)}`);
    }
    if (decoded.includes(Buffer.from(value, "utf8").toString("latin1"))) {
      hits.push(`${name}: its raw value, once %XX / \\uXXXX escapes are decoded`);
    }
  }
  return hits;
}
