#include "sandbox/registry.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "common/config_util.h"
#include "common/encoding.h"

namespace airlock::sandbox {
namespace {
namespace json = boost::json;

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(ImageReference, NamesTheRegistryOnlyWhenTheFirstPartIsAHost) {
  std::string error;
  auto r = parse_image_reference("registry.example.com:5000/team/tool-executor:1.2", error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->registry, "registry.example.com:5000");
  EXPECT_EQ(r->repository, "team/tool-executor");
  EXPECT_EQ(r->tag, "1.2");
  EXPECT_EQ(r->str(), "registry.example.com:5000/team/tool-executor:1.2");

  r = parse_image_reference("localhost/tool", error);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->manifest_ref(), "latest");

  r = parse_image_reference("127.0.0.1:5000/tool@" + kDigest, error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->digest, kDigest);
  EXPECT_EQ(r->manifest_ref(), kDigest);
  EXPECT_EQ(r->str(), "127.0.0.1:5000/tool@" + kDigest);

  // Local names: no registry, no error.
  for (const char* local : {"tool-executor:latest", "my-registry/tool-executor:latest", "host"}) {
    EXPECT_FALSE(parse_image_reference(local, error)) << local;
    EXPECT_EQ(error, "") << local;
  }
}

TEST(ImageReference, MalformedReferencesSayWhatIsWrong) {
  std::string error;
  EXPECT_FALSE(parse_image_reference("reg.example.com/Tool:1", error));
  EXPECT_NE(error.find("lower-case"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_reference("reg.example.com/tool:bad/tag", error));
  EXPECT_NE(error.find("tag 'bad/tag'"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_reference("reg.example.com/tool:-x", error));
  EXPECT_NE(error.find("tag '-x'"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_reference("reg.example.com/tool@sha256:abc", error));
  EXPECT_NE(error.find("is not a digest"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_reference("reg.example.com/a//b", error));
  EXPECT_NE(error.find("repository"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_reference("reg example.com/a", error));
}

TEST(WwwAuthenticate, BearerAndBasicChallenges) {
  auto c = parse_www_authenticate(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/tool:pull,push")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example.com/token");
  EXPECT_EQ(c->params["service"], "registry.example.com");
  EXPECT_EQ(c->params["scope"], "repository:team/tool:pull,push");  // a comma inside quotes
  c = parse_www_authenticate(R"(Basic realm="basic-realm")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params["realm"], "basic-realm");
  c = parse_www_authenticate("Bearer realm=https://a/token, service=reg");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->params["realm"], "https://a/token");
  EXPECT_EQ(c->params["service"], "reg");
  EXPECT_FALSE(parse_www_authenticate(""));
}

TEST(DockerConfigJson, FindsTheHostsCredentialsInEveryWayTheyAreWritten) {
  const std::string auth = base64("robot:s3cr:et", false, true);
  const std::string doc = R"({"auths": {"https://reg.example.com/v1/": {"auth": ")" + auth +
                          R"("}, "127.0.0.1:5000": {"username": "u", "password": "p"}}})";
  auto c = credentials_for(doc, "reg.example.com");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "robot");
  EXPECT_EQ(c->password, "s3cr:et");  // only the first colon separates
  c = credentials_for(doc, "127.0.0.1:5000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->password, "p");
  EXPECT_FALSE(credentials_for(doc, "other.example.com"));
  EXPECT_THROW(credentials_for("not json", "x"), ConfigError);
  EXPECT_THROW(credentials_for(R"({"credHelpers": {}})", "x"), ConfigError);
  EXPECT_THROW(credentials_for(R"({"auths": {"x": {"auth": "bm9jb2xvbg=="}}})", "x"), ConfigError);
}

TEST(PlainHttp, OnlyForLoopback) {
  EXPECT_EQ(plain_http_refusal("127.0.0.1:5000"), "");
  EXPECT_EQ(plain_http_refusal("localhost:5000"), "");
  EXPECT_EQ(plain_http_refusal("[::1]:5000"), "");
  EXPECT_NE(plain_http_refusal("10.0.0.5:5000"), "");
  EXPECT_NE(plain_http_refusal("registry.internal"), "");
  EXPECT_NE(plain_http_refusal("127.0.0.1.example.com:5000"), "");
}

TEST(Manifests, AnIndexGivesThePlatformsManifest) {
  const json::value index = json::parse(R"({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" + std::string("sha256:") + std::string(64, '1') + R"(", "size": 10,
       "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" + std::string("sha256:") + std::string(64, '2') + R"(", "size": 11,
       "platform": {"os": "linux", "architecture": "amd64"}},
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" + std::string("sha256:") + std::string(64, '3') + R"(", "size": 12,
       "platform": {"os": "unknown", "architecture": "unknown"}}]})");
  EXPECT_TRUE(is_index(index, ""));
  std::string error;
  auto d = select_platform(index, "linux/amd64", error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->digest, "sha256:" + std::string(64, '2'));
  EXPECT_EQ(d->size, 11u);
  d = select_platform(index, "linux/arm64/v8", error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->size, 10u);
  EXPECT_FALSE(select_platform(index, "linux/s390x", error));
  EXPECT_NE(error.find("linux/arm64/v8, linux/amd64"), std::string::npos) << error;
  EXPECT_FALSE(select_platform(index, "amd64", error));
  EXPECT_NE(error.find("OS/ARCH"), std::string::npos) << error;
  for (const char* bad : {"linux", "linux/", "/amd64", "linux/arm64/", "a/b/c/d"}) {
    EXPECT_FALSE(parse_platform(bad, error)) << bad;
  }
  auto p = parse_platform("linux/arm64/v8", error);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->variant, "v8");
}

TEST(Manifests, OciAndDockerManifestsGiveConfigAndLayers) {
  for (const char* mt : {kOciManifest, kDockerManifest}) {
    const json::value m = json::parse(std::string(R"({"schemaVersion": 2, "mediaType": ")") + mt +
                                      R"(", "config": {"mediaType": "x", "digest": ")" + kDigest +
                                      R"(", "size": 5}, "layers": [{"mediaType": "y", "digest": ")" +
                                      kDigest + R"(", "size": 1048576}]})");
    EXPECT_FALSE(is_index(m, ""));
    std::string error;
    auto parsed = parse_image_manifest(m, error);
    ASSERT_TRUE(parsed) << error;
    EXPECT_EQ(parsed->config.size, 5u);
    ASSERT_EQ(parsed->layers.size(), 1u);
    EXPECT_EQ(parsed->layers[0].size, 1048576u);
  }
  std::string error;
  EXPECT_FALSE(parse_image_manifest(json::parse(R"({"schemaVersion": 1, "fsLayers": []})"), error));
  EXPECT_NE(error.find("schema 1"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_manifest(json::parse(R"({"schemaVersion": 2, "config": {"digest": "sha256:x", "size": 1}, "layers": []})"), error));
  EXPECT_NE(error.find("not sha256"), std::string::npos) << error;
  EXPECT_FALSE(parse_image_manifest(json::parse(R"({"schemaVersion": 2, "config": {"digest": ")" + kDigest + R"("}, "layers": []})"), error));
  EXPECT_NE(error.find("no size"), std::string::npos) << error;
}

TEST(Base64, DecodesBothAlphabetsWithAndWithoutPadding) {
  EXPECT_EQ(from_base64("cm9ib3Q6czNjcjpldA=="), "robot:s3cr:et");
  EXPECT_EQ(from_base64("cm9ib3Q6czNjcjpldA"), "robot:s3cr:et");
  EXPECT_EQ(from_base64(base64("\xff\xfe?", true, false)), "\xff\xfe?");
  EXPECT_FALSE(from_base64("a!b="));
  EXPECT_FALSE(from_base64("abcde"));
}

}  // namespace
}  // namespace airlock::sandbox
