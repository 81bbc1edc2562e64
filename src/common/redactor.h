// Redaction of secrets from byte streams, in any of the encodings the product promises to catch
// (docs/security.md): raw; base64 and base64url at byte offsets 0, 1 and 2 (padded or not);
// hex, lower and upper case; percent-encoded (upper and lower case hex); JSON-escaped (with or
// without "\/") — and each of those JSON-escaped once more, as it appears on the wire when it is
// the content of a JSON string. Beyond those whole forms, the raw value and its base64 forms are
// also searched in a decoded view of the text, where every `%XX` (either hex case), every
// JSON `\uXXXX` or `\\uXXXX` escape (either case, surrogate pairs joined) and every JSON
// two-character escape (`\"`, `\\`, `\/`, `\n`…) stands for the bytes it encodes: so any mix of
// escaped and literal bytes is caught, without listing the mixes.
//
// Patterns: the immutable set of encoded forms of every loaded secret, compiled into an
// Aho–Corasick automaton. Build once per set of secrets; share freely between threads.
// StreamRedactor: one per byte stream; holds back at most the longest pattern minus one byte
// so that a secret split across chunks is still caught, and flushes at the end. Sans-IO:
// plain code over bytes, no sockets, no clocks. Not thread-safe (one stream, one owner).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::redact {

struct Secret {
  std::string name;   // appears in the replacement: [REDACTED:<name>]
  std::string value;  // at least kMinSecretSize bytes
};

// Shorter secrets would match ordinary text and redact far too much; they are refused.
inline constexpr size_t kMinSecretSize = 8;

// The distinct encoded forms of `value` that are searched for (the raw value first).
std::vector<std::string> encoded_forms(std::string_view value);

class Patterns {
 public:
  // Throws std::invalid_argument naming the secret when a value is shorter than
  // kMinSecretSize or a name is empty. A name may repeat: a secret's earlier values share it.
  static std::shared_ptr<const Patterns> build(const std::vector<Secret>& secrets,
                                               size_t dense_budget_bytes = kDenseBudget);
  static constexpr size_t kDenseBudget = 64 * 1024 * 1024;

  size_t max_length() const { return max_length_; }
  // The longest span of text an occurrence can take, escapes in the decoded view included:
  // a stream must hold back this many bytes minus one.
  size_t max_span() const { return max_span_; }
  // True when the automaton is a full table (one lookup per byte); large sets fall back to
  // following failure links, which is slower but needs far less memory.
  bool is_dense() const { return !dfa_.empty(); }
  size_t memory_bytes() const;
  size_t pattern_count() const { return pattern_secret_.size(); }
  size_t secret_count() const { return names_.size(); }
  const std::string& name(size_t secret) const { return names_[secret]; }

  struct Match {
    size_t start;   // offset of the first byte
    size_t end;     // one past the last byte
    uint32_t secret;
  };
  // Appends every occurrence of every pattern in `text` (overlapping ones included), and every
  // occurrence of a decoded-view pattern among escapes (in text offsets); each once.
  // `decode_from`: where decoding may start — bytes before it are the tail of an escape that
  // began in text that came before (see escape_tail()).
  void find_all(std::string_view text, std::vector<Match>& out, size_t decode_from = 0) const;
  // How many bytes from `at` on belong to an escape that begins before `at`, decoding from
  // `from`: a stream that continues at `at` decodes only after them, as the whole text would.
  static size_t escape_tail(std::string_view text, size_t from, size_t at);

  // The most text one decoded byte can come from: `\\uXXXX` (a surrogate pair is 14 bytes for
  // 4 decoded bytes).
  static constexpr size_t kMaxEscapeBytes = 7;
  // The longest escape (a doubly escaped surrogate pair).
  static constexpr size_t kSyncBytes = 14;

 private:
  Patterns() = default;
  // Compiles the automaton and prefilter for `forms[i]`, the forms of secret i.
  static std::shared_ptr<Patterns> compile(const std::vector<std::string>& names,
                                           const std::vector<std::vector<std::string>>& forms,
                                           size_t dense_budget_bytes);
  void find_direct(std::string_view text, std::vector<Match>& out) const;
  void find_decoded(std::string_view text, size_t decode_from, std::vector<Match>& out) const;
  int32_t step(int32_t state, uint8_t byte) const;
  void report(int32_t state, size_t end, std::vector<Match>& out) const;

  // Trie nodes. Children are sorted (byte, node) pairs; the root also has a dense table.
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;
    int32_t fail = 0;
    int32_t output = -1;       // pattern ending here, or -1
    int32_t dict_suffix = -1;  // nearest node on the fail chain with an output, or -1
  };
  std::vector<Node> nodes_;
  int32_t root_next_[256];
  // Dense form: byte -> class (bytes in no pattern share class 0), then state x class -> state.
  uint8_t class_of_[256] = {};
  uint32_t classes_ = 0;
  std::vector<int32_t> dfa_;
  std::vector<uint8_t> reports_;  // state has an output or a dictionary suffix
  std::vector<uint32_t> pattern_secret_;
  std::vector<uint32_t> pattern_length_;
  // Sampled prefilter: the text is probed every stride_ bytes; a probe looks up the kGram
  // bytes there in a bitset of every pattern's grams at offsets 0 .. stride_-1. Each
  // occurrence covers exactly one probe position with one of those grams, so a miss proves
  // that no occurrence starts in the stride_ bytes up to the probe; the automaton then runs
  // only around probes that hit. Probes do not depend on each other (unlike automaton
  // steps), and ordinary text hits rarely, so most bytes are never looked at one by one.
  static constexpr size_t kGram = 4;
  void build_prefilter();
  size_t stride_ = 1;
  uint32_t filter_shift_ = 0;
  std::vector<uint64_t> filter_;
  std::vector<std::string> pattern_bytes_;  // only while building
  std::vector<std::string> names_;
  size_t max_length_ = 0;
  size_t max_span_ = 0;
  // The decoded view: the raw value and its base64 forms, searched in text where escapes were
  // decoded; only near an escape that decodes to one of `decoded_bytes_` (the bytes of those
  // forms), since elsewhere the view equals the text.
  std::shared_ptr<const Patterns> decoded_;
  uint64_t decoded_bytes_[4] = {};
};

class StreamRedactor {
 public:
  explicit StreamRedactor(std::shared_ptr<const Patterns> patterns);

  // Consumes `in`; appends to `out` whatever is final (redacted where needed).
  void write(std::string_view in, std::string& out);
  // End of stream, or of a message: appends everything still held back. Writing may go on
  // afterwards (an occurrence split across the flush point is then not caught).
  void finish(std::string& out);
  // Hands over the bytes held back, unexamined, and forgets them: for moving a stream to a
  // new set of patterns (feed them to the new redactor first).
  std::string take_held();

  // Occurrences replaced so far, per secret index (see Patterns::name()).
  const std::vector<uint64_t>& counts() const { return counts_; }
  // Calls `f(secret index, n)` for every secret replaced n > 0 times since the last call.
  template <class F>
  void take_new_counts(F&& f) {
    if (!unreported_) return;
    unreported_ = false;
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] != reported_[i]) f(i, counts_[i] - reported_[i]);
      reported_[i] = counts_[i];
    }
  }
  uint64_t total() const;
  size_t held() const { return pending_.size(); }

 private:
  void emit(std::string& out, bool final);

  std::shared_ptr<const Patterns> patterns_;
  std::string pending_;
  std::vector<Patterns::Match> matches_;
  std::vector<uint64_t> counts_;
  std::vector<uint64_t> reported_;  // counts_ as of the last take_new_counts()
  size_t decode_from_ = 0;  // pending_'s first bytes that end an escape already written
  bool unreported_ = false;
};

// The pieces of redacted output that lie between the "[REDACTED:…]" markers the redactor
// writes — the text in which no secret may remain. For leak checks in tests and audits.
std::vector<std::string_view> outside_markers(std::string_view redacted);

// One-shot helper: redacts a whole buffer.
std::string redact(const std::shared_ptr<const Patterns>& patterns, std::string_view text,
                   std::vector<uint64_t>* counts = nullptr);

}  // namespace airlock::redact
