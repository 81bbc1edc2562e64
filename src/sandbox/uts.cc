// UTS namespace: the sandbox's own hostname (the sandbox's name) and domain name, so the tool
// neither learns the host's name nor can change it.
#include <unistd.h>

#include <cerrno>

#include "sandbox/steps.h"

namespace airlock::sandbox {

Status set_hostname(const std::string& name) {
  if (::sethostname(name.data(), name.size()) != 0) return Status::Sys("sethostname", name, errno);
  if (::setdomainname("", 0) != 0) return Status::Sys("setdomainname", "\"\"", errno);
  return Status::Ok();
}

}  // namespace airlock::sandbox
