// A directory under /tmp that exists for the lifetime of the object, then is removed with all
// it holds. For tests.
#pragma once

#include <string>

namespace airlock::test {

struct TempDir {
  std::string path;
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace airlock::test
