// redactor_bench: StreamRedactor throughput with 1, 100 and 1,000 secrets loaded, against a
// plain copy of the same bytes, on 64 MiB in 64 KiB chunks (the link's chunk size) with a few
// secrets planted: JSON-like text, random base64 (the secrets' own alphabet, where the
// prefilter hits most often), and URL-encoded text (a `%XX` every few bytes, many of which —
// %2F, %2B, %3D — decode to a character of the secrets' base64 forms, so that the decoded
// view is searched around them).
//
// Usage: redactor_bench [--quick]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "common/redactor.h"

using namespace airlock;
using namespace airlock::redact;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const size_t total = (quick ? 8u : 64u) << 20;
  std::mt19937_64 rng(7);
  const char* words[] = {"\"id\": ", "\"name\": \"", "\"amount\": ", "\"region\": \"EMEA\", ",
                         "\"items\": [", "], ", "{", "}", "\"ok\": true, ", "\"note\": \"",
                         "quarterly revenue ", "customer ", "\\n", "1234.56, ", "\", "};
  std::string json_text;
  while (json_text.size() < total) json_text += words[rng() % (sizeof words / sizeof *words)];
  json_text.resize(total);
  std::string b64_text(total, ' ');
  for (auto& c : b64_text) {
    c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rng() % 64];
  }

  std::string url_text;
  const char* parts[] = {"https%3A%2F%2Fapi.example.com%2Fv1%2Forders%3Fid%3D", "12345",
                         "%26region%3DEMEA", "%2Bpriority", "%20quarterly%20revenue", "&next=",
                         "%2F", "customer", "%3D%3D"};
  while (url_text.size() < total) url_text += parts[rng() % (sizeof parts / sizeof *parts)];
  url_text.resize(total);

  std::printf("| text | secrets | patterns | automaton | memory | redactor MB/s | plain copy MB/s | ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto* text_ptr : {&json_text, &b64_text, &url_text}) {
  const std::string& text = *text_ptr;
  const char* text_name = text_ptr == &json_text ? "JSON" : text_ptr == &b64_text ? "base64" : "URL-encoded";
  for (int n : {1, 100, 1000}) {
    std::vector<Secret> secrets;
    for (int i = 0; i < n; ++i) {
      std::string v(32, '\0');
      for (auto& c : v) c = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[rng() % 64];
      secrets.push_back({"secret-" + std::to_string(i), v});
    }
    auto patterns = Patterns::build(secrets);
    std::string input = text;
    for (int k = 0; k < 16; ++k) {  // a few real leaks to replace
      const auto& v = secrets[rng() % secrets.size()].value;
      input.replace(rng() % (input.size() - 64), v.size(), v);
    }
    constexpr size_t kChunk = 64 * 1024;
    // Best of three, to keep other load on the machine out of the figure.
    double best_redact = 0, best_copy = 0;
    // Output buffers are touched once before timing, so page faults are not measured.
    std::string out(input.size() + 4096, ' '), copy(input.size(), ' ');
    for (int round = 0; round < 3; ++round) {
      StreamRedactor r(patterns);
      out.clear();
      auto t0 = Clock::now();
      for (size_t off = 0; off < input.size(); off += kChunk) {
        r.write(std::string_view(input).substr(off, kChunk), out);
      }
      r.finish(out);
      const double s1 = std::chrono::duration<double>(Clock::now() - t0).count();
      if (r.total() < 16) {
        std::fprintf(stderr, "expected at least 16 redactions, got %llu\n",
                     static_cast<unsigned long long>(r.total()));
        return 1;
      }
      copy.clear();
      t0 = Clock::now();
      for (size_t off = 0; off < input.size(); off += kChunk) {
        copy.append(input, off, std::min(kChunk, input.size() - off));
      }
      const double s2 = std::chrono::duration<double>(Clock::now() - t0).count();
      best_redact = std::max(best_redact, input.size() / 1e6 / s1);
      best_copy = std::max(best_copy, input.size() / 1e6 / s2);
    }
    std::printf("| %s | %d | %zu | %s | %.1f MiB | %.0f | %.0f | %.2f |\n", text_name, n,
                patterns->pattern_count(),
                patterns->is_dense() ? "table" : "failure links",
                patterns->memory_bytes() / 1048576.0, best_redact, best_copy,
                best_redact / best_copy);
  }
  }
  return 0;
}
