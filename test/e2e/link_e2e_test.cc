// End-to-end tests of the connector link with airlockd and connectors in-process, over real
// TLS on loopback: many streams, flow control under a stalled reader, rogue peers, token scope,
// version refusal, dead-peer detection, drain and revocation.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/config_util.h"
#include "common/dialer.h"
#include "common/frame_codec.h"
#include "common/http_server.h"
#include "common/redactor.h"
#include "test/e2e/harness.h"

namespace airlock::test {
namespace {
namespace json = boost::json;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(kTuple);
}

struct Tally {
  int ok = 0;
  int done = 0;
  std::string first_failure;
};

asio::awaitable<void> one_exchange(std::shared_ptr<LinkStream> s, std::string body, Tally* t) {
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, [s, body]() -> asio::awaitable<void> { co_await s->write(body, true); },
                 asio::detached);
  auto back = co_await s->read_all(body.size() + 1);
  if (back && *back == body) {
    ++t->ok;
  } else if (t->first_failure.empty()) {
    t->first_failure = "stream " + std::to_string(s->id()) + ": " +
                       (back ? "got " + std::to_string(back->size()) + " of " +
                                   std::to_string(body.size()) + " bytes, or different bytes"
                             : back.error().message() + " " + s->reset_reason());
  }
  ++t->done;
}

// Opens `n` echo streams at once on tunnel `name` and checks every byte comes back.
asio::awaitable<Tally> exchange_many(controlplane::ControlPlane* cp, std::string name, int n,
                                     std::function<size_t(int)> size_of) {
  auto ex = co_await asio::this_coro::executor;
  Tally t;
  int opened = 0;
  for (int i = 0; i < n; ++i) {
    auto s = cp->open_stream("tunnel", name, R"({"kind":"echo"})", "", false);
    if (!s) {
      t.first_failure = "open failed: " + s.error().message();
      break;
    }
    ++opened;
    asio::co_spawn(ex, one_exchange(*s, payload(i, size_of(i)), &t), asio::detached);
  }
  while (t.done < opened) co_await sleep_for(10ms);
  co_return t;
}

TEST(LinkE2E, ThousandConcurrentStreamsOverOneLinkArriveIntactAndInOrder) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  // Sizes from 1 byte to 1 MiB: 1, 2, 4, ... 64 KiB, with every 100th stream 1 MiB.
  auto size_of = [](int i) -> size_t { return i % 100 == 99 ? (1u << 20) : (1u << (i % 17)); };
  Tally t = a.thread().run(exchange_many(&a.cp(), "t", 1000, size_of), 240s);
  EXPECT_EQ(t.ok, 1000) << t.first_failure;
}

// Everything a connector sends passes its redactor: here an echo connector sends back every
// encoded form of a secret, each split at every offset across two writes (so across two
// DATA frames and two redactor calls), and none of it may reach airlockd.
TEST(LinkE2E, ConnectorRedactsEverySecretItSendsEvenSplitAcrossWrites) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  const std::string secret = "S3cr3t/Value+0123456789=\"q\"";
  auto patterns = redact::Patterns::build({{"api-key", secret}});
  auto options = connector_options(a, token, 1);
  std::atomic<uint64_t> reported{0};
  options.redaction = [patterns] { return patterns; };
  options.on_redacted = [&](uint32_t, const std::string& name, uint64_t n) {
    if (name == "api-key") reported += n;
  };
  InProcessConnector conn(options, test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  const auto forms = redact::encoded_forms(secret);
  size_t occurrences = 0;
  for (const auto& f : forms) occurrences += f.size() - 1;
  auto back = a.thread().run([&]() -> asio::awaitable<Result<std::string>> {
    auto s = a.cp().open_stream("tunnel", "t", R"({"kind":"echo"})", "", false);
    if (!s) co_return s.error();
    auto stream = *s;
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, [stream, forms]() -> asio::awaitable<void> {
      for (const auto& f : forms) {
        for (size_t k = 1; k < f.size(); ++k) {
          co_await stream->write("<" + f.substr(0, k), false);
          co_await sleep_for(1ms);  // the echo sends the first piece back on its own
          co_await stream->write(f.substr(k) + ">", false);
        }
      }
      co_await stream->write("", true);
    }, asio::detached);
    co_return co_await stream->read_all(16 << 20);
  }(), 120s);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  for (const auto& f : forms) {
    EXPECT_EQ(back->find(f), std::string::npos) << "leaked form " << f;
  }
  size_t markers = 0;
  for (size_t at = back->find("<[REDACTED:api-key]>"); at != std::string::npos;
       at = back->find("<[REDACTED:api-key]>", at + 1)) {
    ++markers;
  }
  EXPECT_EQ(markers, occurrences);
  EXPECT_EQ(back->size(), occurrences * std::string("<[REDACTED:api-key]>").size());
  EXPECT_TRUE(eventually([&] { return reported.load() == occurrences; }, 5s)) << reported.load();
}

// The connector's words outside stream data pass the redactor too: its hello (here the
// software string) and the reasons it gives for a RESET.
TEST(LinkE2E, ConnectorRedactsItsHelloAndResetReasons) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  const std::string secret = "hello-and-reset-secret-99";
  auto patterns = redact::Patterns::build({{"api-key", secret}});
  auto options = connector_options(a, token, 1);
  options.hello.software = "test-connector/" + secret;
  options.redaction = [patterns] { return patterns; };
  InProcessConnector conn(options, test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  const std::string status = json::serialize(a.status("tunnel", "t"));
  EXPECT_EQ(status.find(secret), std::string::npos) << status;
  EXPECT_NE(status.find("test-connector/[REDACTED:api-key]"), std::string::npos) << status;
  auto reason = a.thread().run([&]() -> asio::awaitable<std::string> {
    auto s = a.cp().open_stream("tunnel", "t", R"({"kind":"reset","note":")" + secret + "\"}",
                                "", false);
    if (!s) co_return "open failed";
    auto r = co_await (*s)->read();
    co_return r ? std::string("not reset") : (*s)->reset_reason();
  }());
  EXPECT_EQ(reason.find(secret), std::string::npos) << reason;
  EXPECT_NE(reason.find("[REDACTED:api-key]"), std::string::npos) << reason;
}

// Leak events from a tunnel are stored for the audit log; lines that are not well-formed
// events are skipped, and the well-formed ones around them are kept.
TEST(LinkE2E, LeakEventsAreStoredAndMalformedLinesSkipped) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  const std::string body =
      R"({"type":"secret_redacted","secret":"api","server":"s","tool":"find","agent":"bot","count":3})"
      "\nnot json\n"
      R"({"type":"secret_redacted","secret":"api","server":"s","tool":"find","agent":"bot","count":-1})"
      "\n"
      R"({"type":"other","secret":"api","server":"s","tool":"t","agent":"a","count":1})"
      "\n"
      R"({"type":"secret_redacted","secret":"key2","server":"s2","tool":"","agent":"","count":1})"
      "\n";
  conn.thread().run([&]() -> asio::awaitable<void> {
    auto links = conn.connector().links();
    if (!links.empty()) (void)links.front()->open(R"({"kind":"events"})", body, true);
    co_return;
  }());
  json::array events;
  ASSERT_TRUE(eventually(
      [&] {
        auto r = http_call(a.admin(), "GET", "/v1/audit?type=secret_redacted&limit=10");
        if (r.status != 200) return false;
        events = json::parse(r.body).at("records").as_array();
        return events.size() >= 2;
      },
      5s));
  ASSERT_EQ(events.size(), 2u) << json::serialize(events);
  const std::string all = json::serialize(events);
  EXPECT_NE(all.find(R"("redactions":3)"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("connector":"tunnel/t")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("actor":"bot")"), std::string::npos) << all;
  EXPECT_NE(all.find("key2"), std::string::npos) << all;
}

TEST(LinkE2E, OpenCarryingMoreThanTheWriteBufferDeliversEveryByte) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  const std::string body = payload(7, 3 << 20);  // 3 MiB handed over in the open call
  auto back = a.thread().run([&]() -> asio::awaitable<Result<std::string>> {
    auto s = a.cp().open_stream("tunnel", "t", R"({"kind":"echo"})", std::string(body), true);
    if (!s) co_return s.error();
    co_return co_await (*s)->read_all(body.size() + 1);
  }());
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_TRUE(*back == body);
}

TEST(LinkE2E, StalledReaderIsFlowControlledAndSmallCallsStillComplete) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));

  struct Big {
    size_t written = 0;
    bool done = false;
    std::shared_ptr<LinkStream> stream;
  };
  auto big = std::make_shared<Big>();
  a.thread().call([&] {
    auto s = a.cp().open_stream("tunnel", "t", R"({"kind":"stall"})", "", false);
    EXPECT_TRUE(s.has_value());
    big->stream = *s;
    asio::co_spawn(a.thread().io(), [big]() -> asio::awaitable<void> {
      const std::string chunk(1 << 20, 'x');
      for (int i = 0; i < 100; ++i) {  // 100 MiB
        if (co_await big->stream->write(chunk, false)) break;
        big->written += chunk.size();
      }
      big->done = true;
    }, asio::detached);
    return 0;
  });
  // While the 100 MiB stream is stuck, 200 small calls on the same link complete.
  Tally t = a.thread().run(exchange_many(&a.cp(), "t", 200, [](int) { return size_t{100}; }), 60s);
  EXPECT_EQ(t.ok, 200) << t.first_failure;
  const size_t written = a.thread().call([&] { return big->written; });
  EXPECT_FALSE(a.thread().call([&] { return big->done; }));
  // What left the writer is bounded by the window plus local buffering, not 100 MiB.
  EXPECT_LE(written, size_t{4} << 20);
  a.thread().call([&] {
    big->stream->reset(proto::ResetCode::kCancel, "test over");
    return 0;
  });
  EXPECT_TRUE(eventually([&] { return a.thread().call([&] { return big->done; }); }, 10s));
  EXPECT_EQ(a.status("tunnel", "t").at("status").as_string(), "Active");
}

// Dials airlockd and completes a handshake by hand, leaving the raw transport to the test.
struct RawPeer {
  IoThread thread;
  std::unique_ptr<MessageTransport> transport;
  std::string accept_json;

  RawPeer(InProcessAirlockd& a, const std::string& token, const std::string& hello_name = "",
          proto::ConnectorKind kind = proto::ConnectorKind::kTunnel) {
    auto o = connector_options(a, token);
    DialResult r = thread.run(dial(o.dial, tls::make_client_context(o.dial.tls)));
    if (!r.transport) throw std::runtime_error(r.error);
    transport = std::move(r.transport);
    proto::Hello h;
    h.kind = kind;
    h.name = hello_name;
    std::string msg;
    proto::encode_frame(msg, proto::FrameType::kHello, 0, 0, proto::serialize(h));
    write(msg);
    accept_json = read_frame_payload(proto::FrameType::kAccept);
  }
  ~RawPeer() {
    thread.call([&] {
      transport->abort();
      return 0;
    });
  }
  void write(const std::string& msg) {
    thread.run([this, msg]() -> asio::awaitable<void> {
      co_await transport->write(msg);
    }());
  }
  // Reads one message; returns its bytes, or "" when the connection closed.
  std::string read(std::chrono::milliseconds timeout = 10s) {
    return thread.run([this]() -> asio::awaitable<std::string> {
      std::string_view m;
      auto ec = co_await transport->read(m);
      co_return ec ? std::string() : std::string(m);
    }(), timeout);
  }
  // Reads until a frame of `type` arrives; returns its payload ("" on close).
  std::string read_frame_payload(proto::FrameType type) {
    for (int i = 0; i < 50; ++i) {
      const std::string m = read();
      if (m.empty()) return "";
      auto f = proto::decode_frame(m, proto::kMaxFramePayloadCap);
      if (f && f->header.type == type) return std::string(f->payload);
    }
    return "";
  }
};

// airlockd with a well-behaved tunnel "good" connected and a token for a tunnel "rogue".
class RoguePeer : public ::testing::Test {
 protected:
  void SetUp() override {
    good = a.create("tunnel", "good");
    rogue = a.create("tunnel", "rogue");
    conn = std::make_unique<InProcessConnector>(connector_options(a, good, 1), test_handler());
    ASSERT_TRUE(a.wait_status("tunnel", "good", "Active", 1, 10s));
  }
  LogCapture logs;
  InProcessAirlockd a;
  std::string good, rogue;
  std::unique_ptr<InProcessConnector> conn;
};

TEST_F(RoguePeer, SendingMalformedFramesLosesOnlyItsOwnLink) {

  struct Case {
    std::string name;
    std::string bytes;
    std::string expect;  // in airlockd's GOAWAY reason and log
  };
  std::vector<Case> cases;
  {
    std::string unknown;
    proto::encode_data(unknown, 2, "x", false);
    unknown[1] = 0x7f;
    cases.push_back({"unknown type", unknown, "unknown frame type"});
    std::string huge;
    proto::encode_data(huge, 2, "x", false);
    huge[8] = 0x10;  // length field claims 256 MiB
    cases.push_back({"oversize", huge, "larger than the negotiated maximum"});
    cases.push_back({"truncated", std::string("\x01\x04\x00", 3), "truncated frame"});
    std::string version;
    proto::encode_data(version, 2, "x", false);
    version[0] = 9;
    cases.push_back({"bad version", version, "peer frame version 9"});
    std::string data_unknown;
    proto::encode_data(data_unknown, 40, "x", false);
    cases.push_back({"data on unopened stream", data_unknown, "stream was never opened"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RawPeer peer(a, rogue);
    ASSERT_FALSE(peer.accept_json.empty());
    ASSERT_TRUE(a.wait_status("tunnel", "rogue", "Active", 1, 10s));
    peer.write(c.bytes);
    const std::string goaway = peer.read_frame_payload(proto::FrameType::kGoAway);
    ASSERT_GE(goaway.size(), 8u);
    EXPECT_NE(goaway.find(c.expect), std::string::npos) << goaway.substr(8);
    EXPECT_TRUE(peer.read().empty());  // then the connection is closed
    EXPECT_TRUE(a.wait_status("tunnel", "rogue", "Disconnected", 0, 10s));
    EXPECT_TRUE(eventually([&] { return logs.contains(c.expect); }, 5s)) << logs.text();
  }
  EXPECT_TRUE(logs.contains("protocol error from"));
  // The well-behaved tunnel never noticed.
  EXPECT_EQ(a.status("tunnel", "good").at("status").as_string(), "Active");
  Tally t = a.thread().run(exchange_many(&a.cp(), "good", 20, [](int i) { return size_t(i + 1); }));
  EXPECT_EQ(t.ok, 20) << t.first_failure;
}

TEST_F(RoguePeer, OversizedWebSocketMessageClosesOnlyThatLink) {
  RawPeer peer(a, rogue);
  ASSERT_TRUE(a.wait_status("tunnel", "rogue", "Active", 1, 10s));
  // Far more than airlockd accepts in one message (2 x 64 KiB + 1 MiB by default).
  std::string huge;
  proto::encode_data(huge, 2, std::string(8 << 20, 'x'), false);
  peer.write(huge);
  EXPECT_TRUE(a.wait_status("tunnel", "rogue", "Disconnected", 0, 10s));
  EXPECT_TRUE(eventually([&] { return logs.contains("connection lost"); }, 5s)) << logs.text();
  Tally t = a.thread().run(exchange_many(&a.cp(), "good", 10, [](int) { return size_t{10}; }));
  EXPECT_EQ(t.ok, 10) << t.first_failure;
}

TEST(LinkE2E, MalformedHttpGets400AndTheServerCarriesOn) {
  InProcessAirlockd a([](controlplane::AirlockdConfig& c) { c.tls.plaintext = true; });
  IoThread thread;
  const std::string answer = thread.run([&]() -> asio::awaitable<std::string> {
    asio::ip::tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect({asio::ip::make_address("127.0.0.1"), a.cp().port()},
                             asio::use_awaitable);
    const std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(garbage), asio::use_awaitable);
    std::string got(4096, '\0');
    auto [ec, n] = co_await s.async_read_some(asio::buffer(got), kTuple);
    got.resize(n);
    co_return got;
  }());
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("malformed HTTP request"), std::string::npos) << answer;
  auto anonymous = a.admin();
  anonymous.bearer.clear();
  EXPECT_EQ(http_call(anonymous, "GET", "/healthz").status, 200);
}

// /readyz says not ready while the audit writer is more than audit.max_backlog records behind
// (here audit.db is locked by another connection, so the writer cannot commit), and ready
// again once it has caught up; what it had to drop, and the batches the locked database
// refused, are counted by the gap record that the first batch written after them begins with.
TEST(LinkE2E, ReadinessFollowsTheAuditBacklog) {
  std::string dir;
  InProcessAirlockd a([&](controlplane::AirlockdConfig& c) {
    c.audit.max_backlog = 100;
    dir = c.state_dir;
  });
  auto anonymous = a.admin();
  anonymous.bearer.clear();
  ASSERT_EQ(http_call(anonymous, "GET", "/readyz").status, 200);
  sqlite3* db = nullptr;
  const int opened = sqlite3_open((dir + "/audit.db").c_str(), &db);
  // Closed however the test ends, so that airlockd's writer is never left waiting on it.
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> lock(db, sqlite3_close);
  ASSERT_EQ(opened, SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock.get(), "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  // Each refused admin token is an audit record; sent until the backlog is full (bounded).
  auto wrong = a.admin();
  wrong.bearer = "not-the-admin-token";
  HttpCallResult ready;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  for (int i = 0; i < 2000 && std::chrono::steady_clock::now() < give_up; ++i) {
    EXPECT_EQ(http_call(wrong, "GET", "/v1/status").status, 401);
    if (i < 100 || i % 10) continue;
    ready = http_call(anonymous, "GET", "/readyz");
    if (ready.status == 503) break;
  }
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_NE(ready.body.find(R"("audit":"backlog full")"), std::string::npos) << ready.body;
  // The queue may have only just reached the limit, with nothing dropped yet (then, once the
  // lock goes, every record is written and no gap recorded): records sent now are dropped.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(http_call(wrong, "GET", "/v1/status").status, 401);
  sqlite3_exec(lock.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  lock.reset();
  for (int i = 0; i < 300; ++i) {
    ready = http_call(anonymous, "GET", "/readyz");
    if (ready.status == 200) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(ready.status, 200) << ready.body;
  HttpCallResult gaps;
  for (int i = 0; i < 200; ++i) {
    gaps = http_call(a.admin(), "GET", "/v1/audit?type=gap");
    if (gaps.body.find(R"("backlog_full":)") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(gaps.body.find(R"("backlog_full":)"), std::string::npos) << gaps.body;
  EXPECT_NE(gaps.body.find(R"("dropped":)"), std::string::npos) << gaps.body;
  const auto verified = http_call(a.admin(), "GET", "/v1/audit/verify");
  EXPECT_NE(verified.body.find(R"("intact":true)"), std::string::npos) << verified.body;
}

TEST(LinkE2E, GarbageInsteadOfHelloIsRefused) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  auto o = connector_options(a, token);
  IoThread thread;
  DialResult r = thread.run(dial(o.dial, tls::make_client_context(o.dial.tls)));
  ASSERT_TRUE(r.transport) << r.error;
  auto transport = std::move(r.transport);
  thread.run([&]() -> asio::awaitable<void> {
    std::string hello;
    proto::encode_frame(hello, proto::FrameType::kHello, 0, 0, "{not json");
    co_await transport->write(hello);
    std::string_view m;
    auto ec = co_await transport->read(m);
    EXPECT_FALSE(ec);
    auto f = proto::decode_frame(m, proto::kMaxFramePayloadCap);
    EXPECT_TRUE(f && f->header.type == proto::FrameType::kGoAway);
    if (f) {
      EXPECT_NE(f->payload.find("not valid JSON"), std::string::npos);
    }
    transport->abort();
  }());
  EXPECT_EQ(a.status("tunnel", "t").at("status").as_string(), "Disconnected");
}

TEST(LinkE2E, TokenIsGoodForItsOwnResourceOnly) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "sales");
  a.create("tunnel", "hr");
  for (auto [name, kind] : {std::pair{"hr", proto::ConnectorKind::kTunnel},
                            std::pair{"", proto::ConnectorKind::kSandbox}}) {
    auto o = connector_options(a, token);
    o.hello.name = name;
    o.hello.kind = kind;
    IoThread thread;
    std::string error;
    auto accepted = thread.run([&]() -> asio::awaitable<bool> {
      DialResult r = co_await dial(o.dial, tls::make_client_context(o.dial.tls));
      if (!r.transport) {
        error = r.error;
        co_return false;
      }
      auto link = std::make_shared<Link>(std::move(r.transport), LinkOptions{});
      auto acc = co_await link->connect_handshake(o.hello, error);
      co_return acc.has_value();
    }());
    EXPECT_FALSE(accepted);
    EXPECT_NE(error.find("this token is for tunnel 'sales'"), std::string::npos) << error;
  }
  EXPECT_EQ(a.status("tunnel", "hr").at("status").as_string(), "Disconnected");
}

TEST(LinkE2E, InvalidTokenGets401WithAnActionableMessage) {
  InProcessAirlockd a;
  a.create("tunnel", "t");
  auto o = connector_options(a, mint_token().token);
  IoThread thread;
  DialResult r = thread.run(dial(o.dial, tls::make_client_context(o.dial.tls)));
  EXPECT_EQ(r.kind, DialError::kUnauthorized);
  EXPECT_NE(r.error.find("refused the token (401)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("airlock tunnel create"), std::string::npos) << r.error;
}

TEST(LinkE2E, ProtocolVersionMismatchNamesBothVersions) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  auto o = connector_options(a, token);
  o.dial.protocol_version = 2;
  IoThread thread;
  DialResult r = thread.run(dial(o.dial, tls::make_client_context(o.dial.tls)));
  EXPECT_EQ(r.kind, DialError::kVersion);
  EXPECT_NE(r.error.find("connector speaks 2, airlockd speaks 1"), std::string::npos) << r.error;
}

// A peer that keeps talking (a PING every 50 ms) but never takes what is written to it: the
// transport's write never completes. The link must notice from its heartbeat and close with the
// reason, no sooner than the dead-peer timeout and not much later.
class WriteNeverCompletes : public MessageTransport {
 public:
  explicit WriteNeverCompletes(asio::any_io_executor ex) : ex_(ex), read_timer_(ex), write_timer_(ex) {}
  asio::awaitable<boost::system::error_code> read(std::string_view& out) override {
    read_timer_.expires_after(50ms);
    auto [ec] = co_await read_timer_.async_wait(kTuple);
    if (ec || aborted_) co_return asio::error::operation_aborted;
    message_.clear();
    if (pings_ == 0 && !hello_sent_) {  // a connector opens with its HELLO
      hello_sent_ = true;
      proto::encode_frame(message_, proto::FrameType::kHello, 0, 0, proto::serialize(proto::Hello{}));
      out = message_;
      co_return boost::system::error_code{};
    }
    proto::encode_ping(message_, ++pings_, false);
    out = message_;
    co_return boost::system::error_code{};
  }
  asio::awaitable<boost::system::error_code> write(std::string_view) override {
    ++writes_started;
    write_timer_.expires_at(asio::steady_timer::time_point::max());
    co_await write_timer_.async_wait(kTuple);  // until cancelled or aborted
    co_return asio::error::operation_aborted;
  }
  asio::awaitable<void> close(uint16_t, std::string) override { co_return; }
  void abort() override {
    aborted_ = true;
    read_timer_.cancel();
    write_timer_.cancel();
  }
  const std::string& remote_address() const override { return address_; }
  asio::any_io_executor executor() override { return ex_; }
  int writes_started = 0;

 private:
  asio::any_io_executor ex_;
  asio::steady_timer read_timer_, write_timer_;
  std::string message_, address_ = "test-peer";
  uint64_t pings_ = 0;
  bool hello_sent_ = false, aborted_ = false;
};

TEST(LinkE2E, AWriteThatNeverCompletesClosesTheLinkAfterTheDeadPeerTimeout) {
  asio::io_context io;
  auto transport = std::make_unique<WriteNeverCompletes>(io.get_executor());
  WriteNeverCompletes* peer = transport.get();
  LinkOptions o;
  o.role = proto::Role::kControlPlane;
  auto link = std::make_shared<Link>(std::move(transport), o);
  std::string reason;
  const auto start = std::chrono::steady_clock::now();
  // airlockd's side: read the HELLO, accept it (the ACCEPT is the first write, and it stalls).
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    std::string error;
    auto hello = co_await link->read_hello(error);
    if (!hello) {
      reason = "handshake: " + error;
      co_return;
    }
    proto::Accept accept;
    accept.heartbeat_interval = 100ms;
    accept.dead_peer_timeout = 600ms;
    link->accept(accept, hello->limits);
    reason = co_await link->run([](std::shared_ptr<LinkStream>) {});
  }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  io.run_for(10s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(reason.find("write stalled for longer than the dead-peer timeout"), std::string::npos)
      << reason;
  EXPECT_GE(peer->writes_started, 1);
  EXPECT_GE(took, 600ms);  // not before the timeout: the peer was talking all along
  EXPECT_LT(took, 5s);
}

TEST(LinkE2E, SilentPeerIsDeclaredDeadAndDisconnected) {
  LogCapture logs;
  InProcessAirlockd a([](controlplane::AirlockdConfig& c) {
    c.connectors.heartbeat_interval = 200ms;
    c.connectors.dead_peer_timeout = 1500ms;
  });
  const std::string token = a.create("tunnel", "t");
  RawPeer peer(a, token);  // completes the handshake, then never reads or answers a ping
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  EXPECT_TRUE(a.wait_status("tunnel", "t", "Disconnected", 0, 15s));
  EXPECT_TRUE(eventually([&] { return logs.contains("peer dead"); }, 5s)) << logs.text();
}

TEST(LinkE2E, ConnectorDeclaresSilentAirlockdDead) {
  // A TCP+TLS server that completes a WebSocket handshake and the hello, then goes silent,
  // is exactly a hung airlockd. Simulate with a real airlockd whose io thread we block.
  InProcessAirlockd a([](controlplane::AirlockdConfig& c) {
    c.connectors.heartbeat_interval = 200ms;
    c.connectors.dead_peer_timeout = 1000ms;
  });
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  const uint64_t before = conn.thread().call([&] { return conn.connector().stats().connects; });
  // Freeze airlockd for 3 s: the connector must give up on the link by itself.
  asio::post(a.thread().io(), [] { std::this_thread::sleep_for(3s); });
  EXPECT_TRUE(eventually([&] { return conn.thread().call([&] { return conn.connector().stats().active_links; }) == 0; }, 3s));
  // And reconnect once airlockd answers again.
  EXPECT_TRUE(eventually([&] { return conn.thread().call([&] { return conn.connector().stats().connects; }) > before; }, 15s));
}

TEST(LinkE2E, StopDrainsInFlightStreamsBeforeClosing) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 1), test_handler(800ms));
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 1, 10s));
  auto result = std::async(std::launch::async, [&] {
    return a.thread().run(exchange_many(&a.cp(), "t", 5, [](int) { return size_t{1000}; }));
  });
  std::this_thread::sleep_for(200ms);  // streams are open and waiting on the slow handler
  conn.stop();                         // GOAWAY, then drain
  Tally t = result.get();
  EXPECT_EQ(t.ok, 5) << t.first_failure;
  EXPECT_TRUE(a.wait_status("tunnel", "t", "Disconnected", 0, 10s));
}

TEST(LinkE2E, RevokeClosesLiveLinksWithinASecondAndRefusesReconnects) {
  InProcessAirlockd a;
  const std::string token = a.create("tunnel", "t");
  InProcessConnector conn(connector_options(a, token, 2), test_handler());
  ASSERT_TRUE(a.wait_status("tunnel", "t", "Active", 2, 10s));
  auto r = http_call(a.admin(), "POST", "/v1/tunnels/t/revoke");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"closed_links\":2"), std::string::npos) << r.body;
  EXPECT_TRUE(a.wait_status("tunnel", "t", "Disconnected", 0, 1000ms));
  EXPECT_TRUE(eventually(
      [&] {
        return conn.thread().call([&] { return conn.connector().stats().last_error; })
                   .find("(401)") != std::string::npos;
      },
      10s));
  EXPECT_EQ(a.status("tunnel", "t").at("status").as_string(), "Disconnected");
}

TEST(LinkE2E, AdminApiAnswersBadRequestsClearly) {
  InProcessAirlockd a([](controlplane::AirlockdConfig& c) { c.max_request_body = 4096; });
  auto admin = a.admin();
  auto anonymous = admin;
  anonymous.bearer.clear();
  EXPECT_EQ(http_call(anonymous, "GET", "/healthz").status, 200);
  auto r = http_call(anonymous, "GET", "/v1/tunnels");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("admin.token"), std::string::npos);
  // A connector token is not an admin token.
  auto as_connector = admin;
  as_connector.bearer = a.create("tunnel", "t");
  EXPECT_EQ(http_call(as_connector, "GET", "/v1/tunnels").status, 401);
  EXPECT_EQ(http_call(admin, "GET", "/v1/connect").status, 400);
  EXPECT_EQ(http_call(admin, "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(http_call(admin, "DELETE", "/v1/status").status, 405);
  EXPECT_EQ(http_call(admin, "POST", "/v1/tunnels", "{\"name\": \"../x\"}").status, 400);
  EXPECT_EQ(http_call(admin, "POST", "/v1/tunnels", "not json").status, 400);
  r = http_call(admin, "POST", "/v1/tunnels", "{\"name\": \"t\"}");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("already exists"), std::string::npos);
  EXPECT_EQ(http_call(admin, "GET", "/v1/tunnels/missing").status, 404);
  r = http_call(admin, "POST", "/v1/tunnels", std::string(10000, ' '));
  EXPECT_EQ(r.status, 413);
  auto metrics = http_call(admin, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("airlock_links "), std::string::npos);
  // The server is still fine after all of that.
  EXPECT_EQ(http_call(admin, "GET", "/v1/status").status, 200);
}

TEST(LinkE2E, StateIsPrivateAndALostAdminTokenIsReplacedNotRevived) {
  TempDir state;
  controlplane::AirlockdConfig c;
  c.listen_port = 0;
  c.state_dir = state.path + "/airlockd";
  auto start = [&](IoThread& t) {
    auto cp = std::make_unique<controlplane::ControlPlane>(t.executor(), c);
    t.call([&] {
      cp->start();
      asio::co_spawn(t.io(), cp->serve(), asio::detached);
      return 0;
    });
    return cp;
  };
  namespace fs = std::filesystem;
  std::string first_token;
  {
    IoThread t;
    auto cp = start(t);
    EXPECT_EQ(fs::status(c.state_dir).permissions() & fs::perms::all, fs::perms::owner_all);
    EXPECT_EQ(fs::status(cp->admin_token_file()).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    first_token = read_first_line(cp->admin_token_file());
    t.stop();
  }
  fs::remove(c.state_dir + "/admin.token");
  IoThread t;
  auto cp = start(t);
  const std::string second_token = read_first_line(cp->admin_token_file());
  EXPECT_FALSE(second_token.empty());
  EXPECT_NE(second_token, first_token);
  HttpClientOptions o{.base_url = cp->url(), .tls = {.ca_file = c.state_dir + "/ca.pem"}};
  o.bearer = first_token;  // whoever kept a copy of the lost file is locked out
  EXPECT_EQ(http_call(o, "GET", "/v1/status").status, 401);
  o.bearer = second_token;
  EXPECT_EQ(http_call(o, "GET", "/v1/status").status, 200);
  t.stop();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(LinkE2E, PinOfACaThatMerelyAppearsInTheChainIsRefused) {
  // An attacker can put any public CA certificate into the chain it presents. Pinning that CA
  // must still require the server certificate to be signed by it.
  TempDir pinned_dir, attacker_dir, work;
  auto pinned = tls::ensure_self_managed_certs(pinned_dir.path, {"127.0.0.1"});
  auto attacker = tls::ensure_self_managed_certs(attacker_dir.path, {"127.0.0.1"});
  const std::string leaf = slurp(attacker.cert_file);
  const std::string chain = work.path + "/chain.pem";
  std::ofstream(chain) << leaf.substr(0, leaf.find("-----END CERTIFICATE-----") + 26)
                       << slurp(pinned.ca_file);
  IoThread thread;
  HttpServerOptions options;
  options.tls = tls::make_server_context(chain, attacker.key_file);
  HttpServer server(thread.executor(), options, [](HttpRequest) -> asio::awaitable<HttpResponse> {
    co_return HttpResponse::json(200, "{}");
  });
  server.listen();
  asio::co_spawn(thread.io(), server.serve(), asio::detached);
  HttpClientOptions client{.base_url = "https://127.0.0.1:" + std::to_string(server.port()),
                           .tls = {.pin_sha256 = pinned.ca_fingerprint}};
  auto r = http_call(client, "GET", "/");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("does not verify against it"), std::string::npos) << r.error;
  // Pinning the attacker's real CA is refused too: it is not in the chain at all.
  client.tls.pin_sha256 = attacker.ca_fingerprint;
  r = http_call(client, "GET", "/");
  EXPECT_NE(r.error.find("certificate pin mismatch"), std::string::npos) << r.error;
  // Pinning the leaf itself is accepted.
  client.tls.pin_sha256 = tls::file_fingerprint(attacker.cert_file);
  EXPECT_EQ(http_call(client, "GET", "/").status, 200);
  thread.call([&] {
    server.stop();
    return 0;
  });
}

// The request timeout bounds reading the request, not the handler's own work: an answer that
// takes three timeouts to compute (a long audit verification) is still written, while a client
// that sends half a request is cut off.
TEST(HttpServerTimeouts, ASlowHandlerIsAnsweredAndAStalledRequestIsNot) {
  IoThread thread;
  HttpServerOptions options;
  options.request_timeout = std::chrono::milliseconds(300);
  HttpServer server(thread.executor(), options, [](HttpRequest) -> asio::awaitable<HttpResponse> {
    asio::steady_timer work(co_await asio::this_coro::executor, std::chrono::milliseconds(900));
    co_await work.async_wait(asio::use_awaitable);
    co_return HttpResponse::json(200, R"({"done":true})");
  });
  server.listen();
  asio::co_spawn(thread.io(), server.serve(), asio::detached);
  HttpClientOptions client{.base_url = "http://127.0.0.1:" + std::to_string(server.port())};
  auto r = http_call(client, "GET", "/slow");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, R"({"done":true})");
  // Half a request: the server closes the connection once the timeout has passed.
  const auto [closed, after] = thread.run([&]() -> asio::awaitable<std::pair<bool, std::chrono::milliseconds>> {
    asio::ip::tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect({asio::ip::make_address("127.0.0.1"), server.port()},
                             asio::use_awaitable);
    const std::string partial = "GET /slow HTTP/1.1\r\nHost: x\r\n";
    co_await asio::async_write(s, asio::buffer(partial), asio::use_awaitable);
    const auto start = std::chrono::steady_clock::now();
    char byte;
    auto [ec, n] = co_await s.async_read_some(asio::buffer(&byte, 1), kTuple);
    co_return std::pair{ec == asio::error::eof || ec == asio::error::connection_reset,
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)};
  }(), 10s);
  EXPECT_TRUE(closed);
  EXPECT_LT(after, std::chrono::milliseconds(5000));
  thread.call([&] {
    server.stop();
    return 0;
  });
}

}  // namespace
}  // namespace airlock::test
