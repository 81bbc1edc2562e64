// What a Claude Managed Agents session's event log asks of an environment worker: plain code
// over events, no I/O. The worker applies every event it reads — from the live stream and from
// the paged history it catches up with after (re)connecting, in any overlap — and asks which
// tool calls it should run now.
//
// A tool call (`agent.tool_use`, `agent.custom_tool_use`) is the worker's to run when the
// session waits on it: the call carries an `evaluated_permission` or a thread, or a
// `session.status_idle` with stop reason `requires_action` lists it. It is runnable once it is
// allowed — no permission, `allow`, or `ask` answered by a `user.tool_confirmation` of `allow`
// — and no result for it is in the log. `deny` (evaluated, or confirmed) never runs. The
// session has ended at `session.status_terminated` or `session.deleted`; it is idle from a
// `session.status_idle` that ends the turn, until another status arrives.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace airlock::sandbox::managed {

struct ToolCall {
  std::string id;  // the event's id: the result's tool_use_id / custom_tool_use_id
  std::string name;
  bool custom = false;  // agent.custom_tool_use
  boost::json::value input;
};

class SessionView {
 public:
  using Clock = std::chrono::steady_clock;

  // Applies one event; an event whose id was applied before changes nothing. False for an
  // event this view cannot use (no type or id), which is skipped.
  bool apply(const boost::json::object& event, Clock::time_point now);

  // The calls the session waits on that may run now and were not marked taken, oldest first.
  std::vector<ToolCall> runnable() const;
  // Calls that wait for a user.tool_confirmation (permission `ask`), oldest first: ids only.
  std::vector<std::string> awaiting_confirmation() const;
  // Never offered by runnable() again (the worker started it, or chose not to run it).
  void take(const std::string& id) { taken_.insert(id); }
  bool taken(const std::string& id) const { return taken_.count(id) != 0; }
  // Whether a result for `id` is in the log.
  bool answered(const std::string& id) const { return answered_.count(id) != 0; }

  bool ended() const { return ended_; }
  // Since when the session has been idle at the end of a turn; empty while it is not.
  std::optional<Clock::time_point> idle_since() const { return idle_since_; }
  size_t events_applied() const { return seen_.size(); }

 private:
  struct Tracked {
    std::optional<ToolCall> call;  // empty while only an idle event has listed it
    std::string permission;        // evaluated_permission: "", allow, ask, deny
    std::string confirmation;      // from user.tool_confirmation: "", allow, deny
    bool waited_on = false;
    uint64_t order = 0;
  };
  Tracked& track(const std::string& id);

  std::set<std::string> seen_;
  std::map<std::string, Tracked> calls_;
  std::set<std::string> answered_;
  std::set<std::string> taken_;
  uint64_t next_order_ = 0;
  bool ended_ = false;
  std::optional<Clock::time_point> idle_since_;
};

}  // namespace airlock::sandbox::managed
