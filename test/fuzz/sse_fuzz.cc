// libFuzzer target: the session event stream sandbox-agent worker reads from Managed Agents'
// API (src/sandbox/sse.h) and the session view it feeds (src/sandbox/session_events.h). Bytes
// split anywhere must give the same events as bytes fed whole; nothing may crash, read out of
// bounds or loop; the view must never offer a call twice once taken.
#include <boost/json/parse.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "sandbox/session_events.h"
#include "sandbox/sse.h"

using namespace airlock::sandbox;

namespace {
void check(bool ok) {
  if (!ok) abort();
}

std::vector<sse::Event> events_of(std::string_view bytes, size_t split) {
  sse::Parser p(4096);
  std::vector<sse::Event> out;
  if (p.feed(bytes.substr(0, split))) (void)p.feed(bytes.substr(split));
  while (auto e = p.next()) out.push_back(std::move(*e));
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t split = size ? data[0] % (size + 1) : 0;
  const auto whole = events_of(bytes, size);
  const auto pieces = events_of(bytes, split);
  // A CR at the split then an LF is one line end either way; the events must agree.
  check(whole.size() == pieces.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    check(whole[i].type == pieces[i].type && whole[i].data == pieces[i].data &&
          whole[i].id == pieces[i].id);
  }
  managed::SessionView view;
  const auto now = managed::SessionView::Clock::now();
  for (const auto& e : whole) {
    std::error_code ec;
    auto v = boost::json::parse(e.data, ec);
    if (ec || !v.is_object()) continue;
    view.apply(v.as_object(), now);
    for (const auto& call : view.runnable()) {
      check(!view.taken(call.id));
      view.take(call.id);
    }
    check(view.runnable().empty());
  }
  return 0;
}
