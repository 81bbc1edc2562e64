// End-to-end tests with the real programs as processes: airlockd, mcp-tunnel and the airlock
// CLI, over real TLS on loopback with ports chosen by the kernel.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/asio/ip/tcp.hpp>

#include "common/config_util.h"
#include "common/tls.h"
#include "test/e2e/harness.h"

namespace airlock::test {
namespace {
namespace json = boost::json;
namespace fs = std::filesystem;

// airlockd as a process, with its own state directory.
class AirlockdProcess {
 public:
  explicit AirlockdProcess(const std::string& extra_yaml = "", uint16_t port = 0,
                           const std::string& state_dir = "") {
    state_ = state_dir.empty() ? dir_.path : state_dir;
    config_ = dir_.path + "/airlockd.yaml";
    std::ofstream(config_) << "connectors:\n  heartbeat_interval: 500ms\n"
                           << "  dead_peer_timeout: 5s\n  drain_timeout: 2s\n"
                           << extra_yaml;
    start(port);
  }
  void start(uint16_t port) {
    fs::remove(state_ + "/airlockd.url");
    proc_ = std::make_unique<Process>(
        bin("airlockd"), std::vector<std::string>{"--config", config_, "--listen",
                                                  "127.0.0.1:" + std::to_string(port),
                                                  "--state-dir", state_});
    if (!eventually([&] { return fs::exists(state_ + "/airlockd.url"); }, 30s)) {
      throw std::runtime_error("airlockd did not start:\n" + proc_->output());
    }
    url_ = read_first_line(state_ + "/airlockd.url");
  }
  int stop() {
    proc_->signal(SIGTERM);
    return proc_->wait(30s);
  }
  uint16_t port() const { return static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1))); }
  std::string endpoint() const { return "wss://127.0.0.1:" + std::to_string(port()) + "/v1/connect"; }
  const std::string& state() const { return state_; }
  std::string ca() const { return state_ + "/ca.pem"; }
  Process& process() { return *proc_; }

  std::pair<int, std::string> cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--state-dir", state_});
    return run_program(bin("airlock"), args);
  }
  std::string create_tunnel(const std::string& name) {
    auto [code, out] = cli({"--json", "tunnel", "create", name});
    if (code != 0) throw std::runtime_error("tunnel create failed: " + out);
    return std::string(json::parse(out).at("token").as_string());
  }
  json::object tunnel(const std::string& name) {
    HttpClientOptions o{.base_url = url_, .tls = {.ca_file = ca()},
                        .bearer = read_first_line(state_ + "/admin.token")};
    auto r = http_call(o, "GET", "/v1/tunnels/" + name);
    if (r.status != 200) throw std::runtime_error(r.error + r.body);
    return json::parse(r.body).as_object();
  }
  bool wait_tunnel(const std::string& name, const std::string& status, int links,
                   std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
          try {
            auto t = tunnel(name);
            return t.at("status").as_string() == status &&
                   (links < 0 || t.at("connections").to_number<int>() == links);
          } catch (...) {
            return false;
          }
        },
        timeout);
  }

 private:
  TempDir dir_;
  std::string state_, config_, url_;
  std::unique_ptr<Process> proc_;
};

std::unique_ptr<Process> start_tunnel(const AirlockdProcess& a, const std::string& token,
                                      std::vector<std::string> extra = {},
                                      const std::string& endpoint = "") {
  std::vector<std::string> args{"start", "--endpoint", endpoint.empty() ? a.endpoint() : endpoint};
  if (std::find(extra.begin(), extra.end(), "--pin-sha256") == extra.end() &&
      std::find(extra.begin(), extra.end(), "--ca-file") == extra.end() &&
      std::find(extra.begin(), extra.end(), "--insecure-skip-tls-verify") == extra.end()) {
    args.insert(args.end(), {"--ca-file", a.ca()});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(bin("mcp-tunnel"), args,
                                   std::vector<std::string>{"AIRLOCK_TOKEN=" + token});
}

TEST(ProcessE2E, TunnelShowsActiveAndComesBackAfterAirlockdRestarts) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("my-sales-tunnel");
  auto tunnel = start_tunnel(a, token, {"--allowed-credentials", "*"});
  ASSERT_TRUE(a.wait_tunnel("my-sales-tunnel", "Active", 2, 20s)) << tunnel->output();
  auto [code, table] = a.cli({"status"});
  EXPECT_EQ(code, 0);
  EXPECT_NE(table.find("my-sales-tunnel"), std::string::npos) << table;
  EXPECT_NE(table.find("Active"), std::string::npos) << table;
  EXPECT_NE(table.find("mcp-tunnel/"), std::string::npos) << table;
  auto t = a.tunnel("my-sales-tunnel");
  EXPECT_FALSE(t.at("connected_since").as_string().empty());
  EXPECT_FALSE(t.at("last_seen").as_string().empty());
  EXPECT_NE(t.at("remote_address").as_string().find("127.0.0.1:"), std::string::npos);

  const uint16_t port = a.port();
  EXPECT_EQ(a.stop(), 0);
  EXPECT_TRUE(tunnel->wait_output("reconnecting", 10s)) << tunnel->output();
  a.start(port);  // same port, same state: same CA, tokens still valid
  EXPECT_TRUE(a.wait_tunnel("my-sales-tunnel", "Active", 2, 40s)) << tunnel->output();
}

TEST(ProcessE2E, RevokedTokenDisconnectsWithinASecondAndIsRefusedOnRetry) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("t");
  auto tunnel = start_tunnel(a, token);
  ASSERT_TRUE(a.wait_tunnel("t", "Active", 2, 20s)) << tunnel->output();
  auto [code, out] = a.cli({"tunnel", "revoke", "t"});
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("closed 2 link(s)"), std::string::npos) << out;
  EXPECT_TRUE(a.wait_tunnel("t", "Disconnected", 0, 1000ms));
  EXPECT_TRUE(tunnel->wait_output("revoked this connector's token", 10s)) << tunnel->output();
  EXPECT_TRUE(tunnel->wait_output("refused the token (401)", 15s)) << tunnel->output();
  EXPECT_EQ(a.tunnel("t").at("status").as_string(), "Disconnected");
}

TEST(ProcessE2E, WrongCaAndWrongPinAreRefusedWithTheRightMessage) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("t");
  TempDir other;
  auto other_ca = tls::ensure_self_managed_certs(other.path, {"localhost"});

  auto wrong_ca = start_tunnel(a, token, {"--ca-file", other_ca.ca_file});
  EXPECT_TRUE(wrong_ca->wait_output("unknown CA", 15s)) << wrong_ca->output();
  auto wrong_pin = start_tunnel(a, token, {"--pin-sha256", other_ca.ca_fingerprint});
  EXPECT_TRUE(wrong_pin->wait_output("certificate pin mismatch", 15s)) << wrong_pin->output();
  EXPECT_EQ(a.tunnel("t").at("status").as_string(), "Disconnected");
  // The token never left the tunnel: airlockd saw no upgrade attempt from them.
  EXPECT_EQ(a.process().output().find("invalid or revoked token"), std::string::npos);

  const std::string right_pin = tls::file_fingerprint(a.ca());
  auto pinned = start_tunnel(a, token, {"--pin-sha256", right_pin});
  EXPECT_TRUE(a.wait_tunnel("t", "Active", 2, 20s)) << pinned->output();
}

TEST(ProcessE2E, SkippingVerificationIsExplicitAndLoud) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("t");
  auto tunnel = start_tunnel(a, token, {"--insecure-skip-tls-verify"});
  EXPECT_TRUE(a.wait_tunnel("t", "Active", 2, 20s)) << tunnel->output();
  EXPECT_NE(tunnel->output().find("TLS verification of airlockd is DISABLED"), std::string::npos)
      << tunnel->output();
  // It cannot be combined with a CA or a pin: the user must mean it.
  auto [code, out] = run_program(bin("mcp-tunnel"), {"start", "--endpoint", a.endpoint(),
                                                     "--ca-file", a.ca(),
                                                     "--insecure-skip-tls-verify"},
                                 {"AIRLOCK_TOKEN=" + token});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("choose one of --ca-file, --pin-sha256 and --insecure-skip-tls-verify"),
            std::string::npos) << out;
}

TEST(ProcessE2E, CertificateNameMismatchIsNamed) {
  AirlockdProcess a("tls:\n  hostnames: [airlock.invalid]\n");
  // The CLI would refuse the name too; it is not what is under test here.
  auto [code, out] = a.cli({"--insecure-skip-tls-verify", "--json", "tunnel", "create", "t"});
  ASSERT_EQ(code, 0) << out;
  const std::string token(json::parse(out).at("token").as_string());
  auto [vcode, vout] = a.cli({"status"});
  EXPECT_EQ(vcode, 1);
  EXPECT_NE(vout.find("name mismatch"), std::string::npos) << vout;
  auto tunnel = start_tunnel(a, token);
  EXPECT_TRUE(tunnel->wait_output("name mismatch", 15s)) << tunnel->output();
}

TEST(ProcessE2E, ClearErrorsForBadEndpointRefusedConnectionAndDns) {
  auto [code, out] = run_program(bin("mcp-tunnel"), {"start", "--endpoint", "https://x/v1/connect"},
                                 {"AIRLOCK_TOKEN=x"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("scheme 'https' is not supported"), std::string::npos) << out;
  std::tie(code, out) = run_program(bin("mcp-tunnel"),
                                    {"start", "--endpoint", "ws://example.com/v1/connect"},
                                    {"AIRLOCK_TOKEN=x"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("only allowed to a loopback address"), std::string::npos) << out;
  std::tie(code, out) = run_program(bin("mcp-tunnel"), {"start", "--endpoint", "wss://127.0.0.1:1/v1/connect"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("no token"), std::string::npos) << out;

  // A port nobody listens on: bind one, note it, close it.
  int port = 0;
  {
    IoThread t;
    asio::ip::tcp::acceptor acc(t.io(), {asio::ip::make_address("127.0.0.1"), 0});
    port = acc.local_endpoint().port();
  }
  Process refused(bin("mcp-tunnel"),
                  {"start", "--endpoint", "wss://127.0.0.1:" + std::to_string(port) + "/v1/connect"},
                  {"AIRLOCK_TOKEN=x"});
  EXPECT_TRUE(refused.wait_output("connection refused by 127.0.0.1:", 10s)) << refused.output();
  EXPECT_TRUE(refused.wait_output("is airlockd running", 1s));

  // DNS: inside a fresh, empty network namespace no resolver is reachable, so the lookup fails
  // without sending a packet anywhere.
  if (geteuid() != 0 || !fs::exists("/usr/bin/unshare")) GTEST_SKIP() << "needs root and unshare";
  Process dns("/usr/bin/unshare",
              {"--net", bin("mcp-tunnel"), "start", "--endpoint",
               "wss://airlock.example.invalid/v1/connect"},
              {"AIRLOCK_TOKEN=x"});
  EXPECT_TRUE(dns.wait_output("cannot resolve 'airlock.example.invalid'", 20s)) << dns.output();
}

// Inodes of the listening TCP sockets in /proc/net/tcp{,6}, with their local address.
std::map<std::string, std::string> listening_inodes() {
  std::map<std::string, std::string> out;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(file);
    std::string line;
    std::getline(f, line);
    while (std::getline(f, line)) {
      std::istringstream ss(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      ss >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      if (st == "0A") out[inode] = local;
    }
  }
  return out;
}

std::vector<std::string> listening_sockets_of(pid_t pid) {
  const auto listening = listening_inodes();
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = fs::read_symlink(e.path(), ec).string();
    if (target.rfind("socket:[", 0) != 0) continue;
    const std::string inode = target.substr(8, target.size() - 9);
    if (auto it = listening.find(inode); it != listening.end()) out.push_back(it->second);
  }
  return out;
}

TEST(ProcessE2E, TunnelListensOnNothingUnlessAskedForLoopbackMetrics) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("t");
  auto tunnel = start_tunnel(a, token);
  ASSERT_TRUE(a.wait_tunnel("t", "Active", 2, 20s)) << tunnel->output();
  EXPECT_TRUE(listening_sockets_of(tunnel->pid()).empty());

  auto with_metrics = start_tunnel(a, token, {"--metrics-addr", "127.0.0.1:0"});
  ASSERT_TRUE(with_metrics->wait_output("metrics and readiness on http://127.0.0.1:", 10s));
  ASSERT_TRUE(a.wait_tunnel("t", "Active", 4, 20s));
  auto sockets = listening_sockets_of(with_metrics->pid());
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_EQ(sockets[0].substr(0, 9), "0100007F:");  // 127.0.0.1, in /proc's byte order
  const std::string out = with_metrics->output();
  const auto at = out.find("http://127.0.0.1:") + 17;
  const std::string port = out.substr(at, out.find('/', at) - at);
  auto ready = http_call({.base_url = "http://127.0.0.1:" + port}, "GET", "/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto metrics = http_call({.base_url = "http://127.0.0.1:" + port}, "GET", "/metrics");
  EXPECT_NE(metrics.body.find("airlock_tunnel_links_active 2"), std::string::npos) << metrics.body;

  auto [code, msg] = run_program(bin("mcp-tunnel"),
                                 {"start", "--endpoint", a.endpoint(), "--metrics-addr", "0.0.0.0:0"},
                                 {"AIRLOCK_TOKEN=" + token});
  EXPECT_EQ(code, 1);
  EXPECT_NE(msg.find("must be a loopback address"), std::string::npos) << msg;
}

TEST(ProcessE2E, SigtermSendsGoawayAndExitsZero) {
  AirlockdProcess a;
  const std::string token = a.create_tunnel("t");
  auto tunnel = start_tunnel(a, token);
  ASSERT_TRUE(a.wait_tunnel("t", "Active", 2, 20s)) << tunnel->output();
  tunnel->signal(SIGTERM);
  EXPECT_EQ(tunnel->wait(40s), 0) << tunnel->output();
  EXPECT_NE(tunnel->output().find("sending goaway on 2 link(s)"), std::string::npos)
      << tunnel->output();
  EXPECT_TRUE(a.wait_tunnel("t", "Disconnected", 0, 5s));
  EXPECT_TRUE(a.process().wait_output("peer went away", 5s)) << a.process().output();
}

TEST(ProcessE2E, CliReportsErrorsClearly) {
  AirlockdProcess a;
  a.create_tunnel("t");
  auto [code, out] = a.cli({"tunnel", "create", "t"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  std::tie(code, out) = a.cli({"tunnel", "create", "bad/name"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("name must be"), std::string::npos) << out;
  std::tie(code, out) = run_program(bin("airlock"), {"--state-dir", "/nonexistent", "status"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("no server"), std::string::npos) << out;
  std::tie(code, out) = run_program(bin("airlock"), {"--state-dir", a.state(),
                                                    "--admin-token-file", "/dev/null", "status"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("no admin token"), std::string::npos) << out;
  std::tie(code, out) = a.cli({"tunnel", "show", "t"});
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("Disconnected"), std::string::npos) << out;
  std::tie(code, out) = a.cli({"tunnel", "token", "t"});
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("alk_"), std::string::npos) << out;
}

TEST(ProcessE2E, AirlockdRefusesBadConfigWithThePath) {
  TempDir d;
  std::ofstream(d.path + "/bad.yaml") << "tls:\n  plaintext: yes\n  certfile: x\n";
  auto [code, out] = run_program(bin("airlockd"), {"--config", d.path + "/bad.yaml"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("unknown key 'tls.certfile'"), std::string::npos) << out;
  std::ofstream(d.path + "/plain.yaml") << "listen: '0.0.0.0:0'\ntls:\n  plaintext: true\n";
  std::tie(code, out) = run_program(bin("airlockd"), {"--config", d.path + "/plain.yaml"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("loopback"), std::string::npos) << out;
}

TEST(ProcessE2E, TunnelRefusesSecretsItCannotLoadWithTheReason) {
  TempDir d;
  std::ofstream(d.path + "/short") << "1234567\n";
  std::ofstream(d.path + "/tunnel.yaml")
      << "secrets:\n  - {name: api, from: 'file:" << d.path << "/short'}\n";
  std::ofstream(d.path + "/token") << "alk_unused\n";
  const std::vector<std::string> start{"start", "--endpoint", "wss://127.0.0.1:1/v1/connect",
                                       "--token-file", d.path + "/token", "--config",
                                       d.path + "/tunnel.yaml"};
  auto [code, out] = run_program(bin("mcp-tunnel"), start);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("secret 'api'"), std::string::npos) << out;
  EXPECT_NE(out.find("7 bytes"), std::string::npos) << out;
  std::ofstream(d.path + "/tunnel.yaml", std::ios::trunc)
      << "secrets:\n  - {name: api, from: 'env:AIRLOCK_TEST_NOT_SET'}\n";
  std::tie(code, out) = run_program(bin("mcp-tunnel"), start);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("AIRLOCK_TEST_NOT_SET is not set"), std::string::npos) << out;
  std::ofstream(d.path + "/tunnel.yaml", std::ios::trunc)
      << "servers:\n  - {name: s, url: 'tcp://127.0.0.1:9', headers: {Authorization: x}}\n";
  std::tie(code, out) = run_program(bin("mcp-tunnel"), start);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("no headers or environment to carry a credential"), std::string::npos) << out;
}

}  // namespace
}  // namespace airlock::test
