// Airlock console: plain JavaScript, no build step, no dependencies. Every page reads and
// changes airlockd through its /v1 API; every value from the server is put on the page as text
// (textContent, never HTML), so a name, a description or an error message cannot become markup.

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
let csrf = null;   // the session's CSRF token: sent with every change
let refresh = null;  // the current page's live update, every 2 s
let refreshNow = () => {};  // runs it at once (after a change)
const REFRESH_MS = 2000;

// ---- helpers ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "value") e.value = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, code, message, line) {
    super(message);
    this.status = status;
    this.code = code;
    this.line = line;
  }
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    const raw = typeof body === "string";
    options.headers["Content-Type"] = raw ? "text/plain" : "application/json";
    options.body = raw ? body : JSON.stringify(body);
  }
  if (method !== "GET") options.headers["X-CSRF-Token"] = csrf ?? "";
  const r = await fetch(path, options);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401 && !path.startsWith("/console/")) {
    csrf = null;
    showSignIn("Your session has ended. Sign in again.");
    throw new ApiError(401, "unauthorized", "signed out");
  }
  if (!r.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(r.status, e.code ?? `http_${r.status}`, e.message ?? String(text), e.line);
  }
  return data;
}

function badge(text) { return el("span", { class: `badge ${text}` }, text); }
function when(t) { return t ? t.replace("T", " ").replace(/\.\d+Z$/, " UTC") : "never"; }
function errorBox(id) { return el("div", { id, class: "error", hidden: true }); }
function showError(box, err) {
  box.hidden = false;
  box.textContent = err instanceof ApiError ? `${err.message}` : String(err);
}
function live(fn) {
  stopLive();
  const tick = async () => {
    try { await fn(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) console.warn(e); }
  };
  tick();
  refreshNow = tick;
  refresh = setInterval(tick, REFRESH_MS);
}
function stopLive() { if (refresh) clearInterval(refresh); refresh = null; }

// ---- sign-in ------------------------------------------------------------------------------

function showSignIn(message) {
  stopLive();
  nav.hidden = true;
  signOutButton.hidden = true;
  const token = el("input", { type: "password", id: "admin-token", autocomplete: "off",
                              placeholder: "alk_…" });
  const err = errorBox("signin-error");
  const form = el("form", { class: "card signin", id: "signin" },
    el("h1", {}, "Sign in to Airlock"),
    message ? el("p", { class: "notice" }, message) : null,
    el("label", { for: "admin-token" }, "Admin token"),
    token,
    el("p", { class: "muted small" },
       "The token is in airlockd's state directory, in admin.token (mode 0600)."),
    err,
    el("div", { class: "actions" }, el("button", { type: "submit", id: "signin-button" }, "Sign in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/console/session", { token: token.value.trim() });
      csrf = r.csrf;
      token.value = "";
      start();
    } catch (e) { showError(err, e); }
  });
  main.replaceChildren(form);
}

signOutButton.addEventListener("click", async () => {
  try { await api("DELETE", "/console/session"); } catch { /* signed out either way */ }
  csrf = null;
  showSignIn("Signed out.");
});

// ---- tunnels and sandboxes ----------------------------------------------------------------

const EXAMPLE = {
  sandbox: (name) => `sandbox:
  type: self-hosted
  name: ${name || "my-sandbox"}
  image: host
  resources:
    cpu: "1"
    memory: "1Gi"
  network:
    allowed_outbound: []
  max_sessions: 4
`,
  tunnel: () => `servers:
  - name: my-server
    url: http://127.0.0.1:8080/mcp
`,
};

function resourcePage(kind) {
  const plural = kind === "sandbox" ? "sandboxes" : "tunnels";
  const title = kind === "sandbox" ? "Sandboxes" : "Tunnels";
  const panel = el("div", { id: "create-panel" });
  const rows = el("tbody");
  const heads = kind === "sandbox"
    ? ["Name", "Status", "Last seen", "Version", "Image", "Resources", "Sessions", ""]
    : ["Name", "Status", "Last seen", "Version", "Servers", ""];
  const notice = el("div", { id: "row-notice", hidden: true, class: "card" });
  main.replaceChildren(
    el("h1", {}, title, el("span", { class: "spacer" }),
       el("button", { id: "create", onclick: () => showCreate(kind, panel) },
          kind === "sandbox" ? "Create New Sandbox" : "Create New Tunnel")),
    panel, notice,
    el("table", { id: `${plural}-table` }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))), rows));
  live(async () => {
    const list = await api("GET", `/v1/${plural}`);
    rows.replaceChildren(...(list.length ? list.map((r) => resourceRow(kind, r, notice))
      : [el("tr", {}, el("td", { colspan: heads.length, class: "muted" },
                         `No ${plural} yet. ${kind === "sandbox" ? "Create New Sandbox" : "Create New Tunnel"} to add one.`))]));
  });
}

function resourceRow(kind, r, notice) {
  const plural = kind === "sandbox" ? "sandboxes" : "tunnels";
  const act = (label, cls, fn) => el("button", { class: cls, "data-action": label.toLowerCase() }, label);
  const rotate = act("Rotate", "quiet");
  const revoke = act("Revoke", "quiet");
  const del = act("Delete", "danger");
  rotate.addEventListener("click", async () => {
    try {
      const t = await api("POST", `/v1/${plural}/${encodeURIComponent(r.name)}/tokens`);
      notice.hidden = false;
      notice.replaceChildren(el("h2", {}, `New token for ${kind} ${r.name} (shown once)`),
                             el("pre", { id: "rotated-token" }, t.token),
                             el("p", { class: "muted small" }, "Start the connector with it, then revoke the old one."));
    } catch (e) { notice.hidden = false; showError(notice, e); }
  });
  revoke.addEventListener("click", async () => {
    if (!confirm(`Revoke every token of ${kind} ${r.name}? Its connectors are disconnected.`)) return;
    try {
      const x = await api("POST", `/v1/${plural}/${encodeURIComponent(r.name)}/revoke`);
      notice.hidden = false;
      notice.replaceChildren(el("p", {}, `Revoked ${x.revoked_tokens} token(s) of ${r.name}; closed ${x.closed_links} link(s).`));
    } catch (e) { notice.hidden = false; showError(notice, e); }
  });
  del.addEventListener("click", async () => {
    if (!confirm(`Delete ${kind} ${r.name}? Its tokens are revoked and it is forgotten.`)) return;
    try { await api("DELETE", `/v1/${plural}/${encodeURIComponent(r.name)}`); }
    catch (e) { notice.hidden = false; showError(notice, e); }
  });
  const name = el("td", {}, el("strong", {}, r.name),
                  r.description ? el("div", { class: "muted small" }, r.description) : null);
  const common = [name, el("td", { class: "status" }, badge(r.status)),
                  el("td", { class: "small" }, when(r.last_seen)),
                  el("td", { class: "small mono" }, r.version || "—")];
  const actions = el("td", {}, rotate, revoke, del);
  if (kind === "sandbox") {
    const res = r.resources ? `cpu ${r.resources.cpu || "∞"} · memory ${r.resources.memory || "∞"} · pids ${r.resources.pids ?? "—"}` : "—";
    return el("tr", { "data-name": r.name }, ...common,
              el("td", { class: "small mono" }, r.image ? r.image + (r.image_digest ? ` @ ${r.image_digest.slice(0, 19)}…` : "") : "—"),
              el("td", { class: "small" }, res),
              el("td", { class: "small" }, r.status === "Active" ? `${r.sessions_in_use ?? 0} / ${r.max_sessions ?? 0}` : "—"),
              actions);
  }
  const servers = (r.servers || []).map((s) => el("div", { class: "small" }, s.name, " ", badge(s.status === "ok" ? "available" : "unavailable"),
                                                 s.error ? el("span", { class: "muted" }, ` ${s.error}`) : null));
  return el("tr", { "data-name": r.name }, ...common,
            el("td", {}, servers.length ? servers : el("span", { class: "muted small" }, "—")), actions);
}

function yamlLines(text, bad) {
  return el("pre", { class: "yaml-lines", id: "config-lines" },
    text.split("\n").map((l, i) => el("span", { class: i + 1 === bad ? "bad-line" : null },
                                       `${String(i + 1).padStart(3)}  ${l}\n`)));
}

function showCreate(kind, panel) {
  const name = el("input", { type: "text", id: "new-name", placeholder: kind === "sandbox" ? "my-sandbox" : "my-tunnel" });
  const config = el("textarea", { id: "new-config", spellcheck: "false" });
  config.value = EXAMPLE[kind]("");
  const err = errorBox("create-error");
  const lines = el("div", { id: "config-error-lines" });
  const result = el("div", { id: "created" });
  const file = kind === "sandbox" ? "sandbox.yaml" : "tunnel.yaml";
  const create = el("button", { id: "create-submit" }, "Create");
  const cancel = el("button", { class: "quiet", onclick: () => panel.replaceChildren() }, "Cancel");
  create.addEventListener("click", async () => {
    err.hidden = true;
    lines.replaceChildren();
    create.disabled = true;
    try {
      if (kind === "sandbox" || config.value.trim()) {
        try { await api("POST", `/v1/console/check-${kind}-config`, config.value); }
        catch (e) {
          if (e instanceof ApiError && e.line) lines.replaceChildren(yamlLines(config.value, e.line));
          throw e;
        }
      }
      const plural = kind === "sandbox" ? "sandboxes" : "tunnels";
      const made = await api("POST", `/v1/${plural}`, { name: name.value.trim() });
      const endpoint = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/connect`;
      const deploy = await api("POST", "/v1/console/deployment",
                               { kind, name: made.name, token: made.token, config: config.value, endpoint });
      panel.replaceChildren(el("div", { class: "card", id: "created" },
        el("h2", {}, `Created ${kind} ${made.name}`),
        el("p", { class: "notice" }, "Its token is shown only this once. Keep it in your secret store."),
        el("label", {}, "Token"), el("pre", { id: "new-token" }, made.token),
        el("label", {}, `Run it on a machine in your network (with this ${file} beside it)`),
        el("pre", { id: "deploy-command" }, deploy.command),
        el("label", {}, `Or on Kubernetes: deploy/kubernetes/${kind === "sandbox" ? "sandbox" : "mcp-tunnel"}-deployment.yaml, filled in`),
        el("p", { class: "muted small" }, "Replace what is still marked REPLACE (your credentials), then kubectl apply -n airlock -f it."),
        el("pre", { id: "deploy-manifest" }, deploy.kubernetes || ""),
        el("p", { class: "muted small" }, `It shows as Active here as soon as it connects.`)));
      refreshNow();
    } catch (e) {
      showError(err, e);
    } finally {
      create.disabled = false;
    }
  });
  panel.replaceChildren(el("div", { class: "card", id: "create-form" },
    el("h2", {}, kind === "sandbox" ? "Create New Sandbox" : "Create New Tunnel"),
    el("label", { for: "new-name" }, "Name"), name,
    el("label", {}, "Type"),
    el("div", { class: "radio" },
       el("label", {}, el("input", { type: "radio", name: "type", checked: true, value: "self-hosted" }), "Self-hosted")),
    el("label", { for: "new-config" }, kind === "sandbox" ? "sandbox.yaml (the agent checks it the same way)"
                                                          : "tunnel.yaml (optional; your private MCP servers)"),
    config, err, lines,
    el("div", { class: "actions" }, create, cancel), result));
  name.focus();
}

// ---- tools --------------------------------------------------------------------------------

function toolsPage() {
  const rows = el("tbody");
  const yaml = el("textarea", { id: "bindings-yaml", spellcheck: "false" });
  const err = errorBox("bindings-error");
  const ok = el("p", { id: "bindings-ok", class: "notice", hidden: true });
  const apply = el("button", { id: "apply-bindings" }, "Apply");
  apply.addEventListener("click", async () => {
    err.hidden = true; ok.hidden = true;
    try {
      const r = await api("PUT", "/v1/tools", yaml.value);
      ok.hidden = false;
      ok.textContent = `Applied ${r.bindings.length} binding(s).`;
    } catch (e) { showError(err, e); }
  });
  main.replaceChildren(
    el("h1", {}, "Tools"),
    el("p", { class: "muted" }, "Bindings expose a tunnel's private servers or a sandbox's toolset to agents."),
    el("table", { id: "tools-table" }, el("thead", {}, el("tr", {}, ["Binding", "Connector", "Status", "Tools"].map((h) => el("th", {}, h)))), rows),
    el("h2", {}, "Apply bindings (tools.yaml)"),
    el("div", { class: "card" }, yaml, err, ok, el("div", { class: "actions" }, apply)));
  // The text area starts as the bindings in force, unless the operator has begun typing.
  let first = true;
  yaml.addEventListener("input", () => { first = false; });
  live(async () => {
    const d = await api("GET", "/v1/tools");
    if (first) {
      yaml.value = "tools:\n" + d.bindings.map((b) => {
        const spec = { ...b }; delete spec.tools; delete spec.status; delete spec.reason;
        return "  - " + JSON.stringify(spec);
      }).join("\n") + (d.bindings.length ? "\n" : "  []\n");
      first = false;
    }
    rows.replaceChildren(...d.bindings.map((b) => el("tr", { "data-name": b.name },
      el("td", {}, el("strong", {}, b.name)),
      el("td", { class: "small mono" }, b.sandbox ? `sandbox/${b.sandbox}` : `tunnel/${b.mcp_tunnel}${b.server ? " · " + b.server : ""}`),
      el("td", {}, badge(b.status), b.reason ? el("div", { class: "muted small" }, b.reason) : null),
      el("td", {}, b.tools.length ? b.tools.map((t) => el("div", { class: "small tool" }, el("span", { class: "mono" }, t.name),
                                                    t.description ? el("span", { class: "muted" }, ` — ${t.description}`) : null))
                                  : el("span", { class: "muted small" }, "none now")))));
  });
}

// ---- agents -------------------------------------------------------------------------------

function agentsPage() {
  const rows = el("tbody");
  const name = el("input", { type: "text", id: "agent-name", placeholder: "agent name" });
  const tools = el("input", { type: "text", id: "agent-tools", placeholder: "crm_*, fetch-sales-data or *" });
  const err = errorBox("agent-error");
  const shown = el("div", { id: "agent-key" });
  const showKey = (title, key) => shown.replaceChildren(el("div", { class: "card" },
    el("h2", {}, title), el("p", { class: "notice" }, "The key is shown only this once."),
    el("pre", { id: "new-key" }, key),
    el("p", { class: "muted small" }, `Agents connect to ${location.origin}/mcp with Authorization: Bearer <key>.`)));
  const create = el("button", { id: "agent-create" }, "Create agent key");
  create.addEventListener("click", async () => {
    err.hidden = true;
    try {
      const globs = tools.value.split(",").map((s) => s.trim()).filter(Boolean);
      const r = await api("POST", "/v1/agents", { name: name.value.trim(), tools: globs });
      showKey(`Key for agent ${r.name}`, r.key);
    } catch (e) { showError(err, e); }
  });
  main.replaceChildren(el("h1", {}, "Agents"),
    el("div", { class: "card" }, el("div", { class: "row" },
      el("div", {}, el("label", { for: "agent-name" }, "Name"), name),
      el("div", {}, el("label", { for: "agent-tools" }, "Tools it may use (globs)"), tools),
      el("div", { style: null }, create)), err),
    shown,
    el("table", { id: "agents-table" }, el("thead", {}, el("tr", {}, ["Agent", "Tools", "Created", ""].map((h) => el("th", {}, h)))), rows));
  live(async () => {
    const d = await api("GET", "/v1/agents");
    rows.replaceChildren(...d.agents.map((a) => {
      const rotate = el("button", { class: "quiet", "data-action": "rotate" }, "Rotate");
      const revoke = el("button", { class: "danger", "data-action": "revoke" }, "Revoke");
      rotate.addEventListener("click", async () => {
        try { const r = await api("POST", `/v1/agents/${encodeURIComponent(a.name)}/keys`); showKey(`New key for agent ${a.name}`, r.key); }
        catch (e) { showError(err, e); }
      });
      revoke.addEventListener("click", async () => {
        if (!confirm(`Revoke every key of agent ${a.name}?`)) return;
        try { const r = await api("POST", `/v1/agents/${encodeURIComponent(a.name)}/revoke`);
              shown.replaceChildren(el("p", { class: "notice" }, `Revoked ${r.revoked_keys} key(s) of ${a.name}.`)); }
        catch (e) { showError(err, e); }
      });
      return el("tr", { "data-name": a.name }, el("td", {}, el("strong", {}, a.name)),
                el("td", { class: "mono small" }, a.tools.join(", ")), el("td", { class: "small" }, when(a.created_at)),
                el("td", {}, rotate, revoke));
    }));
  });
}

// ---- audit --------------------------------------------------------------------------------

function auditPage() {
  const rows = el("tbody");
  const field = (id, placeholder) => el("input", { type: "text", id, placeholder });
  const type = el("select", { id: "audit-type" }, ["", "call", "server_request", "admin", "auth_failure",
                 "tool_refused", "secret_redacted", "gap"].map((t) => el("option", { value: t }, t || "any type")));
  const actor = field("audit-actor", "agent or admin");
  const target = field("audit-target", "tool, prompt or URI");
  const outcome = field("audit-outcome", "ok, error, refused…");
  const verdict = el("div", { id: "audit-verdict" });
  const verify = el("button", { id: "audit-verify", class: "quiet" }, "Verify chain");
  verify.addEventListener("click", async () => {
    try {
      const v = await api("GET", "/v1/audit/verify");
      verdict.replaceChildren(el("p", { class: v.intact ? "notice" : "error" }, v.intact
        ? `Intact: ${v.records} record(s); head ${v.head_seq} ${v.head_hash.slice(0, 16)}…`
        : `Broken at record ${v.bad_seq} (${v.problem}): ${v.message}`));
    } catch (e) { verdict.replaceChildren(el("p", { class: "error" }, e.message)); }
  });
  const line = (r) => el("tr", { "data-seq": r.seq },
    el("td", { class: "small mono" }, String(r.seq)), el("td", { class: "small" }, when(r.at)),
    el("td", { class: "small" }, r.type), el("td", {}, badge(r.outcome || "—")),
    el("td", { class: "small" }, r.actor || "—"),
    el("td", { class: "small mono" }, [r.method, r.target].filter(Boolean).join(" ")),
    el("td", { class: "small mono" }, r.connector ? `${r.connector}${r.server ? "/" + r.server : ""}` : "—"),
    el("td", { class: "small" }, r.type === "call" ? `${r.duration_ms} ms · ${r.bytes_in}/${r.bytes_out} B` : ""),
    el("td", { class: "small" }, [r.error_class, r.redactions ? `redacted ${r.redactions}` : ""].filter(Boolean).join(" · ")));
  // One loop both loads and follows, so that no two requests race to fill the table: the first
  // tick (and any after a filter changed) loads the newest records; later ticks add what was
  // written since, on top.
  let newest = null;
  const query = () => {
    const q = new URLSearchParams();
    if (type.value) q.set("type", type.value);
    for (const [k, input] of [["actor", actor], ["target", target], ["outcome", outcome]]) if (input.value.trim()) q.set(k, input.value.trim());
    return q;
  };
  for (const input of [type, actor, target, outcome]) input.addEventListener("change", () => { newest = null; });
  main.replaceChildren(el("h1", {}, "Audit", el("span", { class: "spacer" }), verify),
    el("p", { class: "muted" }, "Every call, admin change and refused authentication, newest first; each record carries the hash of the one before."),
    verdict,
    el("div", { class: "card row" }, type, actor, target, outcome),
    el("table", { id: "audit-table" }, el("thead", {}, el("tr", {}, ["#", "Time", "Type", "Outcome", "Actor", "What", "Via", "Cost", "Notes"].map((h) => el("th", {}, h)))), rows));
  live(async () => {
    const q = query();
    q.set("limit", "200");
    if (newest === null) {
      const d = await api("GET", `/v1/audit?${q}`);
      newest = d.records.length ? d.records[0].seq : d.head;
      rows.replaceChildren(...d.records.map(line));
      return;
    }
    q.set("after", String(newest));
    const d = await api("GET", `/v1/audit?${q}`);
    for (const r of d.records) {  // oldest first: each goes on top of the one before
      rows.prepend(line(r));
      newest = r.seq;
    }
  });
}

// ---- routing ------------------------------------------------------------------------------

const PAGES = { sandboxes: () => resourcePage("sandbox"), tunnels: () => resourcePage("tunnel"),
                tools: toolsPage, agents: agentsPage, audit: auditPage };

function route() {
  if (!csrf) return;
  const page = location.hash.replace(/^#\//, "") || "sandboxes";
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.getAttribute("href") === `#/${page}`);
  (PAGES[page] ?? PAGES.sandboxes)();
}

function start() {
  nav.hidden = false;
  signOutButton.hidden = false;
  route();
}

window.addEventListener("hashchange", route);

(async () => {
  try {
    const s = await api("GET", "/console/session");
    if (s && s.signed_in) { csrf = s.csrf; start(); return; }
  } catch { /* not signed in */ }
  showSignIn();
})();
