#include "common/redactor.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>
#include <stdexcept>

#include "common/encoding.h"

namespace airlock::redact {
namespace {

inline uint32_t load_gram(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t filter_hash(uint32_t gram, uint32_t shift) { return (gram * 0x9E3779B1u) >> shift; }

// The characters of base64(prefix of k bytes + value + anything) that depend on `value` alone:
// output character i covers bits [6i, 6i+6) and the value occupies bits [8k, 8k + 8n). This
// is the same whether the encoder pads or not.
std::string base64_core(std::string_view value, int k, bool url) {
  std::string buf(static_cast<size_t>(k), '\0');
  buf.append(value);
  buf.append(2, '\0');
  const std::string enc = base64(buf, url, /*pad=*/false);
  const size_t first = (8 * size_t(k) + 5) / 6;
  const size_t last = (8 * size_t(k) + 8 * value.size()) / 6;
  return enc.substr(first, last - first);
}

std::string percent(std::string_view value, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : value) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', digits[c >> 4], digits[c & 15]};
    }
  }
  return out;
}

std::string json_escaped(std::string_view value, bool escape_slash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '/':
        out += escape_slash ? "\\/" : "/";
        break;
      default:
        if (c < 0x20) {
          out += {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> encoded_forms(std::string_view value) {
  std::vector<std::string> forms{std::string(value), to_hex(value, false), to_hex(value, true)};
  for (int k = 0; k < 3; ++k) {
    forms.push_back(base64_core(value, k, /*url=*/false));
    forms.push_back(base64_core(value, k, /*url=*/true));
  }
  forms.push_back(percent(value, true));
  forms.push_back(percent(value, false));
  forms.push_back(json_escaped(value, false));
  forms.push_back(json_escaped(value, true));
  // Any of these as the content of a JSON string is JSON-escaped once more on the wire (a
  // tool returning JSON text, or an upstream that sends an escaped form as text).
  const size_t plain_forms = forms.size();
  for (size_t i = 0; i < plain_forms; ++i) forms.push_back(json_escaped(forms[i], false));
  std::vector<std::string> unique;
  for (auto& f : forms) {
    if (!f.empty() && std::find(unique.begin(), unique.end(), f) == unique.end()) {
      unique.push_back(std::move(f));
    }
  }
  return unique;
}

std::shared_ptr<const Patterns> Patterns::build(const std::vector<Secret>& secrets,
                                                size_t dense_budget_bytes) {
  std::shared_ptr<Patterns> p(new Patterns());
  p->nodes_.emplace_back();
  for (uint32_t s = 0; s < secrets.size(); ++s) {
    const Secret& secret = secrets[s];
    if (secret.name.empty()) throw std::invalid_argument("a secret has an empty name");
    if (secret.value.size() < kMinSecretSize) {
      throw std::invalid_argument("secret '" + secret.name + "' is " +
                                  std::to_string(secret.value.size()) + " bytes; at least " +
                                  std::to_string(kMinSecretSize) +
                                  " are needed, or ordinary text would be redacted");
    }
    p->names_.push_back(secret.name);
    for (const std::string& form : encoded_forms(secret.value)) {
      int32_t cur = 0;
      for (unsigned char c : form) {
        auto& next = p->nodes_[cur].next;
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{-1}));
        if (it != next.end() && it->first == c) {
          cur = it->second;
          continue;
        }
        const int32_t child = static_cast<int32_t>(p->nodes_.size());
        next.insert(it, {c, child});  // `next` stays valid: nodes_ grows below
        p->nodes_.emplace_back();
        cur = child;
      }
      if (p->nodes_[cur].output < 0) {  // equal forms of two secrets: the first one names it
        p->nodes_[cur].output = static_cast<int32_t>(p->pattern_secret_.size());
        p->pattern_secret_.push_back(s);
        p->pattern_length_.push_back(static_cast<uint32_t>(form.size()));
        p->pattern_bytes_.push_back(form);
        p->max_length_ = std::max(p->max_length_, form.size());
      }
    }
  }
  p->build_prefilter();
  // Failure links, breadth first.
  std::fill(std::begin(p->root_next_), std::end(p->root_next_), 0);
  std::deque<int32_t> queue;
  for (auto [c, child] : p->nodes_[0].next) {
    p->root_next_[c] = child;
    queue.push_back(child);
  }
  while (!queue.empty()) {
    const int32_t u = queue.front();
    queue.pop_front();
    for (auto [c, v] : p->nodes_[u].next) {
      const int32_t f = p->step(p->nodes_[u].fail, c);
      p->nodes_[v].fail = f;
      p->nodes_[v].dict_suffix = p->nodes_[f].output >= 0 ? f : p->nodes_[f].dict_suffix;
      queue.push_back(v);
    }
  }
  p->reports_.resize(p->nodes_.size());
  for (size_t i = 0; i < p->nodes_.size(); ++i) {
    p->reports_[i] = p->nodes_[i].output >= 0 || p->nodes_[i].dict_suffix >= 0;
  }
  // Dense table when it fits the budget: bytes that occur in no pattern share class 0.
  bool used[256] = {};
  for (const auto& n : p->nodes_) {
    for (auto [c, child] : n.next) used[c] = true;
  }
  p->classes_ = 1;
  uint8_t representative[256] = {};
  for (int b = 0; b < 256; ++b) {
    if (!used[b]) continue;
    representative[p->classes_] = static_cast<uint8_t>(b);
    p->class_of_[b] = static_cast<uint8_t>(p->classes_++);
    if (p->classes_ == 256) break;  // every byte used: class 0 stays empty
  }
  if (p->classes_ < 256 || !used[255]) {
    const size_t cells = p->nodes_.size() * p->classes_;
    if (cells * sizeof(int32_t) <= dense_budget_bytes) {
      p->dfa_.assign(cells, 0);
      // Breadth-first, so a state's failure target is filled in before the state itself.
      std::vector<int32_t> order{0};
      for (size_t k = 0; k < order.size(); ++k) {
        for (auto [c, child] : p->nodes_[order[k]].next) order.push_back(child);
      }
      for (int32_t s : order) {
        for (uint32_t c = 1; c < p->classes_; ++c) {
          const uint8_t byte = representative[c];
          const auto& next = p->nodes_[s].next;
          auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, int32_t{-1}));
          int32_t to;
          if (it != next.end() && it->first == byte) {
            to = it->second;
          } else {
            to = s == 0 ? 0 : p->dfa_[size_t(p->nodes_[s].fail) * p->classes_ + c];
          }
          p->dfa_[size_t(s) * p->classes_ + c] = to;
        }
      }
      // Scan form: each cell holds the target's row offset, bit-inverted (negative) when the
      // target reports a match — one load and one well-predicted branch per byte.
      for (auto& cell : p->dfa_) {
        const int32_t offset = cell * static_cast<int32_t>(p->classes_);
        cell = p->reports_[cell] ? ~offset : offset;
      }
    }
  }
  return p;
}

void Patterns::build_prefilter() {
  size_t min_length = SIZE_MAX;
  for (uint32_t len : pattern_length_) min_length = std::min<size_t>(min_length, len);
  // kMinSecretSize makes every form longer than a gram; an empty set needs no filter.
  if (pattern_length_.empty() || min_length < kGram + 1) return;
  // Every occurrence must contain a probe position at which a whole gram lies inside it.
  stride_ = std::min<size_t>(min_length - kGram + 1, 16);
  size_t entries = 0;
  for (size_t pi = 0; pi < pattern_bytes_.size(); ++pi) entries += stride_;
  // About 32 bits per gram keeps false hits near 3% of probes.
  uint32_t log2_bits = 15;
  while (log2_bits < 26 && (size_t{1} << log2_bits) < entries * 32) ++log2_bits;
  filter_shift_ = 32 - log2_bits;
  filter_.assign((size_t{1} << log2_bits) / 64, 0);
  for (const auto& pat : pattern_bytes_) {
    for (size_t j = 0; j < stride_; ++j) {
      const uint32_t f = filter_hash(load_gram(pat.data() + j), filter_shift_);
      filter_[f >> 6] |= uint64_t{1} << (f & 63);
    }
  }
  pattern_bytes_.clear();
  pattern_bytes_.shrink_to_fit();
}

size_t Patterns::memory_bytes() const {
  size_t bytes = dfa_.size() * sizeof(int32_t) + nodes_.size() * sizeof(Node) +
                 filter_.size() * sizeof(uint64_t);
  for (const auto& n : nodes_) bytes += n.next.capacity() * sizeof(n.next[0]);
  return bytes;
}

int32_t Patterns::step(int32_t state, uint8_t byte) const {
  while (state != 0) {
    const auto& next = nodes_[state].next;
    if (next.size() == 1) {
      if (next[0].first == byte) return next[0].second;
    } else {
      auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, int32_t{-1}));
      if (it != next.end() && it->first == byte) return it->second;
    }
    state = nodes_[state].fail;
  }
  return root_next_[byte];
}

void Patterns::report(int32_t state, size_t end, std::vector<Match>& out) const {
  for (int32_t s = nodes_[state].output >= 0 ? state : nodes_[state].dict_suffix; s >= 0;
       s = nodes_[s].dict_suffix) {
    const int32_t pattern = nodes_[s].output;
    out.push_back({end - pattern_length_[pattern], end, pattern_secret_[pattern]});
  }
}

void Patterns::find_all(std::string_view text, std::vector<Match>& out) const {
  if (max_length_ == 0) return;  // no patterns
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  if (n < kGram) return;  // every pattern is longer
  // The automaton runs only near probes that hit, and never over a byte twice: `scanned` is
  // how far it has read, `state` where it stands there. A run that starts afresh starts in
  // the root state, which finds every occurrence starting at or after that point.
  size_t scanned = 0;
  int32_t state = 0;   // sparse form: node; dense form: row offset
  bool running = false;
  const uint64_t* filter = filter_.data();
  const int32_t* table = dfa_.data();
  const int32_t classes = static_cast<int32_t>(classes_);
  for (size_t q = 0; q + kGram <= n; q += stride_) {
    const uint32_t f = filter_hash(load_gram(text.data() + q), filter_shift_);
    if (!(filter[f >> 6] & (uint64_t{1} << (f & 63)))) [[likely]] continue;
    // An occurrence this probe may belong to starts within the stride before it and ends
    // within the longest pattern after its start.
    const size_t from = q + 1 >= stride_ ? q + 1 - stride_ : 0;
    const size_t to = std::min(n, q + max_length_);
    if (!running || from > scanned) {
      scanned = from;
      state = 0;
      running = true;
    }
    if (!dfa_.empty()) {
      for (; scanned < to; ++scanned) {
        const int32_t cell = table[state + class_of_[bytes[scanned]]];
        state = cell >= 0 ? cell : ~cell;
        if (cell < 0) report(state / classes, scanned + 1, out);
      }
    } else {
      for (; scanned < to; ++scanned) {
        state = step(state, bytes[scanned]);
        if (reports_[state]) report(state, scanned + 1, out);
      }
    }
  }
}

StreamRedactor::StreamRedactor(std::shared_ptr<const Patterns> patterns)
    : patterns_(std::move(patterns)),
      counts_(patterns_->secret_count(), 0),
      reported_(counts_.size(), 0) {}

uint64_t StreamRedactor::total() const {
  uint64_t n = 0;
  for (uint64_t c : counts_) n += c;
  return n;
}

void StreamRedactor::write(std::string_view in, std::string& out) {
  pending_.append(in);
  emit(out, /*final=*/false);
}

void StreamRedactor::finish(std::string& out) { emit(out, /*final=*/true); }

std::string StreamRedactor::take_held() {
  std::string held = std::move(pending_);
  pending_.clear();
  return held;
}

void StreamRedactor::emit(std::string& out, bool final) {
  // Every occurrence that starts before `safe` lies wholly inside pending_ (no pattern is
  // longer than max_length), so it is known now. Later bytes may still begin one: hold them.
  const size_t keep = patterns_->max_length() > 0 ? patterns_->max_length() - 1 : 0;
  const size_t safe = final ? pending_.size() : pending_.size() - std::min(keep, pending_.size());
  matches_.clear();
  patterns_->find_all(pending_, matches_);
  std::sort(matches_.begin(), matches_.end(), [](const auto& a, const auto& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  size_t done = 0;  // bytes of pending_ already written to `out`
  size_t cut = safe;
  std::vector<uint32_t> region_secrets;
  for (size_t i = 0; i < matches_.size() && matches_[i].start < safe;) {
    // Overlapping occurrences form one region, replaced as a whole.
    const size_t start = matches_[i].start;
    size_t end = matches_[i].end;
    region_secrets.clear();
    size_t j = i;
    for (; j < matches_.size() && matches_[j].start < end; ++j) {
      end = std::max(end, matches_[j].end);
      if (std::find(region_secrets.begin(), region_secrets.end(), matches_[j].secret) ==
          region_secrets.end()) {
        region_secrets.push_back(matches_[j].secret);
      }
    }
    if (!final && end > safe) {
      cut = start;  // a longer occurrence may still overlap it: wait for more bytes
      break;
    }
    out.append(pending_, done, start - done);
    for (uint32_t s : region_secrets) {
      out += "[REDACTED:";
      out += patterns_->name(s);
      out += ']';
    }
    for (size_t k = i; k < j; ++k) ++counts_[matches_[k].secret];
    unreported_ = true;
    done = end;
    i = j;
  }
  cut = std::max(cut, done);
  out.append(pending_, done, cut - done);
  pending_.erase(0, cut);
}

std::vector<std::string_view> outside_markers(std::string_view redacted) {
  constexpr std::string_view kOpen = "[REDACTED:";
  std::vector<std::string_view> pieces;
  size_t from = 0;
  for (size_t at = redacted.find(kOpen); at != std::string_view::npos;
       at = redacted.find(kOpen, from)) {
    const size_t close = redacted.find(']', at);
    if (close == std::string_view::npos) break;
    pieces.push_back(redacted.substr(from, at - from));
    from = close + 1;
  }
  pieces.push_back(redacted.substr(from));
  return pieces;
}

std::string redact(const std::shared_ptr<const Patterns>& patterns, std::string_view text,
                   std::vector<uint64_t>* counts) {
  StreamRedactor r(patterns);
  std::string out;
  r.write(text, out);
  r.finish(out);
  if (counts) *counts = r.counts();
  return out;
}

}  // namespace airlock::redact
