#include "sandbox/managed_results.h"

#include <boost/json/parse.hpp>

#include "common/encoding.h"

namespace airlock::sandbox::managed {
namespace json = boost::json;
namespace {

std::string redacted(std::string_view text,
                     const std::vector<std::shared_ptr<const redact::Patterns>>& redactors,
                     uint64_t& count) {
  std::string out(text);
  for (const auto& p : redactors) {
    if (!p) continue;
    std::vector<uint64_t> counts;
    out = redact::redact(p, out, &counts);
    for (uint64_t c : counts) count += c;
  }
  return out;
}

json::object text_block(std::string text) {
  if (text.empty()) text = "(no output)";
  return json::object{{"type", "text"}, {"text", std::move(text)}};
}

}  // namespace

ResultContent result_content(
    std::string_view tool, const toolbox::Reply& reply,
    const std::vector<std::shared_ptr<const redact::Patterns>>& redactors) {
  ResultContent out;
  out.is_error = reply.is_error;
  if (!reply.media_type.empty()) {
    // The bytes are checked as they are: a file that holds a secret is withheld, not altered.
    const auto bytes = from_base64(reply.data);
    uint64_t found = 0;
    if (!bytes || redacted(*bytes, redactors, found) != *bytes) {
      out.redactions = found;
      out.is_error = true;
      out.content.push_back(
          text_block("read: the file holds a secret of this sandbox and was "
                     "withheld"));
      return out;
    }
    const bool pdf = reply.media_type == "application/pdf";
    out.content.push_back(json::object{{"type", pdf ? "document" : "image"},
                                       {"source", json::object{{"type", "base64"},
                                                               {"media_type", reply.media_type},
                                                               {"data", reply.data}}}});
    return out;
  }
  // The toolbox words the text (toolbox::Style::kManagedAgents); a command that failed is an
  // error result, as it is from the reference workers.
  if (tool == "bash" && reply.exit_code && *reply.exit_code != 0) out.is_error = true;
  out.content.push_back(text_block(redacted(reply.text, redactors, out.redactions)));
  return out;
}

ResultContent error_content(std::string_view text,
                            const std::vector<std::shared_ptr<const redact::Patterns>>& redactors) {
  ResultContent out;
  out.is_error = true;
  out.content.push_back(text_block(redacted(text, redactors, out.redactions)));
  return out;
}

std::string sessions_token_from_secret(std::string_view secret) {
  if (secret.empty()) return "";
  const auto decoded = from_base64(secret);
  if (!decoded) return "";
  std::error_code ec;
  json::value v = json::parse(*decoded, ec);
  if (ec || !v.is_object()) return "";
  const json::value* t = v.as_object().if_contains("sessions_token");
  return t && t->is_string() ? std::string(t->as_string()) : std::string();
}

}  // namespace airlock::sandbox::managed
