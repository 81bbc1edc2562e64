// A private API for the egress tests: HTTPS and plain HTTP on one loopback address. Every
// request is appended to a log file (method, host, authorization, body) and answered with an
// echo of the same — so a credential the tool sends comes back in its output, for the
// redactor to catch. Ports are chosen by the kernel; prints "listening HTTPS_PORT HTTP_PORT".
//   node upstream_server.mjs HOST CERT KEY LOG
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [, , host, cert, key, log] = process.argv;
const handler = (req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const line = JSON.stringify({ method: req.method, url: req.url, host: req.headers.host,
                                  authorization: req.headers.authorization ?? null, body });
    fs.appendFileSync(log, line + '\n');
    res.end(`echo ${line}\n`);
  });
};
const secure = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler);
const plain = http.createServer(handler);
secure.listen(0, host, () => plain.listen(0, host, () => {
  console.log(`listening ${secure.address().port} ${plain.address().port}`);
}));
