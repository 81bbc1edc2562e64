#include "common/mcp_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/json/serialize.hpp>

#include "common/jsonrpc.h"

namespace airlock {
namespace json = boost::json;

// One agent session: one `mcp` stream and the backend session behind it.
struct McpService::Session {
  std::string server, agent;
  // What the bytes being written belong to, for redaction events: the stream's redaction
  // observer runs inside writer->push(), right after `current_tool` is set.
  std::string current_tool;
  std::map<std::string, std::string> tool_of;  // agent request id -> tool (or method)
  std::shared_ptr<StreamWriter> writer;
  bool ended = false;  // this side of the stream is ended: nothing more is written
};

McpService::McpService(asio::any_io_executor ex, std::string program, McpBackend& backend)
    : executor_(ex), program_(std::move(program)), backend_(backend), flush_timer_(ex) {}

McpService::~McpService() = default;

void McpService::redact_links(ConnectorOptions& options,
                              std::shared_ptr<secrets::SecretStore> store) {
  options.redaction = [store = std::move(store)] {
    auto set = store->current();
    return set ? set->patterns : nullptr;
  };
  options.on_redacted = [this](uint32_t, const std::string& secret, uint64_t n) {
    record_redaction(secret, "", "", "", n);
  };
}

void McpService::on_stream(std::shared_ptr<LinkStream> stream) {
  const std::string kind = proto::stream_kind_of(stream->meta());
  if (proto::parse_stream_kind(kind) != proto::StreamKind::kMcp) {
    ++stats_.streams_refused;
    spdlog::warn("refused stream {} of unsupported kind '{}'", stream->id(), kind);
    stream->reset(proto::ResetCode::kRefused,
                  program_ + " does not serve stream kind '" + kind + "'");
    return;
  }
  proto::McpStreamOpen open;
  std::string error;
  if (!proto::parse_mcp_open(stream->meta(), open, error)) {
    ++stats_.streams_refused;
    spdlog::warn("refused stream {}: {}", stream->id(), error);
    stream->reset(proto::ResetCode::kProtocolError, error);
    return;
  }
  if (const std::string why = backend_.refuse(open); !why.empty()) {
    ++stats_.streams_refused;
    spdlog::warn("refused stream {}: {}", stream->id(), why);
    stream->reset(proto::ResetCode::kRefused, why);
    return;
  }
  asio::co_spawn(executor_, serve(stream, std::move(open)),
                 [stream, program = program_](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::error("stream {} failed: {}", stream->id(), ex.what());
                     stream->reset(proto::ResetCode::kInternalError, program + " internal error");
                   }
                 });
}

asio::awaitable<void> McpService::serve(std::shared_ptr<LinkStream> stream,
                                        proto::McpStreamOpen open) {
  auto ctx = std::make_shared<Session>();
  ctx->server = open.server;
  ctx->agent = open.agent;
  stream->set_redaction_observer([this, ctx](const std::string& secret, uint64_t n) {
    record_redaction(secret, ctx->server, ctx->current_tool, ctx->agent, n);
  });
  auto writer = std::make_shared<StreamWriter>(stream);
  ctx->writer = writer;
  sessions_.insert(ctx);
  McpBackend::Emit emit = [this, ctx](json::object message, std::optional<json::value> related) {
    ctx->current_tool.clear();
    // A response answers the request whose id it carries (backends also pass that id as
    // `related`); a server's own message relates to the request it belongs to.
    const bool response = !message.contains("method");
    const json::value* id = related ? &*related : nullptr;
    if (response && message.contains("id")) id = message.if_contains("id");
    bool answered = false;
    if (id) {
      auto it = ctx->tool_of.find(jsonrpc::id_key(*id));
      if (it != ctx->tool_of.end()) {
        ctx->current_tool = it->second;
        if (response) {
          ctx->tool_of.erase(it);
          answered = true;
        }
      }
    }
    if (ctx->ended) return;
    // The message is redacted on its own, so that its line can say how much was replaced
    // (airlockd's audit record of the call counts it); the envelope around it holds no secret.
    uint64_t redactions = 0;
    const std::string clean = ctx->writer->redact(json::serialize(message), redactions);
    ctx->writer->push_redacted(proto::serialize_line(clean, related, redactions));
    // Stopping: a session ends once its last call is answered.
    if (answered && stopping_) end_if_idle(*ctx);
  };
  McpBackend::End end = [ctx](proto::ResetCode code, std::string reason) {
    if (ctx->ended) return;
    ctx->ended = true;
    ctx->writer->reset_after(code, std::move(reason));
  };
  std::string problem;
  const size_t max_message = backend_.max_message(open.server);
  auto session = backend_.open_session(open, emit, std::move(end), problem);
  if (!session) {
    spdlog::warn("stream {}: agent '{}' refused server '{}': {}", stream->id(), open.agent,
                 open.server, problem);
  }
  ++stats_.sessions_total;
  ++stats_.sessions_open;
  spdlog::debug("stream {}: agent '{}' session with server '{}'", stream->id(), open.agent,
                open.server);
  jsonrpc::LineSplitter lines(max_message);
  for (;;) {
    auto chunk = co_await stream->read();
    if (!chunk || chunk->empty()) break;  // reset, link lost, or airlockd ended the session
    if (!lines.feed(*chunk)) {
      stream->reset(proto::ResetCode::kProtocolError,
                    "a message exceeds the server's max_message (" + std::to_string(max_message) +
                        " bytes)");
      break;
    }
    while (auto line = lines.next()) {
      std::string error;
      auto msg = jsonrpc::parse(*line, error);
      if (!msg) {
        spdlog::warn("stream {}: airlockd sent an invalid message ({}); ignored", stream->id(),
                     error);
        continue;
      }
      if (msg->kind == jsonrpc::Kind::kRequest) {
        std::string label(msg->method());
        if (const auto* params = msg->params(); params && msg->method() == "tools/call") {
          if (auto* n = params->if_contains("name"); n && n->is_string()) {
            label = std::string(n->as_string());
          }
        }
        ctx->tool_of[jsonrpc::id_key(msg->id())] = std::move(label);
        if (!session) {
          emit(jsonrpc::make_error(msg->id(), jsonrpc::kUpstreamUnavailable, problem),
               std::nullopt);
          continue;
        }
      }
      if (session) session->send(std::move(msg->body));
    }
  }
  if (session) session->close();
  --stats_.sessions_open;
  sessions_.erase(ctx);
  ctx->ended = true;
  writer->end();
}

void McpService::end_if_idle(Session& s) {
  if (s.ended || !s.tool_of.empty()) return;
  s.ended = true;
  s.writer->end();  // airlockd ends its side in turn, which ends serve()'s loop
}

void McpService::stop() {
  stopping_ = true;
  for (const auto& s : std::set<std::shared_ptr<Session>>(sessions_)) end_if_idle(*s);
  flush_redactions();
}

std::shared_ptr<Link> McpService::usable_link() const {
  if (!connector_) return nullptr;
  for (const auto& l : connector_->links()) {
    if (!l->closed() && !l->draining()) return l;
  }
  return nullptr;
}

void McpService::on_link_up(const std::shared_ptr<Link>& link) {
  if (!link->closed() && !link->draining()) {
    auto s = link->open(proto::stream_meta(proto::StreamKind::kInventory),
                        proto::serialize(backend_.inventory()), true);
    if (!s) spdlog::warn("could not send the inventory to airlockd: {}", s.error().message());
  }
  flush_redactions();
}

void McpService::inventory_changed() {
  if (!connector_) return;
  const std::string body = proto::serialize(backend_.inventory());
  const std::string meta = proto::stream_meta(proto::StreamKind::kInventory);
  for (const auto& link : connector_->links()) {
    if (link->closed() || link->draining()) continue;
    auto s = link->open(meta, body, true);
    if (!s) spdlog::warn("could not send the inventory to airlockd: {}", s.error().message());
  }
}

void McpService::record_redaction(const std::string& secret, const std::string& server,
                                  const std::string& tool, const std::string& agent,
                                  uint64_t count) {
  stats_.redactions_total += count;
  // Bounded: past kMaxRedactionKeys distinct keys in one batch, counts are kept per secret only.
  RedactionKey key{secret, server, tool, agent};
  if (redactions_.size() >= kMaxRedactionKeys && !redactions_.count(key)) {
    key = {secret, "(many)", "", ""};
  }
  redactions_[key] += count;
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  flush_timer_.expires_after(std::chrono::milliseconds(200));
  flush_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: stop() flushed, or the service is going away
    flush_scheduled_ = false;
    flush_redactions();
  });
}

void McpService::flush_redactions() {
  // Logged once per batch (a server echoing a secret in every message must not flood the log),
  // then sent; what cannot be sent yet waits, merged, for a link.
  for (const auto& [key, count] : redactions_) {
    const auto& [secret, server, tool, agent] = key;
    spdlog::warn("redacted {} occurrence(s) of secret '{}' from what {} sent{}{}", count, secret,
                 server.empty() ? program_ : "server '" + server + "'",
                 tool.empty() ? "" : " (" + tool + ")",
                 agent.empty() ? "" : " to agent '" + agent + "'");
    if (unsent_redactions_.size() < kMaxRedactionKeys || unsent_redactions_.count(key)) {
      unsent_redactions_[key] += count;
    } else {
      unsent_redactions_[{secret, "(many)", "", ""}] += count;
    }
  }
  redactions_.clear();
  if (unsent_redactions_.empty()) return;
  auto link = usable_link();
  if (!link) return;
  std::vector<proto::RedactionEvent> events;
  for (const auto& [key, count] : unsent_redactions_) {
    const auto& [secret, server, tool, agent] = key;
    events.push_back(
        {.secret = secret, .server = server, .tool = tool, .agent = agent, .count = count});
  }
  auto s = link->open(proto::stream_meta(proto::StreamKind::kEvents), proto::serialize(events),
                      true);
  if (!s) {
    spdlog::warn("could not send redaction events to airlockd: {}", s.error().message());
    return;
  }
  unsent_redactions_.clear();
}

}  // namespace airlock
