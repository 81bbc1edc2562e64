// A capture point on the connector link that the test controls: a WebSocket proxy between
// mcp-tunnel and airlockd that records every message the tunnel sends, decodes the link's
// frames (docs/protocol.md) and reassembles each stream's bytes, so that tests can search
// exactly what crossed the link — independently of the daemons' own code.
import { WebSocketServer, WebSocket } from "ws";
import { freePort } from "./stack.mjs";

const HELLO = 1, OPEN = 3, DATA = 4, RESET = 5, GOAWAY = 9;

export async function startLinkCapture(airlockdWsUrl) {
  const port = await freePort();
  const wss = new WebSocketServer({ host: "127.0.0.1", port, path: "/v1/connect" });
  const cap = {
    endpoint: `ws://127.0.0.1:${port}/v1/connect`,
    messages: [],           // every binary message from the tunnel, as sent
    streams: new Map(),     // "conn/stream" -> [Buffer…]
    control: [],            // stream metadata, RESET and GOAWAY reasons, the hello
    connections: 0,
    frames: 0,
    close: () => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }),
    // Everything in one place for searching.
    all() {
      const parts = [...this.messages, ...this.control];
      for (const chunks of this.streams.values()) parts.push(Buffer.concat(chunks));
      return parts;
    },
    bytes() { return this.messages.reduce((n, m) => n + m.length, 0); },
  };
  const record = (conn, msg) => {
    cap.messages.push(msg);
    for (let off = 0; off + 12 <= msg.length;) {
      const sid = msg.readUInt32BE(off + 4), len = msg.readUInt32BE(off + 8);
      const payload = msg.subarray(off + 12, off + 12 + len);
      const t = msg[off + 1];
      cap.frames++;
      const key = `${conn}/${sid}`;
      const push = (b) => { if (!cap.streams.has(key)) cap.streams.set(key, []); cap.streams.get(key).push(b); };
      if (t === OPEN) {
        const metaLen = payload.readUInt32BE(0);
        cap.control.push(payload.subarray(4, 4 + metaLen));
        push(payload.subarray(4 + metaLen));
      } else if (t === DATA) {
        push(payload);
      } else if (t === RESET) {
        cap.control.push(payload.subarray(4));
      } else if (t === GOAWAY) {
        cap.control.push(payload.subarray(8));
      } else if (t === HELLO) {
        cap.control.push(payload);
      }
      off += 12 + len;
    }
  };
  wss.on("connection", (client, req) => {
    const conn = cap.connections++;
    const headers = {};
    for (const h of ["authorization", "airlock-protocol", "user-agent"]) {
      if (req.headers[h]) headers[h] = req.headers[h];
    }
    const upstream = new WebSocket(airlockdWsUrl, { headers, maxPayload: 64 << 20 });
    const queued = [];
    upstream.on("open", () => { for (const m of queued) upstream.send(m); queued.length = 0; });
    upstream.on("message", (data, isBinary) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
    client.on("message", (data) => {
      record(conn, Buffer.from(data));
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data);
      else queued.push(data);
    });
    const closeBoth = () => { client.terminate(); upstream.terminate(); };
    upstream.on("close", closeBoth);
    upstream.on("error", closeBoth);
    upstream.on("unexpected-response", closeBoth);
    client.on("close", closeBoth);
    client.on("error", closeBoth);
  });
  await new Promise((r) => wss.once("listening", r));
  return cap;
}
