#include "controlplane/routes.h"

#include <gtest/gtest.h>

namespace airlock::controlplane {
namespace {

RouteHandler nothing() {
  return
      [](HttpRequest, RouteContext) -> asio::awaitable<HttpResponse> { co_return HttpResponse{}; };
}

TEST(Routes, LiteralsParametersAndTheRest) {
  RouteTable t;
  t.add("GET", "/v1/tunnels", Access::kAdmin, nothing());
  t.add("GET", "/v1/tunnels/{name}", Access::kAdmin, nothing());
  t.add("POST", "/v1/tunnels/{name}/revoke", Access::kAdmin, nothing());
  t.add("GET", "/v1/tunnels/status", Access::kPublic, nothing());
  t.add("GET", "/assets/*", Access::kPublic, nothing());

  auto m = t.match("GET", "/v1/tunnels/sales");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params["name"], "sales");
  // A literal beats a parameter whatever the order they were added in.
  m = t.match("GET", "/v1/tunnels/status");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->access, Access::kPublic);
  m = t.match("POST", "/v1/tunnels/x/revoke");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params["name"], "x");
  m = t.match("GET", "/assets/js/app.js");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params["*"], "js/app.js");
  // Trailing and doubled slashes name the same path.
  EXPECT_TRUE(t.match("GET", "/v1/tunnels/").route);
  EXPECT_TRUE(t.match("GET", "//v1//tunnels").route);
}

TEST(Routes, WrongMethodListsTheRightOnesAndUnknownPathsMatchNothing) {
  RouteTable t;
  t.add("GET", "/v1/agents/{name}", Access::kAdmin, nothing());
  t.add("DELETE", "/v1/agents/{name}", Access::kAdmin, nothing());
  auto m = t.match("PUT", "/v1/agents/bot");
  EXPECT_FALSE(m.route);
  EXPECT_EQ(m.allowed, "GET, DELETE");
  m = t.match("GET", "/v1/agents/bot/extra");
  EXPECT_FALSE(m.route);
  EXPECT_TRUE(m.allowed.empty());
  EXPECT_FALSE(t.match("GET", "/v1/agents/../agents/bot").route);
  EXPECT_THROW(t.add("GET", "/v1/agents/{other}", Access::kAdmin, nothing()), std::logic_error);
}

TEST(Routes, QueryParametersAreDecoded) {
  auto q = query_params("/v1/audit?type=call&actor=a%20b&target=x+y&flag&limit=5");
  EXPECT_EQ(q["type"], "call");
  EXPECT_EQ(q["actor"], "a b");
  EXPECT_EQ(q["target"], "x y");
  EXPECT_EQ(q["flag"], "");
  EXPECT_EQ(q["limit"], "5");
  EXPECT_TRUE(query_params("/v1/audit").empty());
}

}  // namespace
}  // namespace airlock::controlplane
