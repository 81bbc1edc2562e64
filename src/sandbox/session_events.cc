#include "sandbox/session_events.h"

#include <algorithm>

#include "common/json_fields.h"

namespace airlock::sandbox::managed {
namespace json = boost::json;
namespace {

using proto::string_or_empty;

}  // namespace

SessionView::Tracked& SessionView::track(const std::string& id) {
  auto [it, inserted] = calls_.try_emplace(id);
  if (inserted) it->second.order = next_order_++;
  return it->second;
}

bool SessionView::apply(const json::object& event, Clock::time_point now) {
  const std::string type = string_or_empty(event, "type");
  const std::string id = string_or_empty(event, "id");
  if (type.empty() || id.empty()) return false;
  if (!seen_.insert(id).second) return true;

  if (type == "agent.tool_use" || type == "agent.custom_tool_use") {
    if (answered_.count(id)) return true;
    Tracked& t = track(id);
    ToolCall call{.id = id,
                  .name = string_or_empty(event, "name"),
                  .custom = type == "agent.custom_tool_use"};
    if (const json::value* in = event.if_contains("input")) call.input = *in;
    t.call = std::move(call);
    t.permission = string_or_empty(event, "evaluated_permission");
    if (!t.permission.empty() || !string_or_empty(event, "session_thread_id").empty()) {
      t.waited_on = true;
    }
    return true;
  }
  if (type == "user.tool_result" || type == "agent.tool_result" ||
      type == "user.custom_tool_result") {
    const std::string of = string_or_empty(
        event, type == "user.custom_tool_result" ? "custom_tool_use_id" : "tool_use_id");
    if (of.empty()) return true;
    answered_.insert(of);
    calls_.erase(of);
    return true;
  }
  if (type == "user.tool_confirmation") {
    const std::string of = string_or_empty(event, "tool_use_id");
    if (of.empty() || answered_.count(of)) return true;
    Tracked& t = track(of);
    if (t.confirmation.empty()) {
      t.confirmation = string_or_empty(event, "result") == "allow" ? "allow" : "deny";
    }
    return true;
  }
  if (type == "session.status_terminated" || type == "session.deleted") {
    ended_ = true;
    return true;
  }
  if (type == "session.status_idle") {
    const json::value* reason = event.if_contains("stop_reason");
    const json::object* r = reason && reason->is_object() ? &reason->as_object() : nullptr;
    const std::string why = r ? string_or_empty(*r, "type") : "";
    if (why == "requires_action") {
      idle_since_.reset();
      if (const json::value* ids = r->if_contains("event_ids"); ids && ids->is_array()) {
        for (const auto& v : ids->as_array()) {
          if (!v.is_string()) continue;
          const std::string of(v.as_string());
          if (answered_.count(of)) continue;
          track(of).waited_on = true;
        }
      }
      return true;
    }
    // The turn ended (or stopped for good): nothing it left unanswered is waited on any more,
    // except after retries were exhausted, when the session may take the result still.
    idle_since_ = now;
    for (auto& [cid, t] : calls_) t.waited_on = why == "retries_exhausted" && t.waited_on;
    return true;
  }
  if (type.rfind("session.status_", 0) == 0) idle_since_.reset();
  return true;
}

std::vector<ToolCall> SessionView::runnable() const {
  std::vector<const Tracked*> ready;
  for (const auto& [id, t] : calls_) {
    if (!t.call || !t.waited_on || taken_.count(id)) continue;
    if (t.permission == "deny" || t.confirmation == "deny") continue;
    if (t.permission == "ask" && t.confirmation != "allow") continue;
    if (!t.permission.empty() && t.permission != "allow" && t.permission != "ask" &&
        t.confirmation != "allow") {
      continue;  // a permission this worker does not know: only an explicit allow runs it
    }
    ready.push_back(&t);
  }
  std::sort(ready.begin(), ready.end(), [](auto* a, auto* b) { return a->order < b->order; });
  std::vector<ToolCall> out;
  for (const Tracked* t : ready) out.push_back(*t->call);
  return out;
}

std::vector<std::string> SessionView::awaiting_confirmation() const {
  std::vector<std::pair<uint64_t, std::string>> waiting;
  for (const auto& [id, t] : calls_) {
    if (t.call && t.waited_on && t.permission == "ask" && t.confirmation.empty()) {
      waiting.emplace_back(t.order, id);
    }
  }
  std::sort(waiting.begin(), waiting.end());
  std::vector<std::string> out;
  for (auto& [o, id] : waiting) out.push_back(std::move(id));
  return out;
}

}  // namespace airlock::sandbox::managed
