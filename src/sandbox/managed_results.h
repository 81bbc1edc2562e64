// A tool's toolbox reply (worded by the toolbox in toolbox::Style::kManagedAgents) as the
// content of a Claude Managed Agents tool result, shaped as the reference environment workers
// post it: `(no output)` for nothing, a failed command as an error, an image or a PDF from
// read as an image or document block — and every text passed through the redactor before it
// leaves the perimeter. Also the work item secret's sessions token. Plain code over values.
#pragma once

#include <boost/json/array.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redactor.h"
#include "sandbox/toolbox_protocol.h"

namespace airlock::sandbox::managed {

struct ResultContent {
  boost::json::array content;  // text, image or document blocks; never empty
  bool is_error = false;
  uint64_t redactions = 0;  // secret occurrences replaced
};

// `redactors`: every pattern set whose secrets must not leave (the sandbox's secrets, the
// environment key and the item's sessions token); null entries are skipped.
ResultContent result_content(std::string_view tool, const toolbox::Reply& reply,
                             const std::vector<std::shared_ptr<const redact::Patterns>>& redactors);

// A text-only error result's content.
ResultContent error_content(std::string_view text,
                            const std::vector<std::shared_ptr<const redact::Patterns>>& redactors);

// The sessions token in a work item's `secret` (URL-safe base64 of JSON with
// `sessions_token`), or empty when there is none or the secret cannot be read.
std::string sessions_token_from_secret(std::string_view secret);

}  // namespace airlock::sandbox::managed
