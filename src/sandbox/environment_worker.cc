#include "sandbox/environment_worker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "common/connector_cli.h"
#include "common/encoding.h"
#include "common/json_fields.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/token.h"
#include "sandbox/image.h"
#include "sandbox/managed_results.h"
#include "sandbox/session_events.h"

namespace airlock::sandbox {
namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr ms kRequestTimeout = 30s;  // one API request (the poll blocks for ~1 s of it)
constexpr ms kDefaultTtl = 300s;     // the lease the API grants until it says otherwise
constexpr ms kHeartbeatMax = 30s;
constexpr ms kHeartbeatMin = 1s;
constexpr ms kStreamConnectTimeout = 15s;
constexpr ms kStopTimeout = 10s;
constexpr int kStopAttempts = 5;
const char* const kNoHeartbeat = "NO_HEARTBEAT";
// The tools a reference worker owns; web_fetch is the platform's, never the worker's.
constexpr std::string_view kOwnedBuiltins[] = {"bash", "read", "write", "edit", "glob", "grep"};

ms jitter(ms lo, ms hi) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  if (hi <= lo) return lo;
  return ms(std::uniform_int_distribution<int64_t>(lo.count(), hi.count())(rng));
}

ms exponential(int attempt, ms base, ms cap) {
  ms d = base;
  for (int i = 0; i < attempt && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

// Every field the worker reads is optional: a missing one reads as empty.
using proto::string_or_empty;

std::string query_value(std::string_view v) {
  return boost::urls::encode(v, boost::urls::unreserved_chars);
}

// Runs `sandbox-agent-unpack --skill ARCHIVE DEST` — libarchive in a process of its own with no
// capability and no secret (image_unpack.h) — without blocking the executor. Empty on
// success, else why not.
asio::awaitable<std::string> extract_skill_archive(const std::string& archive,
                                                   const std::string& dest) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) co_return std::string("pipe2: ") + std::strerror(errno);
  std::string error;
  const pid_t pid = spawn_unpack_helper({"--skill", archive, dest}, -1, out[1], error);
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    co_return error;
  }
  asio::posix::stream_descriptor pipe(co_await asio::this_coro::executor, out[0]);
  std::string output;
  auto buffer = asio::dynamic_buffer(output, 64 * 1024);
  co_await asio::async_read(pipe, buffer, kUseTuple);  // until the helper ends (or 64 KiB)
  pipe.close();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && output == "ok") co_return std::string();
  co_return output.empty() ? "the unpacker failed (status " + std::to_string(status) + ")" : output;
}

// The skills of a session's agent and of the agents it coordinates, each skill once.
std::vector<json::object> skills_of(const json::object& session) {
  std::vector<json::object> out;
  std::set<std::string> seen;
  auto add = [&](const json::value* list) {
    if (!list || !list->is_array()) return;
    for (const auto& s : list->as_array()) {
      if (!s.is_object()) continue;
      const std::string id = string_or_empty(s.as_object(), "skill_id");
      if (!id.empty() && seen.insert(id).second) out.push_back(s.as_object());
    }
  };
  const json::value* agent = session.if_contains("agent");
  if (!agent || !agent->is_object()) return out;
  add(agent->as_object().if_contains("skills"));
  if (const json::value* m = agent->as_object().if_contains("multiagent"); m && m->is_object()) {
    if (const json::value* agents = m->as_object().if_contains("agents");
        agents && agents->is_array()) {
      for (const auto& a : agents->as_array()) {
        if (a.is_object()) add(a.as_object().if_contains("skills"));
      }
    }
  }
  return out;
}

std::optional<json::object> parse_object(const std::string& body) {
  std::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

// One work item: its lease, its session's events, its sandbox and the calls it runs.
class EnvironmentWorker::Item : public std::enable_shared_from_this<Item> {
 public:
  Item(EnvironmentWorker& w, json::object work)
      : w_(w),
        work_(std::move(work)),
        wake_(w.executor_),
        retry_(w.executor_),
        post_retry_(w.executor_),
        heartbeat_timer_(w.executor_),
        joined_(w.executor_) {
    work_id = string_or_empty(work_, "id");
    if (auto* d = work_.if_contains("data"); d && d->is_object()) {
      data_type_ = string_or_empty(d->as_object(), "type");
      session_id = string_or_empty(d->as_object(), "id");
    }
    const std::string token = managed::sessions_token_from_secret(string_or_empty(work_, "secret"));
    bearer_ = token.empty() ? w.options_.environment_key : token;
    redactors_ = {w.pool_->secrets()->current()->patterns, w.key_patterns_};
    if (!token.empty()) {
      try {
        redactors_.push_back(redact::Patterns::build({{"sessions-token", token}}));
      } catch (const std::exception&) {
        // Shorter than the redactor takes: nothing of it is matched, and nothing sends it.
      }
    }
  }

  std::string work_id, session_id;

  // The work item's endpoint `tail` ("/ack", "/heartbeat?…", "/stop").
  std::string path_of(const std::string& tail) const {
    return "/v1/environments/" + w_.options_.environment_id + "/work/" + work_id + tail;
  }

  asio::awaitable<void> serve();

  // Ends the item: no more calls; the stream closes, a running call is stopped.
  void end(const std::string& why) {
    if (done_) return;
    done_ = true;
    spdlog::info("work {} (session {}): {}", work_id, session_id, why);
    stream_stop_.stop();
    wake_.cancel();
    retry_.cancel();
    post_retry_.cancel();
    heartbeat_timer_.cancel();
    if (running_request_ && sandbox_) sandbox_->cancel(*running_request_);
  }

 private:
  void wake() { wake_.cancel(); }
  // Sleeps for `d` unless the item ends first.
  asio::awaitable<void> sleep(ms d) {
    retry_.expires_after(d);
    co_await retry_.async_wait(kUseTuple);
  }

  asio::awaitable<bool> extend();
  asio::awaitable<void> heartbeats(std::shared_ptr<Item> self);
  asio::awaitable<void> reader(std::shared_ptr<Item> self);
  asio::awaitable<void> catch_up(std::shared_ptr<Item> self, uint64_t connection);
  asio::awaitable<void> run_calls();
  asio::awaitable<void> run_call(managed::ToolCall call);
  asio::awaitable<void> post_result(const managed::ToolCall& call, managed::ResultContent result);
  asio::awaitable<void> stop_work();
  asio::awaitable<bool> read_session();
  asio::awaitable<void> setup_skills();
  asio::awaitable<std::string> install_skill(const json::object& skill,
                                             std::set<std::string>& names);
  void on_event(const sse::Event& e);
  bool owns(const managed::ToolCall& call) const {
    if (call.custom) return w_.toolset_->has_custom(call.name);
    for (auto name : kOwnedBuiltins) {
      if (call.name == name) return true;
    }
    return false;
  }
  void joined() {
    if (--joins_ == 0) joined_.cancel();
  }

  EnvironmentWorker& w_;
  json::object work_;
  std::string data_type_;
  std::string bearer_;
  std::vector<std::shared_ptr<const redact::Patterns>> redactors_;
  managed::SessionView view_;
  json::object session_;
  std::shared_ptr<SandboxSession> sandbox_;
  bool done_ = false;
  bool lease_lost_ = false;
  bool connected_ = false;         // the history since the stream opened has been read
  uint64_t connection_ = 0;        // counts stream connections
  asio::steady_timer wake_;        // the call runner waits on it; cancelled on every change
  asio::steady_timer retry_;       // the session read's and the reader's backoff (sleep())
  asio::steady_timer post_retry_;  // the result poster's: the two may wait at the same time
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer joined_;  // cancelled when the reader and heartbeats have returned
  int joins_ = 0;
  managed::StreamStop stream_stop_;
  std::optional<uint64_t> running_request_;
  std::string running_call_;
  Clock::time_point last_activity_ = Clock::now();
  std::string last_heartbeat_ = kNoHeartbeat;
  ms ttl_ = kDefaultTtl;
  Clock::time_point expires_ = Clock::now() + kDefaultTtl;
  Clock::time_point heartbeat_due_ = Clock::now();
};

asio::awaitable<bool> EnvironmentWorker::Item::extend() {
  for (int attempt = 0;; ++attempt) {
    const Clock::time_point sent = Clock::now();
    auto r = co_await w_.api_->call(
        "POST", path_of("/heartbeat?expected_last_heartbeat=" + query_value(last_heartbeat_)),
        bearer_, "", kRequestTimeout);
    spdlog::debug("work {}: heartbeat answered {} {}", work_id, r.status, r.body.substr(0, 200));
    if (r.ok()) {
      auto hb = parse_object(r.body);
      const json::value* extended = hb ? hb->if_contains("lease_extended") : nullptr;
      const std::string state = hb ? string_or_empty(*hb, "state") : "";
      if (!extended || !extended->is_bool()) {
        spdlog::warn("work {}: a heartbeat answer without lease_extended: {}", work_id,
                     r.body.substr(0, 200));
      } else if (!extended->as_bool() || state == "stopping" || state == "stopped") {
        end("the API asks the work to stop (heartbeat state '" + state + "')");
        co_return false;
      } else {
        const json::value* ttl = hb->if_contains("ttl_seconds");
        if (ttl && ttl->is_number())
          ttl_ = ms(static_cast<int64_t>(ttl->to_number<double>() * 1000));
        heartbeat_due_ = sent + std::clamp(ttl_ / 2, kHeartbeatMin, kHeartbeatMax);
        expires_ = sent + ttl_;
        last_heartbeat_ = string_or_empty(*hb, "last_heartbeat");
        co_return true;
      }
    } else if (r.status == 412) {
      lease_lost_ = true;
      end("lease lost: the heartbeat's precondition failed (another worker holds the work)");
      co_return false;
    } else if (r.permanent()) {
      lease_lost_ = true;
      end("lease lost: the heartbeat was refused: " + r.describe());
      co_return false;
    } else {
      spdlog::warn("work {}: heartbeat failed, trying again: {}", work_id, r.describe());
    }
    const ms delay = jitter(exponential(attempt, 1s, kHeartbeatMax) / 2,
                            exponential(attempt, 1s, kHeartbeatMax));
    if (Clock::now() + delay >= expires_) {
      lease_lost_ = true;
      end("lease assumed lost: no heartbeat succeeded within its " +
          std::to_string(ttl_.count() / 1000) + " s TTL");
      co_return false;
    }
    heartbeat_timer_.expires_after(delay);
    co_await heartbeat_timer_.async_wait(kUseTuple);
    if (done_) co_return false;
  }
}

asio::awaitable<void> EnvironmentWorker::Item::heartbeats(std::shared_ptr<Item> self) {
  (void)self;  // keeps the item alive while this runs
  while (!done_) {
    heartbeat_timer_.expires_at(heartbeat_due_);
    co_await heartbeat_timer_.async_wait(kUseTuple);
    if (done_) break;
    const bool held = co_await extend();
    if (!held) break;
  }
  joined();
}

asio::awaitable<bool> EnvironmentWorker::Item::read_session() {
  for (int attempt = 0; !done_; ++attempt) {
    auto r =
        co_await w_.api_->call("GET", "/v1/sessions/" + session_id, bearer_, "", kRequestTimeout);
    if (r.ok()) {
      auto s = parse_object(r.body);
      if (s && string_or_empty(*s, "status") == "terminated") {
        end("the session has terminated; nothing to run");
        co_return false;
      }
      if (s) session_ = std::move(*s);
      co_return true;
    }
    if (r.permanent()) {
      end("the session cannot be read: " + r.describe());
      co_return false;
    }
    const ms d = exponential(attempt, 1s, 8s);
    co_await sleep(jitter(d / 2, d));
  }
  co_return false;
}

void EnvironmentWorker::Item::on_event(const sse::Event& e) {
  std::error_code ec;
  json::value v = json::parse(e.data, ec);
  if (ec || !v.is_object()) {
    spdlog::warn("work {}: an event that is not a JSON object was skipped", work_id);
    return;
  }
  view_.apply(v.as_object(), Clock::now());
  // A result that is not ours for the call running now (the session moved on): stop it.
  if (running_request_ && view_.answered(running_call_) && sandbox_) {
    sandbox_->cancel(*running_request_);
  }
  if (view_.ended()) end("the session ended (" + string_or_empty(v.as_object(), "type") + ")");
  wake();
}

asio::awaitable<void> EnvironmentWorker::Item::catch_up(std::shared_ptr<Item> self,
                                                        uint64_t connection) {
  (void)self;  // keeps the item alive while this runs
  std::string cursor;
  for (;;) {
    std::string target = "/v1/sessions/" + session_id + "/events?limit=1000";
    if (!cursor.empty()) target += "&page=" + query_value(cursor);
    auto r = co_await w_.api_->call("GET", target, bearer_, "", kRequestTimeout);
    if (done_ || connection != connection_) co_return;
    if (!r.ok()) {
      if (r.permanent()) {
        end("the session's events cannot be read: " + r.describe());
      } else {
        spdlog::warn("work {}: reading the session's events failed, reconnecting: {}", work_id,
                     r.describe());
        stream_stop_.stop();
      }
      co_return;
    }
    auto page = parse_object(r.body);
    const json::value* data = page ? page->if_contains("data") : nullptr;
    if (!data || !data->is_array()) {
      spdlog::warn("work {}: a page of events without data, reconnecting", work_id);
      stream_stop_.stop();
      co_return;
    }
    for (const auto& ev : data->as_array()) {
      if (ev.is_object()) view_.apply(ev.as_object(), Clock::now());
    }
    cursor = string_or_empty(*page, "next_page");
    if (cursor.empty()) break;
  }
  connected_ = true;
  if (view_.ended()) end("the session has ended");
  wake();
}

asio::awaitable<void> EnvironmentWorker::Item::setup_skills() {
  std::set<std::string> names;
  for (const auto& skill : skills_of(session_)) {
    if (done_) co_return;
    const std::string id = string_or_empty(skill, "skill_id");
    std::string why = co_await install_skill(skill, names);
    if (!why.empty()) spdlog::warn("work {}: skill {} not installed: {}", work_id, id, why);
  }
}

// Downloads one skill, has the unpacker extract it into a private directory, and writes its
// files into the sandbox's /workspace/skills/NAME/. Empty when installed, else why not.
asio::awaitable<std::string> EnvironmentWorker::Item::install_skill(const json::object& skill,
                                                                    std::set<std::string>& names) {
  namespace fs = std::filesystem;
  const std::string id = string_or_empty(skill, "skill_id");
  std::string version = string_or_empty(skill, "version");
  if (version.empty()) version = "latest";
  auto v = co_await w_.api_->call(
      "GET", "/v1/skills/" + query_value(id) + "/versions/" + query_value(version), bearer_, "",
      kRequestTimeout);
  if (!v.ok()) co_return "reading its version failed: " + v.describe();
  auto meta = parse_object(v.body);
  if (!meta) co_return "its version is not a JSON object";
  std::string name = string_or_empty(*meta, "name");
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.erase(0, 1);
  name = fs::path(name).filename().string();
  if (name.empty() || name == "." || name == "..") name = id;
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    co_return "its name '" + name + "' is not a directory name";
  }
  if (!names.insert(name).second) co_return "an earlier skill has the name '" + name + "'";
  const std::string version_id =
      string_or_empty(*meta, "id").empty() ? version : string_or_empty(*meta, "id");
  auto content = co_await w_.api_->call(
      "GET", "/v1/skills/" + query_value(id) + "/versions/" + query_value(version_id) + "/content",
      bearer_, "", kRequestTimeout);
  if (!content.ok()) co_return "downloading it failed: " + content.describe();
  // A directory of this worker's own (0700) for the archive and what the unpacker makes of it.
  std::string work = w_.options_.pool.runtime_dir + "/airlock-skill-XXXXXX";
  if (!::mkdtemp(work.data())) co_return std::string("mkdtemp: ") + std::strerror(errno);
  struct Remove {
    std::string dir;
    ~Remove() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove{work};
  const std::string archive = work + "/archive";
  {
    const int fd = ::open(archive.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) co_return "writing the archive: " + std::string(std::strerror(errno));
    size_t done = 0;
    while (done < content.body.size()) {
      const ssize_t n = ::write(fd, content.body.data() + done, content.body.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    if (done != content.body.size()) co_return "writing the archive failed";
  }
  const std::string staged = work + "/files";
  const std::string refused = co_await extract_skill_archive(archive, staged);
  if (!refused.empty()) co_return "refused: " + refused;
  size_t files = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staged, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    std::string bytes;
    {
      const int fd = ::open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;
      char buf[1 << 16];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        bytes.append(buf, static_cast<size_t>(n));
      ::close(fd);
    }
    toolbox::Request write;
    write.op = toolbox::Op::kWrite;
    write.path = "/workspace/skills/" + name + "/" + fs::relative(it->path(), staged).string();
    write.content = base64(bytes, false, true);
    write.content_base64 = true;
    write.executable = (it->status(ec).permissions() & fs::perms::owner_exec) != fs::perms::none;
    write.id = sandbox_->allocate_id();
    auto reply = co_await sandbox_->call(std::move(write), {});
    if (!reply) co_return "the sandbox ended: " + sandbox_->ended_reason();
    if (reply->is_error) co_return "writing it into the sandbox: " + reply->text;
    ++files;
  }
  spdlog::info("work {}: skill {} installed in /workspace/skills/{} ({} file(s))", work_id, id,
               name, files);
  co_return std::string();
}

asio::awaitable<void> EnvironmentWorker::Item::reader(std::shared_ptr<Item> self) {
  ms delay = 500ms;
  const std::string target = "/v1/sessions/" + session_id + "/events/stream";
  while (!done_) {
    const uint64_t connection = ++connection_;
    connected_ = false;
    bool got_events = false;
    auto on_open = [this, self, connection] {
      asio::co_spawn(w_.executor_, catch_up(self, connection),
                     [](std::exception_ptr e) { log_failure(e, "reading a session's events"); });
    };
    auto on_event = [this, &got_events](sse::Event e) {
      got_events = true;
      this->on_event(e);
    };
    stream_stop_ = managed::StreamStop{};
    auto r = co_await w_.api_->stream(target, bearer_, kStreamConnectTimeout, on_open, on_event,
                                      stream_stop_);
    connected_ = false;
    if (done_) break;
    if (r.permanent()) {
      end("the session's event stream was refused: " + r.describe());
      break;
    }
    if (got_events) delay = 500ms;
    spdlog::warn("work {}: the session's event stream ended ({}); reconnecting", work_id,
                 r.describe());
    co_await sleep(jitter(delay / 2, delay));
    delay = std::min<ms>(delay * 2, 10s);
  }
  joined();
}

asio::awaitable<void> EnvironmentWorker::Item::run_calls() {
  while (!done_) {
    if (connected_) {
      bool ran = false;
      for (auto& call : view_.runnable()) {
        view_.take(call.id);
        if (!owns(call)) {
          spdlog::info("work {}: '{}' is not a tool of this worker; left for its owner", work_id,
                       call.name);
          continue;
        }
        co_await run_call(std::move(call));
        last_activity_ = Clock::now();
        ran = true;
        break;
      }
      if (ran) continue;
    }
    const auto idle = view_.idle_since();
    if (connected_ && idle) {
      const auto deadline = std::max(*idle, last_activity_) + w_.options_.max_idle;
      if (Clock::now() >= deadline) {
        end("the session was idle after its turn for " +
            std::to_string(w_.options_.max_idle.count() / 1000) + " s (--max-idle)");
        break;
      }
      wake_.expires_at(deadline);
    } else {
      wake_.expires_at(Clock::time_point::max());
    }
    co_await wake_.async_wait(kUseTuple);
  }
}

asio::awaitable<void> EnvironmentWorker::Item::run_call(managed::ToolCall call) {
  spdlog::info("work {}: running {} ({})", work_id, call.name, call.id);
  managed::ResultContent result;
  toolbox::Request request;
  std::string error;
  const json::value input = call.input.is_null() ? json::value(json::object{}) : call.input;
  if (!w_.toolset_->to_request(call.name, input, request, error)) {
    result = managed::error_content(error, redactors_);
  } else {
    request.style = toolbox::Style::kManagedAgents;
    request.id = sandbox_->allocate_id();
    running_request_ = request.id;
    running_call_ = call.id;
    w_.pool_->call_started();
    auto reply = co_await sandbox_->call(std::move(request), {});
    w_.pool_->call_finished();
    running_request_.reset();
    if (lease_lost_) co_return;  // another worker may hold the session now: post nothing
    if (view_.answered(call.id)) co_return;
    if (!reply) {
      result = managed::error_content("the sandbox of this session ended while '" + call.name +
                                          "' ran (" + sandbox_->ended_reason() +
                                          "); its workspace and shell are gone",
                                      redactors_);
      co_await post_result(call, std::move(result));
      end("the session's sandbox ended: " + sandbox_->ended_reason());
      co_return;
    }
    result = managed::result_content(call.name, *reply, redactors_);
  }
  ++w_.calls_;
  w_.redactions_ += result.redactions;
  if (result.redactions) {
    spdlog::info("work {}: {} secret occurrence(s) redacted from the result of {}", work_id,
                 result.redactions, call.name);
  }
  co_await post_result(call, std::move(result));
}

asio::awaitable<void> EnvironmentWorker::Item::post_result(const managed::ToolCall& call,
                                                           managed::ResultContent result) {
  auto event_of = [&call](managed::ResultContent& r) {
    json::object e{{"type", call.custom ? "user.custom_tool_result" : "user.tool_result"},
                   {call.custom ? "custom_tool_use_id" : "tool_use_id", call.id},
                   {"is_error", r.is_error},
                   {"content", std::move(r.content)}};
    return json::serialize(json::object{{"events", json::array{std::move(e)}}});
  };
  std::string body = event_of(result);
  bool replaced = false;
  const auto began = Clock::now();
  for (int attempt = 0;; ++attempt) {
    auto r = co_await w_.api_->call("POST", "/v1/sessions/" + session_id + "/events", bearer_, body,
                                    kRequestTimeout);
    if (r.ok()) co_return;
    if ((r.status == 400 || r.status == 413) && !replaced) {
      // The API refused the result itself (too large, a shape it does not take): the agent is
      // told so, rather than waiting for a result that never comes.
      replaced = true;
      auto refused = managed::error_content(
          "The API refused the result of tool '" + call.name + "': " + r.error, redactors_);
      body = event_of(refused);
      continue;
    }
    if (r.permanent()) {
      spdlog::error("work {}: the result of {} was refused: {}", work_id, call.name, r.describe());
      co_return;
    }
    if (lease_lost_ || Clock::now() - began > ttl_) {
      spdlog::error("work {}: gave up posting the result of {}: {}", work_id, call.name,
                    r.describe());
      co_return;
    }
    spdlog::warn("work {}: posting the result of {} failed, trying again: {}", work_id, call.name,
                 r.describe());
    const ms d = exponential(attempt, 1s, 30s);
    post_retry_.expires_after(jitter(d / 2, d));
    co_await post_retry_.async_wait(kUseTuple);  // end() cuts the wait short, not the retries
  }
}

asio::awaitable<void> EnvironmentWorker::Item::stop_work() {
  std::string bearer = bearer_;
  bool force = true;
  for (int attempt = 0; attempt < kStopAttempts; ++attempt) {
    // (Built before the co_await: GCC 12 mishandles initializer lists inside one.)
    std::string body = force ? R"({"force":true})" : R"({"force":false})";
    auto r =
        co_await w_.api_->call("POST", path_of("/stop"), bearer, std::move(body), kStopTimeout);
    if (r.ok() || r.status == 409) co_return;  // 409: already stopped
    if (r.status == 401 && bearer != w_.options_.environment_key) {
      // The item's token is no longer taken: the environment key may still stop it, gently.
      bearer = w_.options_.environment_key;
      force = false;
      continue;
    }
    if (r.permanent()) {
      spdlog::error("work {}: stopping the work failed: {}", work_id, r.describe());
      co_return;
    }
    asio::steady_timer t(w_.executor_);
    t.expires_after(exponential(attempt, 500ms, 8s));
    co_await t.async_wait(kUseTuple);
  }
  spdlog::error(
      "work {}: stopping the work failed {} times; the API reclaims it when its "
      "lease runs out",
      work_id, kStopAttempts);
}

asio::awaitable<void> EnvironmentWorker::Item::serve() {
  auto self = shared_from_this();
  // The lease first: nothing is downloaded or started for work this worker may not hold.
  const bool held = co_await extend();
  if (!held) {
    if (!lease_lost_) co_await stop_work();
    co_return;
  }
  ++joins_;
  asio::co_spawn(w_.executor_, heartbeats(self),
                 [](std::exception_ptr e) { log_failure(e, "a work item's heartbeats"); });
  if (data_type_ != "session" || session_id.empty()) {
    end("not a session's work (type '" + data_type_ + "'): skipped");
  } else if (const bool readable = co_await read_session(); readable) {
    std::string problem;
    bool busy = false;
    sandbox_ = w_.pool_->acquire(problem, busy);
    if (!sandbox_) {
      end("no sandbox for the session: " + problem);
    } else {
      spdlog::info("work {}: serving session {} ({} of {} sandboxes in use)", work_id, session_id,
                   w_.pool_->in_use(), w_.pool_->config().max_sessions);
      co_await setup_skills();
      ++joins_;
      asio::co_spawn(w_.executor_, reader(self),
                     [](std::exception_ptr e) { log_failure(e, "a session's event stream"); });
      co_await run_calls();
    }
  }
  end("done");
  while (joins_ > 0) {
    joined_.expires_at(Clock::time_point::max());
    co_await joined_.async_wait(kUseTuple);
  }
  if (sandbox_) {
    sandbox_->close();
    sandbox_.reset();
    w_.pool_->release();
  }
  if (lease_lost_) {
    ++w_.leases_lost_;
    spdlog::info("work {}: lease lost; not stopping the work", work_id);
  } else {
    co_await stop_work();
  }
}

EnvironmentWorker::EnvironmentWorker(asio::any_io_executor ex, EnvironmentWorkerOptions options)
    : executor_(ex), options_(std::move(options)), wake_(ex) {
  if (options_.environment_id.empty()) throw std::invalid_argument("no environment id");
  if (options_.environment_key.empty()) throw std::invalid_argument("no environment key");
  api_ = std::make_unique<managed::ApiClient>(ex, options_.api);
  pool_ = std::make_unique<SandboxPool>(ex, options_.pool);
  ToolsetLimits limits;
  limits.max_timeout = options_.pool.config.resources.wall_time;
  limits.default_timeout = std::min(limits.default_timeout, limits.max_timeout);
  toolset_ = std::make_unique<Toolset>(options_.pool.config.custom_tools, limits);
  try {
    key_patterns_ =
        redact::Patterns::build({{"ANTHROPIC_ENVIRONMENT_KEY", options_.environment_key}});
  } catch (const std::exception&) {
    // A key shorter than the redactor takes cannot be told from ordinary text; it is still
    // never sent anywhere but the API.
  }
  if (options_.worker_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    options_.worker_id = std::string(host) + "-" + random_hex(8);
  }
}

EnvironmentWorker::~EnvironmentWorker() = default;

void EnvironmentWorker::start() {
  pool_->start();
  if (!options_.metrics_addr.empty()) {
    metrics_ = metrics_listener(executor_, options_.metrics_addr,
                                [this](HttpRequest r) { return metrics_handler(std::move(r)); });
  }
}

asio::awaitable<HttpResponse> EnvironmentWorker::metrics_handler(HttpRequest req) {
  if (req.path() == "/ready") {
    const bool sandboxes = pool_->status() == SandboxPool::Status::kOk;
    if (sandboxes && poll_error_.empty() && !stopping_) {
      co_return HttpResponse::json(200, R"({"ready":true})");
    }
    const std::string why = !sandboxes ? pool_->error() : stopping_ ? "stopping" : poll_error_;
    co_return HttpResponse::json(
        503, json::serialize(json::object{{"ready", false}, {"last_error", why}}));
  }
  if (req.path() != "/metrics") {
    co_return HttpResponse::error(404, "not_found", "only /ready and /metrics are served here");
  }
  Metrics m;
  m.add("airlock_worker_sessions_in_use", kGauge, "Work items being served now.", items_.size());
  m.add("airlock_worker_sessions_limit", kGauge, "max_sessions.",
        options_.pool.config.max_sessions);
  m.add("airlock_worker_work_claimed_total", kCounter, "Work items claimed (polled and acked).",
        claimed_);
  m.add("airlock_worker_work_served_total", kCounter, "Work items finished.", served_);
  m.add("airlock_worker_leases_lost_total", kCounter, "Work items whose lease was lost.",
        leases_lost_);
  m.add("airlock_worker_poll_failures_total", kCounter, "Polls that failed.", poll_failures_);
  m.add("airlock_worker_calls_total", kCounter, "Tool calls run.", calls_);
  m.add("airlock_worker_redactions_total", kCounter,
        "Secret occurrences redacted from tool results.", redactions_);
  m.add("airlock_worker_warm_pool", kGauge, "Sandboxes started ahead.", pool_->warm());
  co_return m.response();
}

asio::awaitable<void> EnvironmentWorker::nap(ms d) {
  wake_.expires_after(d);
  co_await wake_.async_wait(kUseTuple);
}

void EnvironmentWorker::item_ended(Item* item) {
  items_.erase(item);
  wake_.cancel();
}

asio::awaitable<void> EnvironmentWorker::serve(std::shared_ptr<Item> item) {
  co_await item->serve();
  ++served_;
  item_ended(item.get());
}

asio::awaitable<void> EnvironmentWorker::run() {
  const auto& c = options_.pool.config;
  spdlog::info(
      "sandbox-agent {} worker {} for environment {} at {}: sandbox '{}', image {}, "
      "max_sessions {}",
      AIRLOCK_VERSION, options_.worker_id, options_.environment_id, options_.api.base_url, c.name,
      c.image, c.max_sessions);
  if (metrics_) {
    asio::co_spawn(executor_, metrics_->serve(),
                   [](std::exception_ptr e) { log_failure(e, "the metrics listener"); });
  }
  asio::co_spawn(executor_, pool_->check([this] { wake_.cancel(); }),
                 [](std::exception_ptr e) { log_failure(e, "the sandbox check"); });
  const std::string poll =
      "/v1/environments/" + options_.environment_id + "/work/poll?block_ms=999";
  int failures = 0;
  bool idle_logged = false;
  while (!stopping_) {
    if (options_.once && (served_ > 0 || !items_.empty())) {
      if (items_.empty()) co_return;
      co_await nap(1h);
      continue;
    }
    if (pool_->status() != SandboxPool::Status::kOk || items_.size() >= c.max_sessions) {
      co_await nap(1h);  // a sandbox check or an item's end wakes it
      continue;
    }
    std::vector<std::pair<std::string, std::string>> headers;
    headers.emplace_back("Anthropic-Worker-ID", options_.worker_id);
    auto r = co_await api_->call("GET", poll, options_.environment_key, "", kRequestTimeout,
                                 std::move(headers));
    if (stopping_) break;
    if (!r.ok()) {
      ++poll_failures_;
      poll_error_ = "polling for work failed: " + r.describe();
      if (r.permanent()) {
        spdlog::critical("the API refused to give this worker work: {}", r.describe());
        exit_code_ = 1;
        co_return;
      }
      const ms d = exponential(++failures, 1s, 60s) + jitter(0ms, 1s);
      spdlog::warn("polling for work failed ({}); trying again in {} ms", r.describe(), d.count());
      co_await nap(d);
      continue;
    }
    failures = 0;
    poll_error_.clear();
    std::optional<json::object> work;
    if (r.status != 204) work = parse_object(r.body);
    if (!work) {
      if (r.status != 204 && r.body.find_first_not_of(" \t\r\n") != std::string::npos &&
          r.body.find("null") == std::string::npos) {
        spdlog::warn("the work poll answered something that is not a work item: {}",
                     r.body.substr(0, 200));
      }
      if (!idle_logged) spdlog::info("idle; polling for work");
      idle_logged = true;
      co_await nap(jitter(1s, 3s));
      continue;
    }
    idle_logged = false;
    const std::string id = string_or_empty(*work, "id");
    if (id.empty()) {
      spdlog::warn("a work item without an id was skipped");
      continue;
    }
    auto item = std::make_shared<Item>(*this, std::move(*work));
    auto ack = co_await api_->call("POST", item->path_of("/ack"), options_.environment_key, "",
                                   kRequestTimeout);
    if (!ack.ok()) {
      spdlog::warn("work {}: the ack failed ({}); stopping it", id, ack.describe());
      std::string force = R"({"force":true})";
      co_await api_->call("POST", item->path_of("/stop"), options_.environment_key,
                          std::move(force), kStopTimeout);
      co_await nap(exponential(++failures, 1s, 60s));
      continue;
    }
    spdlog::info("claimed work {} (session {})", id, item->session_id);
    ++claimed_;
    items_.emplace(item.get(), item);
    asio::co_spawn(executor_, serve(item),
                   [](std::exception_ptr e) { log_failure(e, "a work item"); });
  }
}

asio::awaitable<void> EnvironmentWorker::stop() {
  stopping_ = true;
  wake_.cancel();
  if (metrics_) metrics_->stop();
  for (auto& [p, item] : items_) item->end("sandbox-agent is stopping");
  // Each item's end (item_ended) wakes this; an item still stopping its work after 30 s is
  // left to the API, which reclaims it when its lease runs out.
  const auto until = Clock::now() + 30s;
  while (!items_.empty() && Clock::now() < until) {
    wake_.expires_at(until);
    co_await wake_.async_wait(kUseTuple);
  }
  pool_->stop();
  co_await pool_->wait_all(10s);
}

}  // namespace airlock::sandbox
