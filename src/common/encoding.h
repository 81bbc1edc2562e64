// Byte encodings used by tokens and by the redactor: hex and base64 (standard and URL-safe
// alphabets). Plain functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock {

std::string to_hex(std::string_view bytes, bool upper = false);
// RFC 4648 base64; `url` selects the URL-safe alphabet, `pad` appends '=' to whole groups.
std::string base64(std::string_view bytes, bool url, bool pad);
// Decodes base64 in either alphabet, with or without padding; nullopt on any other character
// or a length no encoding has.
std::optional<std::string> from_base64(std::string_view text);

}  // namespace airlock
