#include "controlplane/audit_chain.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/serializer.hpp>
#include <charconv>
#include <chrono>
#include <ctime>
#include <map>

#include "common/encoding.h"

namespace airlock::controlplane {
namespace json = boost::json;

namespace {

constexpr std::pair<AuditType, std::string_view> kTypes[] = {
    {AuditType::kCall, "call"},
    {AuditType::kServerRequest, "server_request"},
    {AuditType::kAdmin, "admin"},
    {AuditType::kAuthFailure, "auth_failure"},
    {AuditType::kToolRefused, "tool_refused"},
    {AuditType::kSecretRedacted, "secret_redacted"},
    {AuditType::kGap, "gap"},
};

void sha256(std::string_view data, Digest& digest) {
  unsigned int len = 0;
  // Fetched once: EVP_sha256() makes every EVP_Digest look the implementation up again, which
  // costs the audit writer more than the hash of a record does.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(digest.data()), &len, md,
             nullptr);
}

// Writes JSON text into a string: the audit writer's per-record work, so no json::object is
// built for it. Keys are the writer's own literals. Strings are escaped as Boost.JSON's
// serializer escapes them (the canonical form predates this writer, and a test holds the two
// equal over every byte): a quote and a backslash behind a backslash, \b \t \n \f \r, other
// control characters as \u00xx, everything else as it is. The detail goes through the
// serializer itself.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  JsonWriter& str(std::string_view k, std::string_view v) {
    key(k);
    out_ += '"';
    size_t run = 0;  // start of the bytes not yet copied
    for (size_t i = 0; i < v.size(); ++i) {
      const auto c = static_cast<unsigned char>(v[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(v.data() + run, i - run);
      run = i + 1;
      out_ += '\\';
      switch (c) {
        case '"':
          out_ += '"';
          break;
        case '\\':
          out_ += '\\';
          break;
        case '\b':
          out_ += 'b';
          break;
        case '\t':
          out_ += 't';
          break;
        case '\n':
          out_ += 'n';
          break;
        case '\f':
          out_ += 'f';
          break;
        case '\r':
          out_ += 'r';
          break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          const char u[] = {'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          out_.append(u, sizeof u);
        }
      }
    }
    out_.append(v.data() + run, v.size() - run);
    out_ += '"';
    return *this;
  }
  template <typename Int>
  JsonWriter& num(std::string_view k, Int v) {
    key(k);
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, end);
    return *this;
  }
  JsonWriter& obj(std::string_view k, const json::object& v) {
    key(k);
    if (v.empty()) {
      out_ += "{}";
      return *this;
    }
    json::serializer sr;
    sr.reset(&v);
    char buf[512];
    while (!sr.done()) {
      const auto part = sr.read(buf, sizeof buf);
      out_.append(part.data(), part.size());
    }
    return *this;
  }
  void close() { out_ += first_ ? "{}" : "}"; }

 private:
  // `k` is one of the writer's literals: nothing in it needs escaping.
  void key(std::string_view k) {
    out_ += first_ ? "{\"" : ",\"";
    first_ = false;
    out_.append(k);
    out_ += "\":";
  }
  std::string& out_;
  bool first_ = true;
};

std::string label(const AuditRecord& r) {
  std::string s = "record " + std::to_string(r.seq) + " (" + format_time_ms(r.at_ms) + ", " +
                  std::string(to_string(r.type));
  if (!r.target.empty()) s += " " + r.target;
  return s + ")";
}

}  // namespace

std::string_view to_string(AuditType t) {
  for (const auto& [type, name] : kTypes) {
    if (type == t) return name;
  }
  return "unknown";
}

std::optional<AuditType> parse_audit_type(std::string_view s) {
  for (const auto& [type, name] : kTypes) {
    if (name == s) return type;
  }
  return std::nullopt;
}

void canonical_form(const AuditRecord& r, std::string& out) {
  // The hashed fields, in the order they are hashed; numbers and strings are printed one way,
  // so the same record always gives the same bytes. The detail's own keys are hashed in the
  // order they were stored, which round-trips through the store and the export unchanged.
  out.clear();
  JsonWriter w(out);
  w.str("at", format_time_ms(r.at_ms))
      .str("type", to_string(r.type))
      .str("actor", r.actor)
      .str("session", r.session)
      .str("method", r.method)
      .str("target", r.target)
      .str("binding", r.binding)
      .str("connector", r.connector)
      .str("server", r.server)
      .str("remote", r.remote)
      .num("duration_ms", r.duration_ms)
      .num("bytes_in", r.bytes_in)
      .num("bytes_out", r.bytes_out)
      .str("outcome", r.outcome)
      .str("error_class", r.error_class)
      .num("redactions", r.redactions)
      .obj("detail", r.detail)
      .str("prev_hash", r.prev_hash)
      .close();
}

std::string canonical_form(const AuditRecord& r) {
  std::string out;
  canonical_form(r, out);
  return out;
}

std::string compute_hash(const AuditRecord& r) {
  Digest digest;
  sha256(canonical_form(r), digest);
  return to_hex(std::string_view(digest.data(), digest.size()));
}

void seal(AuditRecord& r, std::string_view prev_hash, std::string& canonical, Digest& digest) {
  r.prev_hash.assign(prev_hash);
  canonical_form(r, canonical);
  sha256(canonical, digest);
  r.hash = to_hex(std::string_view(digest.data(), digest.size()));
}

void seal(AuditRecord& r, std::string_view prev_hash, std::string& canonical) {
  Digest digest;
  seal(r, prev_hash, canonical, digest);
}

std::string seal(AuditRecord& r, std::string_view prev_hash) {
  std::string canonical;
  seal(r, prev_hash, canonical);
  return canonical;
}

std::string json_line(const AuditRecord& r, std::string_view canonical) {
  // canonical is {"at":…,"prev_hash":"…"}: seq goes first and hash last, as in to_json().
  std::string line = "{\"seq\":" + std::to_string(r.seq) + ",";
  line.append(canonical.substr(1, canonical.size() - 2));
  line += ",\"hash\":\"" + r.hash + "\"}";
  return line;
}

json::object to_json(const AuditRecord& r) {
  json::object o{{"seq", r.seq}};
  // The fields in their hashed order, from the one place that names them.
  const json::value fields = json::parse(canonical_form(r));
  for (const auto& kv : fields.as_object()) o.emplace(kv.key(), kv.value());
  o["hash"] = r.hash;
  return o;
}

namespace {

// The fields of to_json(); `positioned`: seq and hash are there too.
bool read_fields(const json::object& o, AuditRecord& out, std::string& error, bool positioned) {
  out = AuditRecord{};
  auto str = [&](std::string_view key, std::string& into) {
    auto* v = o.if_contains(key);
    if (!v || !v->is_string()) {
      error = std::string(key) + " must be a string";
      return false;
    }
    into = std::string(v->as_string());
    return true;
  };
  auto num = [&](std::string_view key, auto& into) {
    auto* v = o.if_contains(key);
    if (!v || !(v->is_int64() || v->is_uint64())) {
      error = std::string(key) + " must be an integer";
      return false;
    }
    into = v->is_int64() ? static_cast<std::decay_t<decltype(into)>>(v->as_int64())
                         : static_cast<std::decay_t<decltype(into)>>(v->as_uint64());
    return true;
  };
  std::string at, type;
  if (positioned && (!num("seq", out.seq) || !str("hash", out.hash))) return false;
  if (!str("at", at) || !str("type", type) || !str("actor", out.actor) ||
      !str("session", out.session) || !str("method", out.method) || !str("target", out.target) ||
      !str("binding", out.binding) || !str("connector", out.connector) ||
      !str("server", out.server) || !str("remote", out.remote) ||
      !num("duration_ms", out.duration_ms) || !num("bytes_in", out.bytes_in) ||
      !num("bytes_out", out.bytes_out) || !str("outcome", out.outcome) ||
      !str("error_class", out.error_class) || !num("redactions", out.redactions) ||
      !str("prev_hash", out.prev_hash)) {
    return false;
  }
  auto when = parse_time_ms(at);
  if (!when) {
    error = "at must be a time like 2026-11-27T14:08:21.123Z";
    return false;
  }
  out.at_ms = *when;
  auto t = parse_audit_type(type);
  if (!t) {
    error = "type '" + type + "' is not an audit record type";
    return false;
  }
  out.type = *t;
  auto* d = o.if_contains("detail");
  if (!d || !d->is_object()) {
    error = "detail must be an object";
    return false;
  }
  out.detail = d->as_object();
  return true;
}

}  // namespace

bool from_json(const json::object& o, AuditRecord& out, std::string& error) {
  return read_fields(o, out, error, true);
}

bool from_canonical(std::string_view text, AuditRecord& out, std::string& error) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    error = "not a JSON object";
    return false;
  }
  return read_fields(v.as_object(), out, error, false);
}

json::object to_json(const ChainVerdict& v) {
  json::object o{{"intact", v.intact},
                 {"records", v.records},
                 {"head_seq", v.head_seq},
                 {"head_hash", v.head_hash}};
  if (!v.intact) {
    o["bad_seq"] = v.bad_seq;
    o["problem"] = v.problem;
    o["message"] = v.message;
  }
  return o;
}

ChainVerdict verify_chain(const std::vector<AuditRecord>& records,
                          const std::optional<ChainHead>& expected_head, size_t context) {
  ChainVerdict v;
  context = std::min(context, records.size());
  v.records = records.size() - context;
  v.head_hash = std::string(kGenesisHash);
  auto broken = [&](const AuditRecord& r, std::string problem, std::string message) {
    v.intact = false;
    v.bad_seq = r.seq;
    v.problem = std::move(problem);
    v.message = std::move(message);
    return v;
  };
  // Where each stored hash sits, to tell a record that moved from one that was replaced.
  std::map<std::string, size_t> position_of;
  for (size_t i = 0; i < records.size(); ++i) position_of.emplace(records[i].hash, i);

  std::string prev = context ? records[context - 1].hash : std::string(kGenesisHash);
  for (size_t i = context; i < records.size(); ++i) {
    const AuditRecord& r = records[i];
    if (compute_hash(r) != r.hash) {
      return broken(r, "edited", label(r) + " was edited: its content no longer matches its hash");
    }
    if (r.prev_hash != prev) {
      const std::string before_prev = i >= 2 ? records[i - 2].hash : std::string(kGenesisHash);
      if (i >= 1 && r.prev_hash == before_prev) {
        return broken(records[i - 1], "inserted",
                      label(records[i - 1]) +
                          " was inserted: the record after it chains to "
                          "the one before it");
      }
      if (auto it = position_of.find(r.prev_hash); it != position_of.end() && it->second != i - 1) {
        return broken(r, "reordered",
                      label(r) + " is out of order: it follows " + label(records[it->second]) +
                          " in the chain");
      }
      const int64_t expected_seq = i == 0 ? 1 : records[i - 1].seq + 1;
      if (r.seq > expected_seq) {
        return broken(r, "removed",
                      "record" + std::string(r.seq - expected_seq > 1 ? "s " : " ") +
                          std::to_string(expected_seq) +
                          (r.seq - expected_seq > 1 ? "-" + std::to_string(r.seq - 1) : "") +
                          " before " + label(r) + " " +
                          (r.seq - expected_seq > 1 ? "were" : "was") + " removed");
      }
      if (i == 0) {
        return broken(r, "removed",
                      "the records before " + label(r) +
                          " were removed (it chains to a record "
                          "that is not in the log)");
      }
      return broken(records[i - 1], "edited",
                    label(records[i - 1]) +
                        " was edited and its hash recomputed: the record "
                        "after it chains to a different one");
    }
    prev = r.hash;
  }
  if (!records.empty()) {
    v.head_hash = records.back().hash;
    v.head_seq = records.back().seq;
  }
  if (expected_head && expected_head->seq > 0) {
    if (v.head_seq < expected_head->seq) {
      v.intact = false;
      v.bad_seq = v.head_seq + 1;
      v.problem = "truncated";
      v.message = "records " + std::to_string(v.head_seq + 1) + "-" +
                  std::to_string(expected_head->seq) +
                  " were removed from the end of the log (airlockd wrote up to record " +
                  std::to_string(expected_head->seq) + ")";
      return v;
    }
    for (const auto& r : records) {
      if (r.seq == expected_head->seq && r.hash != expected_head->hash) {
        return broken(r, "edited",
                      label(r) + " was replaced: airlockd wrote a record with another hash there");
      }
      if (r.seq > expected_head->seq) {
        return broken(r, "inserted",
                      label(r) + " was not written by airlockd (it wrote up to record " +
                          std::to_string(expected_head->seq) + ")");
      }
    }
  }
  return v;
}

std::string format_time_ms(int64_t unix_ms) {
  // Every audit record is written with its time: calendar arithmetic, no locale, no printf.
  if (unix_ms <= 0) return "";
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(unix_ms)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char out[25];
  auto put = [&](int at, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10) out[at + i] = static_cast<char>('0' + v % 10);
  };
  put(0, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  out[4] = '-';
  put(5, static_cast<unsigned>(ymd.month()), 2);
  out[7] = '-';
  put(8, static_cast<unsigned>(ymd.day()), 2);
  out[10] = 'T';
  put(11, static_cast<unsigned>(hms.hours().count()), 2);
  out[13] = ':';
  put(14, static_cast<unsigned>(hms.minutes().count()), 2);
  out[16] = ':';
  put(17, static_cast<unsigned>(hms.seconds().count()), 2);
  out[19] = '.';
  put(20, static_cast<unsigned>(hms.subseconds().count()), 3);
  out[23] = 'Z';
  return std::string(out, 24);
}

std::optional<int64_t> parse_time_ms(std::string_view s) {
  if (s.empty()) return 0;
  std::tm tm{};
  int ms = 0;
  char z = 0;
  const std::string text(s);
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
      z != 'Z' || text.size() != 24) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = timegm(&tm);
  if (secs < 0) return std::nullopt;
  return static_cast<int64_t>(secs) * 1000 + ms;
}

}  // namespace airlock::controlplane
