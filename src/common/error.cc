#include "airlock/error.h"

#include <string>

namespace airlock {
namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "airlock"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kOk: return "success";
      case Errc::kTruncatedFrame: return "truncated frame";
      case Errc::kBadVersion: return "unsupported frame version";
      case Errc::kUnknownFrameType: return "unknown frame type";
      case Errc::kFrameTooLarge: return "frame payload larger than the negotiated maximum";
      case Errc::kReservedBitsSet: return "reserved bits or undefined flags set";
      case Errc::kBadStreamId: return "stream id not valid for this frame";
      case Errc::kBadPayload: return "malformed frame payload";
      case Errc::kFlowControlViolation: return "peer exceeded its flow-control window";
      case Errc::kWindowOverflow: return "flow-control window overflow";
      case Errc::kStreamLimit: return "concurrent stream limit reached";
      case Errc::kUnexpectedFrame: return "frame not allowed in this state";
      case Errc::kStreamClosed: return "stream is closed";
      case Errc::kGoingAway: return "link is going away";
      case Errc::kHandshakeRejected: return "handshake rejected by peer";
      case Errc::kProtocolVersionMismatch: return "protocol version mismatch";
      case Errc::kPeerDead: return "peer did not answer within the dead-peer timeout";
      case Errc::kLinkClosed: return "the link carrying the stream closed";
      case Errc::kInvalidArgument: return "invalid argument";
      case Errc::kNotFound: return "not found";
      case Errc::kAlreadyExists: return "already exists";
      case Errc::kUnauthorized: return "unauthorized";
    }
    return "unknown airlock error " + std::to_string(ev);
  }
};

}  // namespace

const boost::system::error_category& airlock_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace airlock
