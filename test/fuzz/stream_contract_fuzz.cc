// libFuzzer target: the parsers of the connector protocol's JSON bodies — hello, accept, and
// every stream contract (mcp metadata, envelopes, inventory, redaction events) — must never
// crash, read out of bounds or loop, whatever the bytes; whatever one of them accepts must
// serialize to text that it parses back to the same value.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/json/serialize.hpp>

#include "common/handshake.h"
#include "common/stream_contract.h"

using namespace airlock::proto;

namespace {

void check(bool ok) {
  if (!ok) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  {
    McpStreamOpen m, again;
    if (parse_mcp_open(text, m, error)) {
      check(parse_mcp_open(serialize(m), again, error));
      check(again.server == m.server && again.agent == m.agent && again.session == m.session &&
            again.client == m.client && again.credential == m.credential);
    }
  }
  {
    McpEnvelope e, again;
    if (parse_envelope(text, e, error)) {
      const std::string line = serialize_line(e);
      check(parse_envelope(std::string_view(line).substr(0, line.size() - 1), again, error));
      check(again.message == e.message && again.related == e.related);
    }
  }
  {
    InventoryReport r, again;
    if (parse_inventory(text, r, error)) {
      check(parse_inventory(serialize(r), again, error));
      check(again.servers == r.servers);
    }
  }
  {
    const auto events = parse_redaction_events(text);
    const auto again = parse_redaction_events(serialize(events.events));
    check(again.events == events.events && again.malformed == 0);
  }
  (void)parse_stream_kind(stream_kind_of(text));
  {
    Hello h, again;
    if (parse_hello(text, h, error)) {
      check(parse_hello(serialize(h), again, error));
      check(again.name == h.name && again.software == h.software &&
            again.inventory.size() == h.inventory.size());
    }
    Accept a, back;
    if (parse_accept(text, a, error)) {
      check(parse_accept(serialize(a), back, error));
      check(back.connection_id == a.connection_id && back.name == a.name);
    }
  }
  return 0;
}
