#include "common/redactor.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <set>
#include <stdexcept>
#include <tuple>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Hex digit values, -1 for other bytes.
constexpr auto kHexValue = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<int8_t>(i);
  for (int i = 0; i < 6; ++i) {
    t['a' + i] = static_cast<int8_t>(10 + i);
    t['A' + i] = static_cast<int8_t>(10 + i);
  }
  return t;
}();

inline int hex_value(char c) { return kHexValue[static_cast<unsigned char>(c)]; }

// The value of the `digits` hex digits at text[at], or -1.
int32_t hex_at(std::string_view text, size_t at, size_t digits) {
  if (at + digits > text.size()) return -1;
  int32_t v = 0;
  for (size_t i = 0; i < digits; ++i) {
    const int d = hex_value(text[at + i]);
    if (d < 0) return -1;
    v = v << 4 | d;
  }
  return v;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out += {static_cast<char>(0xC0 | cp >> 6), static_cast<char>(0x80 | (cp & 0x3F))};
  } else if (cp < 0x10000) {
    out += {static_cast<char>(0xE0 | cp >> 12), static_cast<char>(0x80 | (cp >> 6 & 0x3F)),
            static_cast<char>(0x80 | (cp & 0x3F))};
  } else {
    out += {static_cast<char>(0xF0 | cp >> 18), static_cast<char>(0x80 | (cp >> 12 & 0x3F)),
            static_cast<char>(0x80 | (cp >> 6 & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
  }
}

// One escape of the decoded view at text[at]: `%XX`; `\uXXXX` / `\\uXXXX` (a JSON escape, or
// one JSON-escaped once more), a high surrogate joined with the low one after it at the same
// depth — a lone surrogate is not an escape: JSON decoders disagree on what it means; or one of
// JSON's two-character escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`).
struct Escape {
  uint8_t length = 0;  // text bytes taken; 0: no escape here
  uint8_t size = 0;    // bytes they stand for (UTF-8: 1 to 4)
  char bytes[4] = {};
};

[[gnu::always_inline]] inline Escape escape_at(std::string_view text, size_t at) {
  Escape e;
  const size_t n = text.size();
  if (text[at] == '%') {
    if (at + 2 >= n) return e;
    const int hi = hex_value(text[at + 1]), lo = hex_value(text[at + 2]);
    if (hi < 0 || lo < 0) return e;
    e.length = 3;
    e.size = 1;
    e.bytes[0] = static_cast<char>(hi << 4 | lo);
    return e;
  }
  if (text[at] != '\\' || at + 1 >= n) return e;
  // \uXXXX, or \\uXXXX (one JSON-escaped once more): the doubled form is tried first.
  for (const size_t lead : {size_t{2}, size_t{1}}) {
    if (at + lead >= n || text[at + lead] != 'u' || (lead == 2 && text[at + 1] != '\\')) continue;
    const size_t unit = lead + 5;  // the backslashes, 'u', four digits
    auto unit_at = [&](size_t pos) -> int32_t {
      if (pos + unit > n || text[pos + lead] != 'u') return -1;
      for (size_t i = 0; i < lead; ++i) {
        if (text[pos + i] != '\\') return -1;
      }
      return hex_at(text, pos + lead + 1, 4);
    };
    const int32_t hi = unit_at(at);
    if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) continue;
    uint32_t cp = static_cast<uint32_t>(hi);
    size_t length = unit;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
      const int32_t lo = unit_at(at + unit);
      if (lo < 0xDC00 || lo > 0xDFFF) continue;
      cp = 0x10000 + ((uint32_t(hi) - 0xD800) << 10) + (uint32_t(lo) - 0xDC00);
      length = 2 * unit;
    }
    std::string utf8;
    append_utf8(cp, utf8);
    e.length = static_cast<uint8_t>(length);
    e.size = static_cast<uint8_t>(utf8.size());
    std::memcpy(e.bytes, utf8.data(), utf8.size());
    return e;
  }
  // JSON's two-character escapes: a value in a JSON string with some characters
  // percent-encoded has the others JSON-escaped.
  char c;
  switch (text[at + 1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    default: return e;
  }
  e.length = 2;
  e.size = 1;
  e.bytes[0] = c;
  return e;
}

// A position in [from, at] that decoding from `from` (itself such a position) passes through:
// the nearest before `at` with no '%' or '\' in the kSyncBytes - 1 bytes before it, since no
// escape is longer than kSyncBytes and every escape begins with one of them.
size_t sync_point(std::string_view text, size_t from, size_t at) {
  constexpr size_t kClean = Patterns::kSyncBytes - 1;
  size_t clean = 0;
  for (size_t p = at; p > from; --p) {
    const char c = text[p - 1];
    if (c == '%' || c == '\\') {
      clean = 0;
    } else if (++clean == kClean) {
      return p - 1 + kClean;
    }
  }
  return from;
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

// The forms searched in the decoded view: those that an encoder escaping some characters and
// not others would produce from — the raw value (percent-encoded in a URL, `\uXXXX`-escaped in
// JSON) and its base64 forms (whose '+', '/' and '=' URL encoders escape).
std::vector<std::string> decoded_view_forms(std::string_view value) {
  std::vector<std::string> forms{std::string(value)};
  for (int k = 0; k < 3; ++k) {
    forms.push_back(base64_core(value, k, /*url=*/false));
    forms.push_back(base64_core(value, k, /*url=*/true));
  }
  return forms;
}

std::shared_ptr<const Patterns> Patterns::build(const std::vector<Secret>& secrets,
                                                size_t dense_budget_bytes) {
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> direct, decoded;
  for (const Secret& secret : secrets) {
    if (secret.name.empty()) throw std::invalid_argument("a secret has an empty name");
    if (secret.value.size() < kMinSecretSize) {
      throw std::invalid_argument("secret '" + secret.name + "' is " +
                                  std::to_string(secret.value.size()) + " bytes; at least " +
                                  std::to_string(kMinSecretSize) +
                                  " are needed, or ordinary text would be redacted");
    }
    names.push_back(secret.name);
    direct.push_back(encoded_forms(secret.value));
    decoded.push_back(decoded_view_forms(secret.value));
  }
  std::shared_ptr<Patterns> p = compile(names, direct, dense_budget_bytes);
  // The decoded view's table gets a quarter of the budget, and no more than the direct one
  // left: it runs only around escapes, so its speed matters less than its memory.
  const size_t direct_table = p->dfa_.size() * sizeof(int32_t);
  const size_t left = dense_budget_bytes > direct_table ? dense_budget_bytes - direct_table : 0;
  std::shared_ptr<Patterns> view = compile(names, decoded, std::min(left, dense_budget_bytes / 4));
  for (const auto& forms : decoded) {
    for (const auto& form : forms) {
      for (unsigned char c : form) p->decoded_bytes_[c >> 6] |= uint64_t{1} << (c & 63);
    }
  }
  p->max_span_ = std::max(p->max_length_, view->max_length_ * kMaxEscapeBytes);
  view->max_span_ = view->max_length_;
  p->decoded_ = std::move(view);
  return p;
}

std::shared_ptr<Patterns> Patterns::compile(const std::vector<std::string>& names,
                                            const std::vector<std::vector<std::string>>& forms,
                                            size_t dense_budget_bytes) {
  std::shared_ptr<Patterns> p(new Patterns());
  p->nodes_.emplace_back();
  p->names_ = names;
  for (uint32_t s = 0; s < forms.size(); ++s) {
    for (const std::string& form : forms[s]) {
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
  return bytes + (decoded_ ? decoded_->memory_bytes() : 0);
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

void Patterns::find_all(std::string_view text, std::vector<Match>& out,
                        size_t decode_from) const {
  const size_t base = out.size();
  find_direct(text, out);
  const size_t direct = out.size();
  if (decoded_) find_decoded(text, decode_from, out);
  if (out.size() == direct) return;
  // Both searches find an occurrence whose escapes are also a direct form (a percent-encoded
  // or JSON-escaped form): keep one.
  auto key = [](const Match& m) { return std::tuple(m.start, m.end, m.secret); };
  std::sort(out.begin() + base, out.end(), [&](const Match& a, const Match& b) { return key(a) < key(b); });
  out.erase(std::unique(out.begin() + base, out.end(),
                        [&](const Match& a, const Match& b) { return key(a) == key(b); }),
            out.end());
}

void Patterns::find_direct(std::string_view text, std::vector<Match>& out) const {
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

namespace {

// Calls f(offset) for every '%' and '\' in text from `from` on, in order. Sixteen bytes at a
// time where SSE2 is there (every x86-64), since most text has neither.
template <class F>
void for_each_escape_mark(std::string_view text, size_t from, size_t to, F&& f) {
  const char* data = text.data();
  size_t i = from;
#if defined(__SSE2__)
  const __m128i pct = _mm_set1_epi8('%'), bsl = _mm_set1_epi8('\\');
  for (; i + 16 <= to; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    auto bits = static_cast<uint32_t>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, bsl))));
    while (bits) {
      f(i + static_cast<size_t>(__builtin_ctz(bits)));
      bits &= bits - 1;
    }
  }
#endif
  for (; i < to; ++i) {
    if (data[i] == '%' || data[i] == '\\') f(i);
  }
}

// text[from, to) with its escapes decoded. Literal runs are copied whole; each escape is
// recorded, so that a decoded offset maps back to the text it came from. `from` must be a
// position the whole text's decoding passes through (see sync_point).
// An escape where decoding the whole text finds one.
struct FoundEscape {
  uint32_t at;
  Escape escape;
};

class DecodedView {
 public:
  // `escapes`: those of the whole text's decoding, in order.
  void decode(std::string_view text, size_t from, size_t to,
              const std::vector<FoundEscape>& escapes) {
    bytes_.clear();
    escapes_.clear();
    from_ = from;
    size_t cursor = from;
    auto it = std::lower_bound(escapes.begin(), escapes.end(), from,
                               [](const FoundEscape& f, size_t v) { return f.at < v; });
    for (; it != escapes.end() && it->at < to; ++it) {
      const Escape& e = it->escape;
      bytes_.append(text.data() + cursor, it->at - cursor);
      escapes_.push_back({static_cast<uint32_t>(bytes_.size()), it->at, e.size, e.length});
      bytes_.append(e.bytes, e.size);
      cursor = it->at + e.length;
    }
    if (cursor < to) bytes_.append(text.data() + cursor, to - cursor);
  }
  std::string_view bytes() const { return bytes_; }
  // The text offsets that decoded bytes [start, end) came from.
  std::pair<size_t, size_t> text_span(size_t start, size_t end) const {
    return {text_begin(start), text_end(end - 1)};
  }

 private:
  struct Span {
    uint32_t decoded_at, text_at;
    uint8_t decoded_size, text_length;
  };
  // The last escape that starts at or before decoded byte d, or nullptr.
  const Span* escape_before(size_t d) const {
    auto it = std::upper_bound(escapes_.begin(), escapes_.end(), d,
                               [](size_t v, const Span& sp) { return v < sp.decoded_at; });
    return it == escapes_.begin() ? nullptr : &*(it - 1);
  }
  size_t text_begin(size_t d) const {
    const Span* sp = escape_before(d);
    if (!sp) return from_ + d;
    if (d < sp->decoded_at + sp->decoded_size) return sp->text_at;
    return sp->text_at + sp->text_length + (d - sp->decoded_at - sp->decoded_size);
  }
  size_t text_end(size_t d) const {
    const Span* sp = escape_before(d);
    if (sp && d < sp->decoded_at + sp->decoded_size) return sp->text_at + sp->text_length;
    return text_begin(d) + 1;
  }

  std::string bytes_;
  std::vector<Span> escapes_;
  size_t from_ = 0;
};

}  // namespace

size_t Patterns::escape_tail(std::string_view text, size_t from, size_t at) {
  size_t cursor = sync_point(text, from, at), tail = 0;
  for_each_escape_mark(text, cursor, at, [&](size_t mark) {
    if (mark < cursor) return;  // inside the escape just taken
    const Escape e = escape_at(text, mark);
    if (e.length == 0) return;
    cursor = mark + e.length;
    if (cursor > at) tail = cursor - at;
  });
  return tail;
}

void Patterns::find_decoded(std::string_view text, size_t decode_from,
                            std::vector<Match>& out) const {
  // Windows of text around escapes that decode to a byte of some decoded-view form: an
  // occurrence that contains such an escape starts and ends within the decoded view's longest
  // form × kMaxEscapeBytes of it. Elsewhere the decoded view is the text itself, which the
  // direct search has covered.
  const size_t reach = decoded_->max_length_ * kMaxEscapeBytes;
  struct Window {
    size_t from, to;
  };
  std::vector<Window> windows;
  size_t cursor = decode_from;  // inside the last escape taken: its own marks are not escapes
  std::vector<FoundEscape> escapes;
  for_each_escape_mark(text, decode_from, text.size(), [&](size_t at) {
    if (at < cursor) return;
    const Escape e = escape_at(text, at);
    if (e.length == 0) return;
    cursor = at + e.length;
    escapes.push_back({static_cast<uint32_t>(at), e});
    bool wanted = false;
    for (int i = 0; i < e.size; ++i) {
      const auto u = static_cast<unsigned char>(e.bytes[i]);
      wanted |= (decoded_bytes_[u >> 6] >> (u & 63)) & 1;
    }
    if (!wanted) return;
    const size_t from = std::max(decode_from, at >= reach ? at - reach : 0);
    const size_t to = std::min(text.size(), cursor + reach);
    if (!windows.empty() && from <= windows.back().to) {
      windows.back().to = std::max(windows.back().to, to);
    } else {
      // Decoding starts where the whole text's decoding passes too (not inside an escape),
      // searched for no further back than the previous window's start, which is such a place.
      windows.push_back({sync_point(text, windows.empty() ? decode_from : windows.back().from, from), to});
    }
  });
  DecodedView view;
  std::vector<Match> found;
  for (const Window& w : windows) {
    view.decode(text, w.from, w.to, escapes);
    found.clear();
    decoded_->find_direct(view.bytes(), found);
    for (const Match& m : found) {
      const auto [start, end] = view.text_span(m.start, m.end);
      out.push_back({start, end, m.secret});
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
  decode_from_ = 0;
  return held;
}

void StreamRedactor::emit(std::string& out, bool final) {
  // Every occurrence that starts before `safe` lies wholly inside pending_ (none spans more
  // than max_span, escapes included), so it is known now. Later bytes may still begin one: hold them.
  const size_t keep = patterns_->max_span() > 0 ? patterns_->max_span() - 1 : 0;
  const size_t safe = final ? pending_.size() : pending_.size() - std::min(keep, pending_.size());
  matches_.clear();
  patterns_->find_all(pending_, matches_, decode_from_);
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
  decode_from_ = final                ? 0
                 : cut <= decode_from_ ? decode_from_ - cut
                                       : Patterns::escape_tail(pending_, decode_from_, cut);
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
