// Reads the server name (SNI) from the first bytes a client sends through a CONNECT tunnel:
// a TLS ClientHello, possibly spread over several handshake records. Sans-IO: plain code over
// bytes, fed as they arrive; the egress proxy uses it to require SNI == the CONNECT host.
#pragma once

#include <string>
#include <string_view>

namespace airlock::sandbox {

struct HelloParse {
  enum class State {
    kNeedMore,   // a prefix of a ClientHello so far: read more
    kNotTls,     // the bytes are not a TLS handshake
    kMalformed,  // a TLS record, but not a well-formed ClientHello
    kNoSni,      // a complete ClientHello without a server_name extension
    kSni,        // server_name holds the host name
  };
  State state = State::kNeedMore;
  std::string server_name;
  std::string error;  // for kMalformed / kNotTls
};

// The largest ClientHello accepted (records reassembled); more is kMalformed.
inline constexpr size_t kMaxClientHello = 64 * 1024;

HelloParse parse_client_hello(std::string_view bytes);

}  // namespace airlock::sandbox
