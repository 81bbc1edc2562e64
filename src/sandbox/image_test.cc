// Image unpacking against fixtures built by test/sandbox/make_images.sh with tar(1): layer
// order and whiteouts, the three formats, digests, references, and hostile layers.
#include "sandbox/image.h"
#include "sandbox/image_unpack.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test/e2e/temp_dir.h"

namespace airlock::sandbox {
namespace {
namespace fs = std::filesystem;

class Images : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(base_.path + "/bin");
    fs::create_directories(base_.path + "/etc");
    std::ofstream(base_.path + "/bin/tool") << "#!/bin/sh\necho tool\n";
    std::ofstream(base_.path + "/etc/passwd") << "root:x:0:0::/:/bin/sh\n";
    const std::string cmd = std::string("bash ") + AIRLOCK_SOURCE_DIR +
                            "/test/sandbox/make_images.sh " + work_.path + " " + base_.path +
                            " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

 public:
  static std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 protected:
  void expect_layered_root(const std::string& dir) {
    EXPECT_EQ(slurp(dir + "/bin/tool"), "#!/bin/sh\necho tool\n");
    EXPECT_TRUE(fs::exists(dir + "/data/keep.txt"));
    EXPECT_FALSE(fs::exists(dir + "/data/gone.txt")) << "whiteout of a lower layer's file";
    EXPECT_FALSE(fs::exists(dir + "/opq/old.txt")) << "opaque directory hides the lower layer";
    EXPECT_TRUE(fs::exists(dir + "/opq/new.txt")) << "… but keeps its own layer's entries";
    EXPECT_EQ(slurp(dir + "/added.txt"), "added\n");
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      EXPECT_EQ(e.path().filename().string().rfind(".wh.", 0), std::string::npos) << e.path();
    }
  }
  test::TempDir base_, work_, store_;
};

TEST_F(Images, OciLayoutArchiveAndDockerSaveUnpackTheSameWay) {
  std::string error;
  auto layout = resolve_image(work_.path + "/oci", store_.path, {}, error);
  ASSERT_TRUE(layout) << error;
  EXPECT_FALSE(layout->host);
  expect_layered_root(layout->dir);
  // The archive of the same layout is the same image: same digest, same directory.
  auto archive = resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error);
  ASSERT_TRUE(archive) << error;
  EXPECT_EQ(archive->dir, layout->dir);
  auto tagged = import_image(work_.path + "/docker-save.tar", "tools:1", store_.path, error);
  ASSERT_TRUE(tagged) << error;
  auto by_ref = resolve_image("tools:1", store_.path, {}, error);
  ASSERT_TRUE(by_ref) << error;
  expect_layered_root(by_ref->dir);
  const auto listed = list_images(store_.path);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].tag, "tools:1");
  EXPECT_EQ(listed[0].digest, *tagged);
  // A second resolution reuses the unpacked root (cached by digest).
  const auto before = fs::last_write_time(layout->dir);
  auto again = resolve_image(work_.path + "/oci", store_.path, {}, error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(fs::last_write_time(again->dir), before);
  // A tarball is recognised by what the file is (not re-read): one record for it, and a new
  // one once the file changes — the same image, so the same root.
  auto records = [&] {
    return std::distance(fs::directory_iterator(store_.path + "/archives"), fs::directory_iterator{});
  };
  const size_t tar_records = static_cast<size_t>(records());  // oci-archive.tar, docker-save.tar
  ASSERT_TRUE(resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error)) << error;
  EXPECT_EQ(static_cast<size_t>(records()), tar_records);
  fs::last_write_time(work_.path + "/oci-archive.tar",
                      fs::last_write_time(work_.path + "/oci-archive.tar") + std::chrono::seconds(5));
  auto changed = resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error);
  ASSERT_TRUE(changed) << error;
  EXPECT_EQ(changed->dir, layout->dir);
  EXPECT_EQ(static_cast<size_t>(records()), tar_records + 1);
}

TEST_F(Images, UnknownReferencesSayHowToImport) {
  std::string error;
  EXPECT_FALSE(resolve_image("my-registry/tool-executor:latest", store_.path, {}, error));
  EXPECT_NE(error.find("sandbox-agent image import FILE --tag my-registry/tool-executor:latest"),
            std::string::npos) << error;
  EXPECT_NE(error.find("to pull it"), std::string::npos) << error;
  EXPECT_FALSE(resolve_image("bad ref!", store_.path, {}, error));
  EXPECT_FALSE(import_image(work_.path + "/oci", "Bad Tag", store_.path, error));
  EXPECT_EQ(normalize_reference("tools"), "tools:latest");
  EXPECT_EQ(normalize_reference("reg.example:5000/team/tools"), "reg.example:5000/team/tools:latest");
  EXPECT_EQ(normalize_reference("reg.example:5000/tools:1.2"), "reg.example:5000/tools:1.2");
  EXPECT_EQ(normalize_reference("../etc"), "");
}

// What the agent says when the unpacker is missing, dies, or answers nonsense — and that a
// failed unpack leaves nothing recorded for the image.
TEST_F(Images, UnpackerFailuresAreReportedAndNothingIsRecorded) {
  struct Reset {
    ~Reset() { set_unpack_helper(""); }
  } reset;
  std::string error;
  set_unpack_helper("/nonexistent/sandbox-agent-unpack");
  EXPECT_FALSE(resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error));
  EXPECT_NE(error.find("unpacking needs /nonexistent/sandbox-agent-unpack"), std::string::npos)
      << error;
  const std::string crashing = work_.path + "/crashing-unpacker";
  std::ofstream(crashing) << "#!/bin/sh\necho partial output\nkill -SEGV $$\n";
  fs::permissions(crashing, fs::perms::owner_all);
  set_unpack_helper(crashing);
  EXPECT_FALSE(resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error));
  EXPECT_NE(error.find("was killed by signal 11: partial output"), std::string::npos) << error;
  const std::string lying = work_.path + "/lying-unpacker";
  std::ofstream(lying) << "#!/bin/sh\necho not-a-digest\n";
  fs::permissions(lying, fs::perms::owner_all);
  set_unpack_helper(lying);
  EXPECT_FALSE(import_image(work_.path + "/oci", "tools:2", store_.path, error));
  EXPECT_EQ(error, "sandbox-agent-unpack answered 'not-a-digest' instead of an image digest");
  EXPECT_TRUE(list_images(store_.path).empty());
  EXPECT_FALSE(fs::exists(store_.path + "/archives") &&
               !fs::is_empty(store_.path + "/archives"));
}

// The unpacker starts with nothing of the agent's: an environment of only PATH, stdin from
// /dev/null, and none of its descriptors (a probe stands in for it and reports what it got; a
// descriptor the agent left inheritable points at a file named leak-marker).
TEST_F(Images, TheUnpackerInheritsNoEnvironmentAndNoDescriptors) {
  struct Reset {
    ~Reset() {
      set_unpack_helper("");
      ::unsetenv("AIRLOCK_TEST_CANARY");
    }
  } reset;
  ::setenv("AIRLOCK_TEST_CANARY", "must-not-arrive", 1);
  const int leaked = ::open((work_.path + "/leak-marker").c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(leaked, 0);  // without O_CLOEXEC: inherited unless closed on purpose
  const std::string probe = work_.path + "/probe-unpacker";
  std::ofstream(probe) << "#!/bin/sh\nexec 2>&1\necho \"env:$(env | cut -d= -f1 | sort | tr '\\n' ' ')\"\n"
                          "ls -l /proc/$$/fd\necho \"stdin:$(readlink /proc/$$/fd/0)\"\nexit 1\n";
  fs::permissions(probe, fs::perms::owner_all);
  set_unpack_helper(probe);
  std::string error;
  EXPECT_FALSE(resolve_image(work_.path + "/oci-archive.tar", store_.path, {}, error));
  ::close(leaked);
  EXPECT_NE(error.find("stdin:/dev/null"), std::string::npos) << error;  // the probe ran
  EXPECT_EQ(error.find("must-not-arrive"), std::string::npos) << error;
  EXPECT_EQ(error.find("leak-marker"), std::string::npos) << error;
  // sh adds PWD itself; nothing else besides PATH and the agent's process id.
  EXPECT_NE(error.find("env:PATH PWD SANDBOX_AGENT_PID \n"), std::string::npos) << error;
}

TEST_F(Images, ACorruptedBlobIsRefused) {
  const std::string blobs = work_.path + "/oci/blobs/sha256";
  for (const auto& b : fs::directory_iterator(blobs)) {
    if (fs::file_size(b.path()) > 1000) std::ofstream(b.path(), std::ios::app) << "tampered";
  }
  std::string error;
  EXPECT_FALSE(resolve_image(work_.path + "/oci", store_.path, {}, error));
  EXPECT_NE(error.find("does not match its digest"), std::string::npos) << error;
}

TEST_F(Images, HostileLayersCannotWriteOrDeleteOutsideTheRoot) {
  test::TempDir root;
  const std::string nested = root.path + "/a/b";
  fs::create_directories(nested);
  std::string e = apply_layer(work_.path + "/evil-dotdot.tar", nested);
  EXPECT_NE(e.find("leaves the image root"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(root.path + "/escaped.txt"));
  EXPECT_FALSE(fs::exists(root.path + "/a/escaped.txt"));

  // A lower layer's symlink to a host directory, then a write below it: the symlink is
  // replaced by a directory of the image (libarchive's secure extraction), never followed.
  ASSERT_EQ(apply_layer(work_.path + "/evil-link.tar", root.path), "");
  ASSERT_TRUE(fs::is_symlink(root.path + "/etc"));
  e = apply_layer(work_.path + "/evil-write.tar", root.path);
  EXPECT_FALSE(fs::exists(work_.path + "/host-target/pwned")) << e;
  EXPECT_TRUE(!e.empty() || (!fs::is_symlink(root.path + "/etc") &&
                             fs::exists(root.path + "/etc/pwned"))) << e;
  // … and a whiteout below it is refused.
  test::TempDir root2;
  ASSERT_EQ(apply_layer(work_.path + "/evil-link.tar", root2.path), "");
  e = apply_layer(work_.path + "/evil-whiteout.tar", root2.path);
  EXPECT_NE(e.find("goes through a symlink"), std::string::npos) << e;
  EXPECT_TRUE(fs::exists(work_.path + "/host-target/victim"));
}

// A Managed Agents skill's archive (extract_skill): what is made, what is left out, and the
// limits that refuse the whole archive.
TEST(SkillArchives, ExtractRegularFilesOnlyWithinTheLimits) {
  test::TempDir work;
  const std::string w = work.path;
  auto sh = [&](const std::string& cmd) {
    ASSERT_EQ(std::system(("cd " + w + " && " + cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  };
  sh("mkdir -p src/scripts && printf 'hello' > src/SKILL.md && printf '#!/bin/sh' > "
     "src/scripts/run.sh"
     " && chmod 700 src/scripts/run.sh && ln -s /etc/shadow src/link && mkfifo src/fifo"
     " && tar czf ok.tgz -C src . && (cd src && zip -qr ../ok.zip SKILL.md scripts)");
  for (const char* archive : {"ok.tgz", "ok.zip"}) {
    const std::string dest = w + "/out-" + archive;
    ASSERT_EQ(extract_skill(w + "/" + archive, dest), "") << archive;
    EXPECT_EQ(Images::slurp(dest + "/SKILL.md"), "hello");
    EXPECT_EQ(fs::status(dest + "/scripts/run.sh").permissions() & fs::perms::all, fs::perms(0755))
        << archive;
    EXPECT_EQ(fs::status(dest + "/SKILL.md").permissions() & fs::perms::all, fs::perms(0644));
    EXPECT_FALSE(fs::exists(fs::symlink_status(dest + "/link"))) << "a symlink is left out";
    EXPECT_FALSE(fs::exists(fs::symlink_status(dest + "/fifo"))) << "a FIFO is left out";
  }
  // Climbing out, an absolute path, too many bytes, too many entries: refused whole, nothing left.
  sh("printf x > esc && tar cf dotdot.tar --transform='s,^esc,../esc,' esc"
     " && tar cf abs.tar -P --transform='s,^esc,/tmp/esc,' esc"
     " && head -c 3000000 /dev/zero > big && tar czf big.tgz big"
     " && mkdir many && touch many/a many/b many/c && tar cf many.tar many");
  const std::pair<const char*, std::string> refused[] = {{"dotdot.tar", "leaves"},
                                                         {"abs.tar", "absolute"},
                                                         {"big.tgz", "bytes"},
                                                         {"many.tar", "entries"},
                                                         {"esc", "not a zip or tar"}};
  for (const auto& [archive, why] : refused) {
    const std::string dest = w + "/refused-" + archive;
    const std::string error = extract_skill(w + "/" + archive, dest, 1 << 20, 3);
    EXPECT_NE(error.find(why), std::string::npos) << archive << ": " << error;
    EXPECT_FALSE(fs::exists(dest)) << archive;
  }
  EXPECT_FALSE(fs::exists(w + "/esc.out"));
  EXPECT_NE(extract_skill(w + "/ok.tgz", w + "/out-ok.tgz"), "") << "an existing destination";
}

}  // namespace
}  // namespace airlock::sandbox
