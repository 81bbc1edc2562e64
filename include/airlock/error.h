// Airlock's domain errors, as a boost::system error category so they travel in the same
// error_code as Asio, Beast and OpenSSL errors. Shared by every program; immutable, thread-safe.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace airlock {

enum class Errc {
  kOk = 0,
  // Frame codec (connector protocol).
  kTruncatedFrame = 1,   // fewer bytes than the header or its length announce
  kBadVersion,           // frame version this build does not speak
  kUnknownFrameType,     // type byte outside the table in docs/protocol.md
  kFrameTooLarge,        // payload over the negotiated maximum
  kReservedBitsSet,      // reserved byte or undefined flags not zero
  kBadStreamId,          // stream id 0 on a stream frame, non-zero on a link frame, wrong parity
  kBadPayload,           // payload shape wrong for its frame type
  // Link state machine.
  kFlowControlViolation, // peer sent more than the window it was granted
  kWindowOverflow,       // a window update pushed a window past 2^31-1
  kStreamLimit,          // no stream slot free under the peer's advertised limit
  kUnexpectedFrame,      // frame not allowed in the link's current state
  kStreamClosed,         // operation on a stream that is closed or reset
  kGoingAway,            // the link is draining; no new streams
  kHandshakeRejected,    // the peer refused our hello (version, token, resource)
  kProtocolVersionMismatch,
  kPeerDead,             // no frame from the peer within the dead-peer timeout
  // Misc.
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kUnauthorized,
  // Link state machine, continued (values are never on the wire; appended to keep the rest).
  kLinkClosed,           // the link that carried the stream closed or was lost
};

const boost::system::error_category& airlock_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), airlock_category()};
}

template <class T>
using Result = boost::system::result<T>;

}  // namespace airlock

template <>
struct boost::system::is_error_code_enum<airlock::Errc> : std::true_type {};
