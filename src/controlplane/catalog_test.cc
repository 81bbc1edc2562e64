#include "controlplane/catalog.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "common/config_util.h"

namespace airlock::controlplane {
namespace {

ConnectorInventory inventory(const char* json_servers) {
  ConnectorInventory inv;
  const boost::json::value v = boost::json::parse(json_servers);
  for (const auto& s : v.as_array()) inv.servers.push_back(s.as_object());
  return inv;
}

ConnectorRef tunnel(const char* name) { return {proto::ConnectorKind::kTunnel, name}; }
ConnectorRef sandbox(const char* name) { return {proto::ConnectorKind::kSandbox, name}; }

const char* kCrm = R"([{"name":"crm","url":"tcp://crm:8080","status":"ok",
  "tools":[{"name":"find"},{"name":"update"},{"name":"delete_all"}],
  "prompts":[{"name":"summary"}],
  "resources":[{"uri":"crm://accounts","name":"accounts"}],
  "resourceTemplates":[{"uriTemplate":"crm://accounts/{id}","name":"account"}]}])";

TEST(Catalog, GlobMatching) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("crm_*", "crm_find"));
  EXPECT_FALSE(glob_match("crm_*", "xcrm_find"));
  EXPECT_TRUE(glob_match("*_all", "delete_all"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("a*b*c", "a--b--c"));
  EXPECT_FALSE(glob_match("a*b*c", "a--c--b"));
}

TEST(Catalog, ParsesTheSeedShapeAndNamesBadKeys) {
  auto b = parse_bindings_yaml(
      "tools:\n  - name: fetch-sales-data\n    mcp_tunnel: my-sales-tunnel\n"
      "    server: tcp://private-mcp:8080\n",
      "tools.yaml");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].connector, tunnel("my-sales-tunnel"));
  EXPECT_EQ(b[0].server, "tcp://private-mcp:8080");
  EXPECT_EQ(b[0].timeout, std::chrono::seconds(60));
  auto throws_with = [](const std::string& yaml, const std::string& says) {
    try {
      parse_bindings_yaml(yaml, "t.yaml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  throws_with("tools:\n  - {name: a, mcp_tunnel: t, server: s, colour: red}\n", "tools[0]");
  throws_with("tools:\n  - {name: a, mcp_tunnel: t}\n", "tools[0].server is required");
  throws_with("tools:\n  - {name: 'a b', mcp_tunnel: t, server: s}\n", "[A-Za-z0-9_.-]");
  throws_with(
      "tools:\n  - {name: a, mcp_tunnel: t, server: s}\n  - {name: a, mcp_tunnel: t, "
      "server: s}\n",
      "used by another binding");
  throws_with("tools:\n  - {name: a, mcp_tunnel: t, server: s, tool: x, prefix: p_}\n",
              "cannot be combined");
  throws_with("tools:\n  - {name: a, mcp_tunnel: t, server: s, timeout: 10s, max_timeout: 1s}\n",
              "max_timeout");
  throws_with("tools: 3\n", "must be a list");
}

TEST(Catalog, ExposesRenamesPrefixesAndFilters) {
  auto b = parse_bindings_yaml(
      "tools:\n"
      "  - {name: crm, mcp_tunnel: t1, server: crm, prefix: crm_, deny: ['delete_*'],\n"
      "     rename: {find: crm_lookup}}\n",
      "t.yaml");
  std::vector<std::string> conflicts;
  auto c = Catalog::build(b, {{tunnel("t1"), inventory(kCrm)}}, conflicts);
  EXPECT_TRUE(conflicts.empty());
  ASSERT_EQ(c.tools().size(), 2u);
  ASSERT_TRUE(c.tool("crm_lookup"));
  EXPECT_EQ(c.tool("crm_lookup")->upstream_name, "find");
  EXPECT_EQ(c.tool("crm_lookup")->definition.at("name").as_string(), "crm_lookup");
  EXPECT_TRUE(c.tool("crm_update"));
  EXPECT_FALSE(c.tool("crm_delete_all"));
  ASSERT_TRUE(c.prompt("crm_summary"));
  EXPECT_EQ(c.prompt("crm_summary")->upstream_name, "summary");
  EXPECT_EQ(c.route_resource("crm://accounts")->server, "crm");
  ASSERT_EQ(c.resources().size(), 1u);
  EXPECT_EQ(c.resources()[0].definition.at("name").as_string(), "crm_accounts");
  EXPECT_EQ(c.resources()[0].definition.at("uri").as_string(), "crm://accounts");
  EXPECT_EQ(c.templates()[0].definition.at("name").as_string(), "crm_account");
  EXPECT_EQ(c.route_resource("crm://accounts/42")->binding->name, "crm");
  EXPECT_FALSE(c.route_resource("other://x"));
}

TEST(Catalog, SingleToolBindingUsesTheBindingNameAndMatchesByUrl) {
  auto b = parse_bindings_yaml(
      "tools:\n  - {name: fetch-sales-data, mcp_tunnel: t1, server: 'tcp://crm:8080', tool: "
      "find}\n",
      "t.yaml");
  std::vector<std::string> conflicts;
  auto c = Catalog::build(b, {{tunnel("t1"), inventory(kCrm)}}, conflicts);
  ASSERT_EQ(c.tools().size(), 1u);
  EXPECT_EQ(c.tools()[0].name, "fetch-sales-data");
  EXPECT_EQ(c.tools()[0].upstream_name, "find");
  EXPECT_TRUE(c.prompts().empty());
}

TEST(Catalog, CollisionsNameBothSources) {
  auto b = parse_bindings_yaml(
      "tools:\n  - {name: a, mcp_tunnel: t1, server: crm}\n"
      "  - {name: b, mcp_tunnel: t2, server: crm}\n",
      "t.yaml");
  std::vector<std::string> conflicts;
  auto c = Catalog::build(b, {{tunnel("t1"), inventory(kCrm)}, {tunnel("t2"), inventory(kCrm)}}, conflicts);
  ASSERT_FALSE(conflicts.empty());
  EXPECT_NE(conflicts[0].find("binding 'b' (tunnel 't2'"), std::string::npos) << conflicts[0];
  EXPECT_NE(conflicts[0].find("binding 'a' (tunnel 't1'"), std::string::npos) << conflicts[0];
  EXPECT_EQ(c.tool("find")->route.binding->name, "a");  // the first by name keeps it
}

TEST(Catalog, UnavailableBindingsSayWhy) {
  auto b = parse_bindings_yaml(
      "tools:\n  - {name: a, mcp_tunnel: gone, server: crm}\n"
      "  - {name: b, mcp_tunnel: t1, server: nope}\n"
      "  - {name: c, mcp_tunnel: t1, server: crm, tool: missing}\n",
      "t.yaml");
  std::vector<std::string> conflicts;
  auto c = Catalog::build(b, {{tunnel("t1"), inventory(kCrm)}}, conflicts);
  EXPECT_EQ(c.unavailable().at("a"), "tunnel 'gone' is not connected");
  EXPECT_NE(c.unavailable().at("b").find("no server named 'nope'"), std::string::npos);
  EXPECT_NE(c.unavailable().at("c").find("no tool named 'missing'"), std::string::npos);
  auto down = inventory(R"([{"name":"crm","status":"unavailable","error":"refused"}])");
  auto c2 = Catalog::build(b, {{tunnel("t1"), down}}, conflicts);
  EXPECT_NE(c2.unavailable().at("b").find("no server"), std::string::npos);
  EXPECT_NE(c2.unavailable().at("c").find("unavailable: refused"), std::string::npos);
}

TEST(Catalog, BindingJsonRoundTrips) {
  auto b = parse_bindings_yaml(
      "tools:\n  - {name: x, mcp_tunnel: t, server: s, prefix: p_, allow: [a*], deny: [b],\n"
      "     rename: {u: v}, timeout: 5s, max_timeout: 1m}\n",
      "t.yaml");
  Binding r = binding_from_json(binding_to_json(b[0]));
  EXPECT_EQ(r.prefix, "p_");
  EXPECT_EQ(r.allow, b[0].allow);
  EXPECT_EQ(r.deny, b[0].deny);
  EXPECT_EQ(r.rename, b[0].rename);
  EXPECT_EQ(r.timeout, std::chrono::seconds(5));
  EXPECT_EQ(r.max_timeout, std::chrono::minutes(1));
}

TEST(Catalog, SandboxBindingsNameTheSandboxAndExposeItsToolset) {
  auto b = parse_bindings_yaml("tools:\n  - {name: tool-box, sandbox: my-sandbox, prefix: box_,\n"
                               "     deny: [web_fetch]}\n",
                               "tools.yaml");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].connector, sandbox("my-sandbox"));
  EXPECT_EQ(b[0].server, "toolset");
  // The storage form keeps the kind.
  const Binding back = binding_from_json(binding_to_json(b[0]));
  EXPECT_EQ(back.connector, sandbox("my-sandbox"));
  EXPECT_EQ(back.server, "toolset");
  EXPECT_EQ(back.deny, b[0].deny);

  const auto toolset = inventory(R"([{"name":"toolset","status":"ok",
    "tools":[{"name":"bash"},{"name":"read"},{"name":"web_fetch"}]}])");
  std::vector<std::string> conflicts;
  // A tunnel of the same name is another connector: it does not serve this binding.
  auto c = Catalog::build(b, {{tunnel("my-sandbox"), toolset}}, conflicts);
  EXPECT_TRUE(c.tools().empty());
  EXPECT_EQ(c.unavailable().at("tool-box"), "sandbox 'my-sandbox' is not connected");
  c = Catalog::build(b, {{sandbox("my-sandbox"), toolset}}, conflicts);
  EXPECT_TRUE(conflicts.empty());
  ASSERT_EQ(c.tools().size(), 2u);
  ASSERT_NE(c.tool("box_bash"), nullptr);
  EXPECT_EQ(c.tool("box_bash")->upstream_name, "bash");
  EXPECT_EQ(c.tool("box_bash")->route.server, "toolset");
  EXPECT_EQ(c.tool("box_web_fetch"), nullptr);
  const auto down =
      inventory(R"([{"name":"toolset","status":"unavailable","error":"image missing"}])");
  c = Catalog::build(b, {{sandbox("my-sandbox"), down}}, conflicts);
  EXPECT_EQ(c.unavailable().at("tool-box"), "sandbox 'my-sandbox' is unavailable: image missing");
}

TEST(Catalog, SandboxBindingsRefuseTunnelOnlyKeys) {
  auto throws_with = [](const std::string& yaml, const std::string& want) {
    try {
      parse_bindings_yaml(yaml, "tools.yaml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  throws_with("tools:\n  - {name: a, sandbox: s, server: x}\n", "tools[0].server: a sandbox");
  throws_with("tools:\n  - {name: a, sandbox: s, agent_credential: 'k-${agent}'}\n",
              "tools[0].agent_credential: a sandbox's credentials");
  throws_with("tools:\n  - {name: a, sandbox: s, mcp_tunnel: t, server: x}\n",
              "either mcp_tunnel or sandbox, not both");
  throws_with("tools:\n  - {name: a}\n", "tools[0] needs mcp_tunnel");
  throws_with("tools:\n  - {name: a, sandbox: 'no way'}\n",
              "tools[0].sandbox 'no way' is not a sandbox name");
}

}  // namespace
}  // namespace airlock::controlplane
