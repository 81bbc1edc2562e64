#include "common/mcp_revision.h"

#include "common/encoding.h"

namespace airlock::mcp {
namespace {
constexpr std::string_view kOpen = "=?base64?", kClose = "?=";
}

std::string encode_header_value(std::string_view value) {
  bool plain = value.empty() || (value.front() != ' ' && value.back() != ' ');
  for (const char c : value) plain = plain && c >= 0x20 && c < 0x7f;
  // A plain value that looks like the sentinel would be decoded on the other side.
  if (plain && !(value.starts_with(kOpen) && value.ends_with(kClose))) return std::string(value);
  return std::string(kOpen) + base64(value, false, true) + std::string(kClose);
}

std::optional<std::string> decode_header_value(std::string_view value) {
  if (!value.starts_with(kOpen) || !value.ends_with(kClose) ||
      value.size() < kOpen.size() + kClose.size()) {
    return std::string(value);
  }
  return from_base64(value.substr(kOpen.size(), value.size() - kOpen.size() - kClose.size()));
}

}  // namespace airlock::mcp
