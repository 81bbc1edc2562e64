// A private API for the egress tests: HTTPS and plain HTTP on one loopback address. Every
// request is appended to a log file (method, host, authorization, body) and answered with an
// echo of the same — so a credential the tool sends comes back in its output, for the
// redactor to catch; the answer to "/hold…" comes 3 s late; "/arm-drop" see below. Ports are chosen by the kernel; prints "listening HTTPS_PORT HTTP_PORT".
//   node upstream_server.mjs HOST CERT KEY LOG
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [, , host, cert, key, log] = process.argv;
const handler = (req, res) => {
  // After "/arm-drop", the next request on the same connection finds it closed, unanswered
  // (as when a server closes an idle connection just as a request arrives).
  if (req.socket.dropNext) return req.socket.destroy();
  if (req.url.startsWith('/arm-drop')) req.socket.dropNext = true;
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    // How many Authorization fields arrived (Node keeps only the first in req.headers).
    const authorizations = req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization').length;
    const line = JSON.stringify({ method: req.method, url: req.url, host: req.headers.host,
                                  authorization: req.headers.authorization ?? null, body, authorizations });
    fs.appendFileSync(log, line + '\n');
    // "/hold…": the answer waits 3 s, so that a test can look at the client meanwhile.
    const delay = req.url.startsWith('/hold') ? 3000 : 0;
    // The Authorization it got goes back in a header as well as in the body.
    if (req.headers.authorization) res.setHeader('X-Seen-Authorization', req.headers.authorization);
    setTimeout(() => res.end(`echo ${line}\n`), delay);
  });
};
const secure = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler);
const plain = http.createServer(handler);
// Idle connections closed soon (Node's default is 5 s; it closes about a second after the
// timeout): a client — or a proxy — that reuses one later must notice.
secure.keepAliveTimeout = plain.keepAliveTimeout = 200;
secure.listen(0, host, () => plain.listen(0, host, () => {
  console.log(`listening ${secure.address().port} ${plain.address().port}`);
}));
