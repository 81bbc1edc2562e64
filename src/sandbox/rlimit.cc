// Resource limits of the tool process that cgroups do not cover: no core dumps (a dump of a
// process holding a credential is a leak), a bound on open files, and a bound on the size of any
// one file written (the workspace and /tmp are the only writable places).
#include <sys/resource.h>

#include <cerrno>

#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace {

struct Limit {
  int resource;
  const char* name;
  rlim_t value;
};

constexpr Limit kLimits[] = {
    {RLIMIT_CORE, "RLIMIT_CORE", 0},
    {RLIMIT_NOFILE, "RLIMIT_NOFILE", 4096},
    {RLIMIT_FSIZE, "RLIMIT_FSIZE", rlim_t{8} << 30},
    {RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", rlim_t{64} << 10},
};

}  // namespace

Status apply_rlimits() {
  for (const auto& l : kLimits) {
    rlimit cur{};
    if (::getrlimit(l.resource, &cur) != 0) return Status::Sys("getrlimit", l.name, errno);
    // Never raise a limit the operator set lower.
    const rlim_t v = cur.rlim_max < l.value ? cur.rlim_max : l.value;
    const rlimit next{v, v};
    if (::setrlimit(l.resource, &next) != 0) {
      return Status::Sys("setrlimit", std::string(l.name) + ", " + std::to_string(v), errno);
    }
  }
  return Status::Ok();
}

}  // namespace airlock::sandbox
