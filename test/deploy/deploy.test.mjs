// The deployment files, checked against the build and the programs without a cluster, a
// container engine or systemd running (none does here):
//   - deploy/kubernetes/*.yaml parsed by `kubectl create --dry-run=client -o json` (its API
//     discovery answered by a server of this test on loopback), every field checked against the
//     Kubernetes API's types (k8s_fields.py), and the fields that matter checked one by one —
//     the embedded sandbox.yaml / tunnel.yaml pass the programs' own `check`, airlockd starts
//     with its airlockd.yaml, every flag exists, every file a flag names is mounted;
//   - deploy/systemd/*.service pass `systemd-analyze verify` without a warning, with the
//     programs installed by `cmake --install`; the sandbox agent's unit keeps what its sandboxes
//     need;
//   - the Dockerfile's packages provide every header, library and CMake file the programs are
//     built from and every shared library they load, and its COPY lines every source file.
// Needs kubectl, python3-kubernetes and systemd-analyze (scripts/setup installs them).
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { Checks, assert, waitFor } from "../mcp/lib/stack.mjs";
import YAML from "../mcp/node_modules/yaml/dist/index.js";

const SRC = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const BIN = process.env.AIRLOCK_BIN_DIR ?? path.join(SRC, "build");
const PROGRAMS = ["airlockd", "airlock", "mcp-tunnel", "sandbox-agent", "sandbox-agent-connected",
                  "sandbox-agent-init", "sandbox-agent-toolbox", "sandbox-agent-unpack"];
const checks = new Checks("deployment files");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "airlock-deploy-"));
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts });
// Exit status and both streams, without throwing.
const attempt = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
};
const version = /project\(airlock VERSION ([0-9.]+)/.exec(fs.readFileSync(path.join(SRC, "CMakeLists.txt"), "utf8"))[1];

// --- Kubernetes -----------------------------------------------------------------------------

// Just enough of an API server's discovery for kubectl to map the manifests' kinds.
function startDiscovery() {
  const core = ["ConfigMap", "Secret", "ServiceAccount", "Service", "PersistentVolumeClaim"];
  const list = (gv, kinds) => ({
    kind: "APIResourceList", groupVersion: gv,
    resources: kinds.map((kind) => ({ name: `${kind.toLowerCase()}s`, singularName: kind.toLowerCase(),
                                      namespaced: true, kind, verbs: ["create", "get", "list"] })),
  });
  const answers = {
    "/api": { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] },
    "/apis": { kind: "APIGroupList", apiVersion: "v1", groups: [{ name: "apps",
      versions: [{ groupVersion: "apps/v1", version: "v1" }],
      preferredVersion: { groupVersion: "apps/v1", version: "v1" } }] },
    "/api/v1": list("v1", core),
    "/apis/apps/v1": list("apps/v1", ["Deployment"]),
  };
  const server = http.createServer((req, res) => {
    const body = answers[req.url.split("?")[0]];
    res.writeHead(body ? 200 : 404, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body ?? { kind: "Status", code: 404 }));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// kubectl prints one JSON document per object.
function splitJson(text) {
  const out = [];
  let depth = 0, start = -1, inString = false, escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") { if (depth++ === 0) start = i; }
    else if (c === "}" && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  return out;
}

let kubeconfig;
async function parseManifest(file) {
  // Create, as a client-side dry run: what `kubectl apply` would send. (Not execFileSync: the
  // discovery server answers from this process's event loop.)
  const out = await new Promise((resolve, reject) => {
    execFile("kubectl", ["--kubeconfig", kubeconfig, "--request-timeout=10s", "create", "--dry-run=client",
                         "--validate=false", "-o", "json", "-f", path.join(SRC, "deploy/kubernetes", file)],
             { encoding: "utf8", maxBuffer: 64 << 20, timeout: 60000 },
             (err, stdout, stderr) => (err ? reject(new Error(`kubectl: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const objects = splitJson(out);
  const fields = attempt("/usr/bin/python3", [path.join(SRC, "test/deploy/k8s_fields.py")],
                         { input: JSON.stringify(objects) });
  assert(fields.status === 0, `${file}: fields that the Kubernetes API does not have:\n${fields.stdout}${fields.stderr}`);
  const find = (kind) => objects.filter((o) => o.kind === kind);
  const one = (kind) => {
    const all = find(kind);
    assert(all.length === 1, `${file}: one ${kind} expected, found ${all.length}`);
    return all[0];
  };
  return { objects, find, one };
}

// The container's flags as a map (--flag value), checked against the program's own --help.
function flagsOf(container, program, subcommand) {
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  assert(argv[0] === program && argv[1] === subcommand, `${container.name}: command ${JSON.stringify(argv.slice(0, 2))}, expected ${program} ${subcommand}`);
  return argvFlags(argv.slice(2), program, subcommand);
}
function argvFlags(args, program, subcommand) {
  const help = run(path.join(BIN, program), [subcommand, "--help"]);
  const flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    assert(flag.startsWith("--"), `${program} ${subcommand}: '${flag}' is not a flag`);
    assert(new RegExp(`\\s${flag}[\\s=,]`).test(help), `${program} ${subcommand} has no flag ${flag}`);
    flags.set(flag, args[i + 1]);
    i++;
  }
  return flags;
}

// Which volume (and key of its Secret or ConfigMap) holds the file at `file` in the container.
function fileSource(pod, container, file) {
  for (const m of container.volumeMounts ?? []) {
    if (!file.startsWith(m.mountPath + "/")) continue;
    const rel = file.slice(m.mountPath.length + 1);
    const v = pod.volumes.find((x) => x.name === m.name);
    assert(v, `volume ${m.name} is mounted but not defined`);
    const src = v.secret ?? v.configMap;
    if (!src) return { volume: v, rel };
    const items = src.items;
    const key = items ? items.find((it) => it.path === rel)?.key : rel;
    return { volume: v, key, name: src.secretName ?? src.name, kind: v.secret ? "Secret" : "ConfigMap" };
  }
  throw new Error(`${file} is on no volume of container ${container.name}`);
}
function dataOf(m, kind, name) {
  const obj = m.find(kind).find((o) => o.metadata.name === name);
  assert(obj, `${kind} ${name} is referenced but not in the file`);
  const data = { ...(obj.data ?? {}) };
  for (const [k, v] of Object.entries(obj.stringData ?? {})) data[k] = v;
  return data;
}
// The named file's contents, from the Secret or ConfigMap mounted there.
function mountedFile(m, pod, container, file) {
  const s = fileSource(pod, container, file);
  assert(s.kind, `${file} comes from volume ${s.volume.name}, which is no Secret or ConfigMap`);
  const data = dataOf(m, s.kind, s.name);
  assert(s.key && s.key in data, `${file}: ${s.kind} ${s.name} has no key ${s.key}`);
  return data[s.key];
}
function writable(pod, container, dir) {
  const mount = (container.volumeMounts ?? []).find((x) => x.mountPath === dir);
  assert(mount && !mount.readOnly, `${container.name}: ${dir} must be a writable volume (the root filesystem is read-only)`);
  const v = pod.volumes.find((x) => x.name === mount.name);
  assert(v.emptyDir || v.persistentVolumeClaim, `${dir} is on volume ${v.name}, which is not writable storage`);
}
// Every `file:` secret source in a connector's config names a key of the mounted Secret.
function secretFilesMounted(m, pod, container, yamlText) {
  const files = [...yamlText.matchAll(/from:\s*"?file:([^"\s]+)/g)].map((x) => x[1]);
  assert(files.length > 0, "the config names no secret file");
  for (const f of files) {
    const s = fileSource(pod, container, f);
    assert(s.kind === "Secret", `${f} must come from a Secret, not ${s.kind ?? s.volume.name}`);
    assert(s.key in dataOf(m, "Secret", s.name), `${f}: Secret ${s.name} has no key ${s.key}`);
  }
}
function checkProgramConfig(program, text, name) {
  const file = path.join(work, name);
  fs.writeFileSync(file, text);
  const r = attempt(path.join(BIN, program), ["check", "--config", file]);
  assert(r.status === 0, `${program} check refuses the ${name} of the manifest: ${r.stderr}${r.stdout}`);
}
// What both connectors' containers need: `PROGRAM start` dialing wss://…/v1/connect, the token
// from a Secret's key (never on the command line), no unverified TLS, the config (which passes
// the program's own check) and airlockd's CA from mounted keys, every secret file it names a key
// of a mounted Secret.
function connectorChecks(m, pod, c, program, configName) {
  const flags = flagsOf(c, program, "start");
  assert(/^wss:\/\/[^/]+\/v1\/connect$/.test(flags.get("--endpoint")), `--endpoint ${flags.get("--endpoint")}: wss://HOST/v1/connect expected`);
  assert(!flags.has("--token") && !flags.has("--insecure-skip-tls-verify"), "no token on the command line, no unverified TLS");
  const token = fileSource(pod, c, flags.get("--token-file"));
  assert(token.kind === "Secret" && token.key in dataOf(m, "Secret", token.name), "--token-file must be a key of the Secret");
  const config = mountedFile(m, pod, c, flags.get("--config"));
  checkProgramConfig(program, config, configName);
  secretFilesMounted(m, pod, c, config);
  mountedFile(m, pod, c, flags.get("--ca-file"));
  return { flags, config };
}
// A manifest with one Deployment of one container, and what every pod of ours must be.
async function parseDeployment(file) {
  const m = await parseManifest(file);
  for (const sa of m.find("ServiceAccount")) assert(sa.automountServiceAccountToken === false, `${file}: service account ${sa.metadata.name} mounts a token`);
  const dep = m.one("Deployment");
  const pod = dep.spec.template.spec;
  assert(pod.containers.length === 1, `${file}: one container expected`);
  const c = pod.containers[0];
  commonPodChecks(file, dep, pod, c);
  return { m, dep, pod, c };
}
function commonPodChecks(file, dep, pod, container) {
  assert(pod.automountServiceAccountToken === false, `${file}: the pod must not mount an API token`);
  const sa = dep.spec.template.spec.serviceAccountName;
  assert(sa, `${file}: no service account of its own`);
  assert(container.image === `airlock:${version}`, `${file}: image ${container.image}, expected airlock:${version} (the Dockerfile's build of this version)`);
  assert(container.securityContext?.readOnlyRootFilesystem === true, `${file}: the root filesystem should be read-only`);
  for (const key of ["hostNetwork", "hostPID", "hostIPC"]) assert(pod[key] !== true, `${file}: ${key} must not be set`);
}
function probesUse(container, addr) {
  for (const probe of ["readinessProbe", "livenessProbe"]) {
    const cmd = container[probe]?.exec?.command ?? [];
    assert(cmd[0] === "curl" && cmd.some((a) => a.startsWith(`http://${addr}/`)),
           `${container.name}: ${probe} must ask ${addr} (the loopback --metrics-addr), it runs ${JSON.stringify(cmd)}`);
  }
  assert(container.readinessProbe.exec.command.some((a) => a.endsWith("/ready")), "readiness must ask /ready");
}
function gracePeriodCovers(pod, flags) {
  const drain = Number((flags.get("--drain-timeout") ?? "30s").replace(/s$/, ""));
  assert(pod.terminationGracePeriodSeconds > drain,
         `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed the drain timeout (${drain} s)`);
}

const discovery = await startDiscovery();
kubeconfig = path.join(work, "kubeconfig");
fs.writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "http://127.0.0.1:${discovery.address().port}"}}]
users: [{name: test, user: {}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: airlock}}]
current-context: test
`);

await checks.check("deploy/kubernetes/sandbox-deployment.yaml: the connected sandbox agent", async () => {
  const file = "sandbox-deployment.yaml";
  const { m, dep, pod, c } = await parseDeployment(file);
  const { flags, config: sandboxYaml } = connectorChecks(m, pod, c, "sandbox-agent", "sandbox.yaml");
  // The image comes from a registry, with credentials from a Secret of the docker-registry type.
  const sandboxConf = YAML.parse(sandboxYaml);
  assert(/^[a-z0-9.-]+\.[a-z]+(:\d+)?\//.test(sandboxConf.sandbox.image), `image ${sandboxConf.sandbox.image} is not a registry reference`);
  const pullFrom = sandboxConf.secrets.find((x) => x.name === sandboxConf.sandbox.image_pull_secret)?.from?.replace(/^file:/, "");
  const pullSecret = fileSource(pod, c, pullFrom ?? "/nowhere");
  assert(m.find("Secret").find((x) => x.metadata.name === pullSecret.name)?.type === "kubernetes.io/dockerconfigjson",
         "image_pull_secret must be a kubernetes.io/dockerconfigjson Secret");
  assert(/^127\.0\.0\.1:\d+$/.test(flags.get("--metrics-addr")), "--metrics-addr must be loopback");
  probesUse(c, flags.get("--metrics-addr"));
  gracePeriodCovers(pod, flags);
  // What the sandboxes need of the container (the manifest's comments say why).
  const sc = c.securityContext;
  assert(sc.privileged === true, "the agent needs a privileged container (writable cgroups, unmasked /proc, namespaces)");
  assert(sc.runAsUser === 0, "the agent runs as root (uid/gid maps, cgroup files)");
  writable(pod, c, flags.get("--image-store"));
  writable(pod, c, "/tmp");
  assert(dep.spec.replicas >= 2, "several replicas of one sandbox");
  assert(dep.spec.strategy?.rollingUpdate?.maxUnavailable === 0, "a rollout keeps every replica until its successor is up");
});

await checks.check("deploy/kubernetes/sandbox-worker-deployment.yaml: the sandbox as a Managed Agents environment worker", async () => {
  const file = "sandbox-worker-deployment.yaml";
  const { m, dep, pod, c } = await parseDeployment(file);
  const flags = flagsOf(c, "sandbox-agent", "worker");
  assert(/^env_/.test(flags.get("--environment-id") ?? ""), "--environment-id names the environment");
  const key = fileSource(pod, c, flags.get("--environment-key-file"));
  assert(key.kind === "Secret" && key.key in dataOf(m, "Secret", key.name), "--environment-key-file must be a key of the Secret");
  assert(!JSON.stringify(c.env ?? []).includes("ANTHROPIC_ENVIRONMENT_KEY"), "the key comes from a file, not the environment");
  const config = mountedFile(m, pod, c, flags.get("--config"));
  checkProgramConfig("sandbox-agent", config, "worker-sandbox.yaml");
  secretFilesMounted(m, pod, c, config);
  assert(/^127\.0\.0\.1:\d+$/.test(flags.get("--metrics-addr")), "--metrics-addr must be loopback");
  probesUse(c, flags.get("--metrics-addr"));
  assert(pod.terminationGracePeriodSeconds > 30, "the grace period covers the worker's 30 s for ending its sessions");
  assert(c.securityContext.privileged === true && c.securityContext.runAsUser === 0, "sandboxes need a privileged root container");
  writable(pod, c, flags.get("--image-store"));
  writable(pod, c, "/tmp");
});

await checks.check("deploy/kubernetes/mcp-tunnel-deployment.yaml: the tunnel", async () => {
  const file = "mcp-tunnel-deployment.yaml";
  const { m, dep, pod, c } = await parseDeployment(file);
  const { flags } = connectorChecks(m, pod, c, "mcp-tunnel", "tunnel.yaml");
  probesUse(c, flags.get("--metrics-addr"));
  gracePeriodCovers(pod, flags);
  // The tunnel needs no privilege.
  assert(pod.securityContext?.runAsNonRoot === true, "runs as a user, not root");
  assert(c.securityContext.allowPrivilegeEscalation === false, "no privilege escalation");
  assert(JSON.stringify(c.securityContext.capabilities?.drop) === '["ALL"]', "every capability dropped");
  assert(pod.securityContext.seccompProfile?.type === "RuntimeDefault", "the runtime's seccomp profile");
});

await checks.check("deploy/kubernetes/airlockd.yaml: airlockd starts with its config; volume, port and probes line up", async () => {
  const file = "airlockd.yaml";
  const { m, dep, pod, c } = await parseDeployment(file);
  assert(dep.spec.replicas === 1 && dep.spec.strategy?.type === "Recreate", "one replica (SQLite), replaced by Recreate");
  assert(c.command[0] === "airlockd" && c.command[1] === "--config", "airlockd --config FILE");
  const configText = mountedFile(m, pod, c, c.command[2]);
  const stateDir = /state_dir:\s*(\S+)/.exec(configText)[1];
  const listenPort = Number(/listen:\s*"?[0-9.]+:(\d+)/.exec(configText)[1]);
  const state = (c.volumeMounts ?? []).find((v) => v.mountPath === stateDir);
  assert(state && !state.readOnly, `state_dir ${stateDir} must be a writable mount`);
  const claim = pod.volumes.find((v) => v.name === state.name)?.persistentVolumeClaim?.claimName;
  assert(claim && m.find("PersistentVolumeClaim").some((p) => p.metadata.name === claim), `state_dir must be on a PersistentVolumeClaim of the file (found ${claim})`);
  writable(pod, c, "/tmp");
  const port = c.ports.find((p) => p.containerPort === listenPort);
  assert(port, `no containerPort for airlockd's listen port ${listenPort}`);
  const svc = m.one("Service");
  assert(svc.spec.ports.some((p) => p.targetPort === port.name || p.targetPort === listenPort), "the Service targets airlockd's port");
  assert(JSON.stringify(svc.spec.selector) === JSON.stringify(dep.spec.template.metadata.labels ? { "app.kubernetes.io/name": dep.spec.template.metadata.labels["app.kubernetes.io/name"] } : {}), "the Service selects airlockd's pods");
  for (const [probe, want] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
    const g = c[probe]?.httpGet;
    assert(g && g.path === want && g.scheme === "HTTPS" && (g.port === port.name || g.port === listenPort), `${probe}: GET ${want} over HTTPS on airlockd's port`);
  }
  const ns = "airlock";
  const hostnames = YAML.parse(configText).tls?.hostnames ?? [];
  for (const name of [svc.metadata.name, `${svc.metadata.name}.${ns}.svc`, `${svc.metadata.name}.${ns}.svc.cluster.local`]) {
    assert(hostnames.includes(name), `tls.hostnames should name the Service as ${name} (it has ${hostnames})`);
  }
  assert(pod.securityContext?.runAsNonRoot === true && pod.securityContext.fsGroup, "runs as a user; the volume writable by its group");
  assert(JSON.stringify(c.securityContext.capabilities?.drop) === '["ALL"]', "every capability dropped");
  // Start airlockd with exactly this config — on loopback and a temporary state directory.
  const cfg = path.join(work, "airlockd.yaml");
  fs.writeFileSync(cfg, configText);
  const st = path.join(work, "airlockd-state");
  // setpriv: airlockd dies with this test however it ends.
  const proc = spawn("setpriv", ["--pdeathsig", "KILL", "--", path.join(BIN, "airlockd"), "--config", cfg, "--listen", "127.0.0.1:0", "--state-dir", st],
                     { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => { log += d; });
  try {
    const url = await waitFor("airlockd.url", () => fs.existsSync(`${st}/airlockd.url`) && fs.readFileSync(`${st}/airlockd.url`, "utf8").trim(), 15000);
    assert(url.startsWith("https://"), `airlockd serves ${url}, expected TLS`);
    for (const probe of ["/healthz", "/readyz"]) {
      const status = await new Promise((resolve, reject) => {
        // Verified as a client in the cluster would: airlockd's CA, the Service's name.
        https.get(`${url}${probe}`, { ca: fs.readFileSync(`${st}/ca.pem`), servername: svc.metadata.name }, (res) => { res.resume(); resolve(res.statusCode); }).on("error", reject);
      });
      assert(status === 200, `${probe} answered ${status}`);
    }
  } catch (e) {
    throw new Error(`${e.message}\nairlockd's log:\n${log}`);
  } finally {
    proc.kill("SIGTERM");
  }
});

discovery.close();

// --- systemd ----------------------------------------------------------------------------------

const prefix = path.join(work, "prefix");
await checks.check("cmake --install puts every program in one bin directory", async () => {
  run("cmake", ["--install", BIN, "--prefix", prefix]);
  for (const p of PROGRAMS) {
    const f = path.join(prefix, "bin", p);
    assert(fs.existsSync(f) && (fs.statSync(f).mode & 0o111), `${f} is missing or not executable`);
  }
  assert(run(path.join(prefix, "bin/sandbox-agent"), ["--version"]).includes(version), "sandbox-agent --version");
});

await checks.check("deploy/systemd: every unit passes systemd-analyze verify without a warning", async () => {
  const units = fs.readdirSync(path.join(SRC, "deploy/systemd")).filter((f) => f.endsWith(".service"));
  assert(units.length === 4, `four units expected, found ${units}`);
  const dir = path.join(work, "units");
  fs.mkdirSync(dir, { recursive: true });
  for (const u of units) {
    // The programs where this test installed them, instead of /usr/local.
    const text = fs.readFileSync(path.join(SRC, "deploy/systemd", u), "utf8").replace(/\\\n/g, " ");
    assert(text.includes("/usr/local/bin/"), `${u}: ExecStart should name /usr/local/bin (the Dockerfile's and cmake --install's prefix)`);
    fs.writeFileSync(path.join(dir, u), text.replaceAll("/usr/local/bin/", `${prefix}/bin/`));
    const r = attempt("systemd-analyze", ["verify", path.join(dir, u)]);
    assert(r.status === 0 && r.stderr.trim() === "" && r.stdout.trim() === "", `${u}:\n${r.stderr}${r.stdout}`);
    // Every flag of its ExecStart exists.
    const exec = /^ExecStart=(.*)$/m.exec(text)[1].trim().split(/\s+/);
    const program = path.basename(exec[0]);
    const sub = program === "airlockd" ? null : exec[1];
    if (sub) argvFlags(exec.slice(2).map((a) => a.replace(/^"(.*)"$/, "$1")), program, sub);
  }
});

await checks.check("deploy/systemd/sandbox-agent.service and sandbox-agent-worker.service keep what sandboxes need", async () => {
  const worker = fs.readFileSync(path.join(SRC, "deploy/systemd/sandbox-agent-worker.service"), "utf8");
  assert(/sandbox-agent worker /.test(worker) && /--environment-key-file %d\/environment-key/.test(worker) &&
         /^LoadCredential=environment-key:/m.test(worker), "the worker's key comes from the credentials directory");
  for (const text of [fs.readFileSync(path.join(SRC, "deploy/systemd/sandbox-agent.service"), "utf8"), worker]) {
  const set = (k) => new RegExp(`^${k}=`, "m").test(text);
  assert(/^Delegate=yes$/m.test(text), "Delegate=yes: the agent makes each session's cgroup");
  assert(/^KillMode=mixed$/m.test(text), "KillMode=mixed: SIGTERM to the agent alone, which drains");
  // Each of these breaks a step of every sandbox (the unit's comments say which).
  for (const k of ["RestrictNamespaces", "SystemCallFilter", "ProtectHostname", "ProtectKernelTunables",
                   "ProtectKernelLogs", "ProtectProc", "ProtectControlGroups", "MemoryDenyWriteExecute",
                   "RestrictSUIDSGID", "PrivateDevices", "DynamicUser", "CapabilityBoundingSet"]) {
    assert(!set(k), `${k} must not be set for the sandbox agent`);
  }
  }
  const tunnel = fs.readFileSync(path.join(SRC, "deploy/systemd/mcp-tunnel.service"), "utf8");
  assert(/^DynamicUser=yes$/m.test(tunnel) && /^CapabilityBoundingSet=$/m.test(tunnel), "the tunnel runs with no privilege");
  assert(/--token-file %d\/token/.test(tunnel) && /^LoadCredential=token:/m.test(tunnel), "the tunnel's token comes from the credentials directory");
});

// --- Dockerfile -------------------------------------------------------------------------------

function dockerStages() {
  const text = fs.readFileSync(path.join(SRC, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const stages = text.split(/^FROM /m).slice(1).map((s) => "FROM " + s);
  assert(stages.length === 2, `two stages expected, found ${stages.length}`);
  const packages = (s) => {
    const m = /apt-get install ([^&]*)/.exec(s);
    assert(m, "no apt-get install in a stage");
    return m[1].split(/\s+/).filter((w) => w && !w.startsWith("-"));
  };
  return stages.map((s) => ({ text: s, from: /^FROM (\S+)/.exec(s)[1], packages: packages(s) }));
}
// The packages `names` bring with them (Depends and Pre-Depends, recursively).
function closure(names) {
  const out = run("apt-cache", ["depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                                "--no-breaks", "--no-replaces", "--no-enhances", ...names]);
  return new Set(out.split("\n").filter((l) => l && !l.startsWith(" ")).map((l) => l.replace(/:amd64$/, "")));
}
// The Debian package of each file.
function packagesOf(files) {
  const out = attempt("dpkg", ["-S", ...files]).stdout;
  const owner = new Map();
  for (const line of out.split("\n")) {
    const m = /^([^:]+)(?::[a-z0-9]+)?: (.*)$/.exec(line);
    if (m) for (const f of m[2].split(", ")) owner.set(f, m[1]);
  }
  return owner;
}
function covered(files, pkgs, what) {
  // dpkg knows a file by the path its package installed (/lib may be /usr/lib).
  const resolvedBy = new Map(files.map((f) => [f, fs.realpathSync(f)]));
  const owner = packagesOf([...new Set([...files, ...resolvedBy.values()])]);
  const missing = new Map();
  for (const f of files) {
    let p = owner.get(f) ?? owner.get(resolvedBy.get(f)) ?? owner.get(resolvedBy.get(f).replace(/^\/usr\/lib\//, "/lib/"));
    if (!p) { missing.set(f, "no package"); continue; }
    if (!pkgs.has(p)) missing.set(f, p);
  }
  assert(missing.size === 0, `${what}:\n${[...missing].slice(0, 20).map(([f, p]) => `  ${f} (${p})`).join("\n")}`);
}

const programInputs = () => run("ninja", ["-C", BIN, "-t", "inputs", ...PROGRAMS]).split("\n").filter(Boolean);

await checks.check("Dockerfile: the build stage's packages provide every header, library and CMake file the programs use", async () => {
  const [build] = dockerStages();
  assert(build.from === "debian:12", `build stage FROM ${build.from}, expected debian:12`);
  for (const tool of ["g++", "cmake", "ninja-build", "pkg-config"]) assert(build.packages.includes(tool), `the build stage lacks ${tool}`);
  const pkgs = closure(build.packages);
  const inputs = programInputs();
  const objects = inputs.filter((f) => f.endsWith(".o"));
  const headers = run("ninja", ["-C", BIN, "-t", "deps", ...objects]).split("\n")
    .map((l) => l.trim()).filter((l) => l.startsWith("/usr/"));
  const libraries = inputs.filter((f) => f.startsWith("/usr/"));
  const cache = fs.readFileSync(path.join(BIN, "CMakeCache.txt"), "utf8");
  const cmakeFiles = [...cache.matchAll(/^(?:Boost|CLI11)_DIR:PATH=(.*)$/gm)].map((x) => `${x[1]}/${x[0].startsWith("Boost") ? "BoostConfig.cmake" : "CLI11Config.cmake"}`)
    .concat(["libseccomp", "libarchive"].map((p) => `/usr/lib/x86_64-linux-gnu/pkgconfig/${p}.pc`));
  assert(headers.length > 1000 && libraries.length >= 4 && cmakeFiles.length === 4, `too little found to check (${headers.length} headers, ${libraries.length} libraries, ${cmakeFiles})`);
  covered([...new Set([...headers, ...libraries, ...cmakeFiles])], pkgs, "files the build uses that the build stage's packages do not provide");
  assert(/-DAIRLOCK_TESTS=OFF/.test(build.text), "the image builds no tests (-DAIRLOCK_TESTS=OFF)");
  assert(/cmake --install/.test(build.text), "the programs are installed with cmake --install");
});

await checks.check("Dockerfile: the COPY lines bring every source file of the programs", async () => {
  const [build] = dockerStages();
  const copied = [...build.text.matchAll(/^COPY (\S+) /gm)].map((x) => x[1].replace(/\/$/, ""));
  // Files the build generates (the console's compiled-in assets) are not sources to copy.
  const generated = path.resolve(BIN) + "/";
  const sources = programInputs().filter((f) => f.startsWith(SRC + "/") && !f.startsWith(generated))
    .map((f) => path.relative(SRC, f))
    .concat(["CMakeLists.txt"]);
  // Headers of the project's own, from the deps log.
  const own = run("ninja", ["-C", BIN, "-t", "deps"]).split("\n").map((l) => l.trim())
    .filter((l) => l.startsWith(SRC + "/src/") || l.startsWith(SRC + "/include/")).map((l) => path.relative(SRC, l));
  const missing = [...new Set([...sources, ...own])].filter((f) => !copied.some((c) => f === c || f.startsWith(c + "/")));
  assert(missing.length === 0, `not copied into the build stage: ${missing.join(", ")}`);
  const ignore = fs.readFileSync(path.join(SRC, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const c of copied) assert(!ignore.some((i) => c === i.replace(/\/$/, "")), `.dockerignore leaves out ${c}, which the Dockerfile copies`);
});

await checks.check("Dockerfile: the runtime stage's packages provide every shared library the programs load", async () => {
  const [, runtime] = dockerStages();
  assert(runtime.from === "debian:12-slim", `runtime stage FROM ${runtime.from}`);
  const pkgs = closure(runtime.packages);
  const libs = [];
  for (const p of PROGRAMS) {
    const needed = [...run("readelf", ["-d", path.join(prefix, "bin", p)]).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((x) => x[1]);
    const ldd = attempt("ldd", [path.join(prefix, "bin", p)]).stdout;
    for (const n of needed) {
      const quoted = n.replace(/[.+]/g, "\\$&");
      // "libssl.so.3 => /lib/…/libssl.so.3 (0x…)", or the loader's own line, "/lib64/ld-linux….so.2 (0x…)".
      const m = new RegExp(`${quoted} => (\\S+)`).exec(ldd) ?? new RegExp(`^\\s*(/\\S*/${quoted}) `, "m").exec(ldd);
      assert(m, `${p} needs ${n}, which ldd does not find`);
      libs.push(m[1]);
    }
  }
  assert(libs.some((l) => l.includes("libssl")) && libs.some((l) => l.includes("libarchive")), "the programs' libraries were not found");
  covered([...new Set(libs)], pkgs, "libraries the programs load that the runtime stage does not install");
  assert(/COPY --from=build \/out\/usr\/local\/bin\/ \/usr\/local\/bin\//.test(runtime.text), "the programs are copied into /usr/local/bin");
  for (const tool of ["ca-certificates", "curl"]) assert(runtime.packages.includes(tool), `the runtime stage lacks ${tool} (TLS roots; the agents' probes)`);
});

await checks.check("cmake with -DAIRLOCK_TESTS=OFF configures the programs and no test", async () => {
  const dir = path.join(work, "cmake-notests");
  run("cmake", ["-S", SRC, "-B", dir, "-G", "Ninja", "-DAIRLOCK_TESTS=OFF", "-DAIRLOCK_BENCH=OFF"]);
  const targets = run("ninja", ["-C", dir, "-t", "targets", "all"]);
  for (const p of PROGRAMS) assert(new RegExp(`^${p}: `, "m").test(targets), `no target ${p}`);
  assert(!/^unit_tests: /m.test(targets) && !/GTest/.test(fs.readFileSync(path.join(dir, "CMakeCache.txt"), "utf8")), "tests configured anyway");
});

fs.rmSync(work, { recursive: true, force: true });
process.exitCode = checks.done();
