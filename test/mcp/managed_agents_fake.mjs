// A test double of Claude Managed Agents' Work and Sessions API, written from the documented
// protocol and the public SDK's worker: the work queue (poll with block_ms, answered empty as
// 204 or as 200 `null` in turn; items claimed by a poll but not acked within `reclaimMs` go back
// to the queue), ack, heartbeats with the `expected_last_heartbeat` precondition (412 with
// `heartbeat_precondition_failed` when it does not hold), stop, sessions, their paged events
// and their event stream (server-sent events), and the per-item sessions token carried in the
// work item's `secret`. It listens on loopback only. Tests drive it through its methods.
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const BETA = 'managed-agents-2026-04-01';

function id(prefix) {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

export class FakeManagedAgentsApi {
  constructor({ environmentId = id('env'), environmentKey = `ek-${randomBytes(16).toString('hex')}`,
                ttlSeconds = 6, reclaimMs = 1500 } = {}) {
    this.environmentId = environmentId;
    this.environmentKey = environmentKey;
    this.ttlSeconds = ttlSeconds;
    this.reclaimMs = reclaimMs;
    this.work = new Map();      // id -> item
    this.sessions = new Map();  // id -> { session, events, streams:Set }
    this.requests = [];         // every request: method, path, authorization, headers
    this.emptyAnswers = 0;      // empty polls answered, alternating 204 / 200 null
    this.waiters = new Set();   // pending polls
    this.refuseResults = 0;     // the next N result posts are answered 503
    this.tooLargeResults = 0;   // the next N result posts are answered 413
    this.failAcks = 0;          // the next N acks are answered 500
    this.failHeartbeatsOf = new Set();  // items whose heartbeats are all answered 503
    this.skills = new Map();    // skill id -> { name, versionId, archive }
    this.watchers = new Set();  // waitFor()s, checked again on every change
  }

  #changed() {
    for (const w of this.watchers) w();
  }

  // A skill whose content is `archive` (a zip or a tar): what a session's agent lists.
  addSkill(name, archive) {
    const skillId = id('skill');
    this.skills.set(skillId, { name, versionId: `${Date.now()}${Math.floor(Math.random() * 1000)}`, archive });
    return { type: 'custom', skill_id: skillId, version: 'latest' };
  }

  async start() {
    this.server = http.createServer((req, res) => this.#handle(req, res).catch((e) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: String(e) } }));
    }).finally(() => this.#changed()));
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  async close() {
    for (const s of this.sessions.values()) for (const res of s.streams) res.destroy();
    for (const w of this.waiters) w();
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(r));
  }

  // --- what tests do ------------------------------------------------------------------------

  createSession({ skills = [] } = {}) {
    const sid = id('sesn');
    this.sessions.set(sid, {
      session: { id: sid, type: 'session', status: 'idle', resources: [],
                 agent: { type: 'agent', id: id('agent'), skills, tools: [] },
                 environment_id: this.environmentId },
      events: [], streams: new Set(),
    });
    return sid;
  }

  // Queues a work item for the session; with `token`, its secret carries that sessions token.
  enqueue(sessionId, { token = null, type = 'session' } = {}) {
    const wid = id('work');
    const secret = token ?
      Buffer.from(JSON.stringify({ version: 1, sessions_token: token })).toString('base64url') : null;
    this.work.set(wid, {
      id: wid, type: 'work', environment_id: this.environmentId,
      data: type === 'session' ? { type: 'session', id: sessionId } : { type, id: id('hc') },
      secret, token, state: 'queued', created_at: new Date().toISOString(),
      acknowledged_at: null, claimedAt: 0, claimedBy: null, claims: [], lastHeartbeat: 'NO_HEARTBEAT',
      heartbeats: [], stops: [], leaseUntil: 0, metadata: {},
    });
    for (const w of this.waiters) w();
    return wid;
  }

  // Appends events (agent.tool_use, session.status_idle …) as the platform would.
  emit(sessionId, ...events) {
    const s = this.sessions.get(sessionId);
    const out = [];
    for (const e of events) {
      const ev = { id: e.id ?? id('sevt'), processed_at: new Date().toISOString(), ...e };
      s.events.push(ev);
      out.push(ev);
      if (ev.type === 'session.status_idle') s.session.status = 'idle';
      else if (ev.type === 'session.status_running') s.session.status = 'running';
      else if (ev.type === 'session.status_terminated') s.session.status = 'terminated';
      for (const res of s.streams) res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
    }
    this.#changed();
    return out;
  }

  toolUse(sessionId, name, input, extra = {}) {
    const [ev] = this.emit(sessionId, { type: 'agent.tool_use', name, input, ...extra });
    return ev.id;
  }

  customToolUse(sessionId, name, input) {
    const [ev] = this.emit(sessionId, { type: 'agent.custom_tool_use', name, input });
    return ev.id;
  }

  // The session waits on these calls (as it does at the end of a model turn that used tools).
  requireAction(sessionId, ids) {
    this.emit(sessionId, { type: 'session.status_idle', stop_reason: { type: 'requires_action', event_ids: ids } });
  }

  endTurn(sessionId) {
    this.emit(sessionId, { type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
  }

  results(sessionId) {
    return this.sessions.get(sessionId).events.filter(
      (e) => e.type === 'user.tool_result' || e.type === 'user.custom_tool_result');
  }

  resultFor(sessionId, callId) {
    return this.results(sessionId).filter((e) => (e.tool_use_id ?? e.custom_tool_use_id) === callId);
  }

  // Resolves with check()'s first truthy value: checked again whenever the double's state
  // changes (an event, a request handled), and every 100 ms for what changes elsewhere (a log).
  waitFor(what, check, timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const done = (f) => { this.watchers.delete(test); clearInterval(tick); clearTimeout(limit); f(); };
      const test = () => {
        let v;
        try { v = check(); } catch (e) { return done(() => reject(e)); }
        if (v) done(() => resolve(v));
      };
      const tick = setInterval(test, 100);
      const limit = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${what}`))), timeoutMs);
      this.watchers.add(test);
      test();
    });
  }

  // Closes the session's event streams (a dropped connection).
  dropStreams(sessionId) {
    const s = this.sessions.get(sessionId);
    for (const res of s.streams) res.destroy();
    s.streams.clear();
  }

  // Another worker took the lease: the next heartbeat's precondition fails.
  stealLease(workId) {
    const w = this.work.get(workId);
    w.lastHeartbeat = `stolen-${Date.now()}`;
    w.stolen = true;  // the other worker keeps it: never reclaimed
  }

  requestStop(workId) {
    this.work.get(workId).state = 'stopping';
  }

  // --- the API --------------------------------------------------------------------------------

  #error(res, status, type, message, details) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'error', error: { type, message, ...(details ? { details } : {}) } }));
  }

  #json(res, status, body) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body === null ? 'null' : JSON.stringify(body));
  }

  async #body(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : {};
  }

  // The credentials a request may use: the environment key, or for an item's and its session's
  // calls that item's sessions token.
  #authorized(req, item) {
    const auth = req.headers.authorization ?? '';
    if (auth === `Bearer ${this.environmentKey}`) return true;
    if (item?.token && auth === `Bearer ${item.token}`) return true;
    return false;
  }

  #itemOfSession(sessionId) {
    for (const w of this.work.values()) if (w.data.id === sessionId) return w;
    return undefined;
  }

  #reclaim() {
    const now = Date.now();
    for (const w of this.work.values()) {
      if (w.stolen) continue;
      const unacked = w.state === 'starting' && now - w.claimedAt > this.reclaimMs;
      const expired = w.state === 'active' && w.leaseUntil && now > w.leaseUntil;
      if (unacked || expired) {
        w.state = 'queued';
        w.claimedBy = null;
        w.lastHeartbeat = 'NO_HEARTBEAT';
      }
    }
  }

  #public(w) {
    const { token, claimedAt, claimedBy, claims, lastHeartbeat, heartbeats, stops, leaseUntil, stolen, ...rest } = w;
    return rest;
  }

  async #handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    this.requests.push({ method: req.method, path: p, query: url.search, authorization: req.headers.authorization,
                         apiKey: req.headers['x-api-key'], workerId: req.headers['anthropic-worker-id'],
                         beta: req.headers['anthropic-beta'], version: req.headers['anthropic-version'] });
    // The skills endpoints have a beta of their own; every other one needs Managed Agents'.
    const isSkills = p.startsWith('/v1/skills/');
    if (!isSkills && !(req.headers['anthropic-beta'] ?? '').split(',').map((s) => s.trim()).includes(BETA)) {
      return this.#error(res, 400, 'invalid_request_error', `anthropic-beta must include ${BETA}`);
    }
    let m;
    const env = `/v1/environments/${this.environmentId}/work`;
    if (p === `${env}/poll` && req.method === 'GET') {
      if (!this.#authorized(req)) return this.#error(res, 401, 'authentication_error', 'invalid environment key');
      const block = Math.min(Number(url.searchParams.get('block_ms') ?? 0), 5000);
      const until = Date.now() + block;
      for (;;) {
        this.#reclaim();
        const w = [...this.work.values()].find((x) => x.state === 'queued');
        if (w) {
          w.state = 'starting';
          w.claimedAt = Date.now();
          w.claimedBy = req.headers['anthropic-worker-id'] ?? null;
          w.claims.push(w.claimedBy);
          return this.#json(res, 200, this.#public(w));
        }
        const left = until - Date.now();
        if (left <= 0) break;
        await new Promise((r) => {
          const t = setTimeout(done, Math.min(left, 100));
          function done() { clearTimeout(t); r(); }
          this.waiters.add(done);
        });
      }
      if (this.emptyAnswers++ % 2 === 0) {
        res.writeHead(204);
        return res.end();
      }
      return this.#json(res, 200, null);
    }
    if ((m = p.match(new RegExp(`^${env}/([^/]+)(/ack|/heartbeat|/stop)?$`)))) {
      const w = this.work.get(m[1]);
      if (!w) return this.#error(res, 404, 'not_found_error', `no work item ${m[1]}`);
      if (!this.#authorized(req, w)) return this.#error(res, 401, 'authentication_error', 'invalid credential');
      const what = m[2] ?? '';
      if (what === '/ack' && req.method === 'POST' && this.failAcks > 0) {
        this.failAcks--;
        return this.#error(res, 500, 'api_error', 'internal error');
      }
      if (what === '/heartbeat' && req.method === 'POST' && this.failHeartbeatsOf.has(w.id)) {
        w.heartbeats.push({ at: Date.now(), failed: true });
        return this.#error(res, 503, 'overloaded_error', 'try again');
      }
      if (what === '/ack' && req.method === 'POST') {
        if (w.state !== 'starting') return this.#error(res, 409, 'conflict_error', `work is ${w.state}`);
        w.state = 'active';
        w.acknowledged_at = new Date().toISOString();
        return this.#json(res, 200, this.#public(w));
      }
      if (what === '/heartbeat' && req.method === 'POST') {
        const expected = url.searchParams.get('expected_last_heartbeat');
        w.heartbeats.push({ at: Date.now(), expected });
        if (expected !== w.lastHeartbeat) {
          return this.#error(res, 412, 'precondition_failed_error', 'the lease is held by another heartbeat',
                             { error_code: 'heartbeat_precondition_failed', current_state: w.state });
        }
        if (w.state === 'stopping' || w.state === 'stopped') {
          return this.#json(res, 200, { type: 'work_heartbeat', last_heartbeat: w.lastHeartbeat,
                                        lease_extended: false, state: w.state, ttl_seconds: this.ttlSeconds });
        }
        w.lastHeartbeat = `${new Date().toISOString()}#${w.heartbeats.length}`;
        w.leaseUntil = Date.now() + this.ttlSeconds * 1000;
        return this.#json(res, 200, { type: 'work_heartbeat', last_heartbeat: w.lastHeartbeat,
                                      lease_extended: true, state: w.state, ttl_seconds: this.ttlSeconds });
      }
      if (what === '/stop' && req.method === 'POST') {
        const body = await this.#body(req);
        w.stops.push({ at: Date.now(), force: body.force === true });
        if (w.state === 'stopped') return this.#error(res, 409, 'conflict_error', 'work already stopped');
        w.state = 'stopped';
        return this.#json(res, 200, this.#public(w));
      }
      if (what === '' && req.method === 'GET') return this.#json(res, 200, this.#public(w));
      return this.#error(res, 405, 'invalid_request_error', `${req.method} ${p}`);
    }
    if ((m = p.match(/^\/v1\/skills\/([^/]+)\/versions\/([^/]+)(\/content)?$/)) && req.method === 'GET') {
      const skill = this.skills.get(m[1]);
      const auth = req.headers.authorization ?? '';
      const ok = auth === `Bearer ${this.environmentKey}` ||
        [...this.work.values()].some((w) => w.token && auth === `Bearer ${w.token}`);
      if (!ok) return this.#error(res, 401, 'authentication_error', 'invalid credential');
      if (!skill) return this.#error(res, 404, 'not_found_error', `no skill ${m[1]}`);
      if (!m[3]) {
        if (m[2] !== 'latest' && m[2] !== skill.versionId) return this.#error(res, 404, 'not_found_error', `no version ${m[2]}`);
        return this.#json(res, 200, { type: 'skill_version', id: skill.versionId, skill_id: m[1], name: skill.name,
                                      version: skill.versionId, description: '', directory: skill.name });
      }
      if (m[2] !== skill.versionId) return this.#error(res, 404, 'not_found_error', `no version ${m[2]}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return res.end(skill.archive);
    }
    if ((m = p.match(/^\/v1\/sessions\/([^/]+)(\/events(\/stream)?)?$/))) {
      const s = this.sessions.get(m[1]);
      if (!s) return this.#error(res, 404, 'not_found_error', `no session ${m[1]}`);
      if (!this.#authorized(req, this.#itemOfSession(m[1]))) {
        return this.#error(res, 401, 'authentication_error', 'invalid credential');
      }
      if (!m[2] && req.method === 'GET') return this.#json(res, 200, s.session);
      if (m[3] && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(': connected\n\n');
        s.streams.add(res);
        res.on('close', () => s.streams.delete(res));
        return;
      }
      if (m[2] && req.method === 'GET') {
        const limit = Math.min(Number(url.searchParams.get('limit') ?? 100), 1000);
        const from = Number(url.searchParams.get('page') ?? 0);
        const types = url.searchParams.getAll('types[]');
        const all = types.length ? s.events.filter((e) => types.includes(e.type)) : s.events;
        // Small pages, so that paging is exercised: at most 3 events each.
        const size = Math.min(limit, 3);
        const data = all.slice(from, from + size);
        const next = from + size < all.length ? String(from + size) : null;
        return this.#json(res, 200, { data, next_page: next });
      }
      if (m[2] && req.method === 'POST') {
        const body = await this.#body(req);
        if (this.refuseResults > 0) {
          this.refuseResults--;
          return this.#error(res, 503, 'overloaded_error', 'try again');
        }
        if (this.tooLargeResults > 0) {
          this.tooLargeResults--;
          return this.#error(res, 413, 'request_too_large', 'the event is larger than the API takes');
        }
        if (!Array.isArray(body.events) || body.events.length === 0) {
          return this.#error(res, 400, 'invalid_request_error', 'events: an array is required');
        }
        for (const e of body.events) {
          const idKey = e.type === 'user.custom_tool_result' ? 'custom_tool_use_id' : 'tool_use_id';
          if (!['user.tool_result', 'user.custom_tool_result'].includes(e.type) || typeof e[idKey] !== 'string' ||
              typeof e.is_error !== 'boolean' || !Array.isArray(e.content) || e.content.length === 0) {
            return this.#error(res, 400, 'invalid_request_error', `malformed event: ${JSON.stringify(e).slice(0, 200)}`);
          }
          if (!s.events.some((x) => x.id === e[idKey])) {
            return this.#error(res, 400, 'invalid_request_error', `no tool use ${e[idKey]}`);
          }
        }
        const added = this.emit(m[1], ...body.events);
        return this.#json(res, 200, { data: added });
      }
    }
    return this.#error(res, 404, 'not_found_error', `${req.method} ${p}`);
  }
}
