// The protocol between sandbox-agent and the toolbox: the helper that runs as the tool process
// of every session's sandbox and carries out the agent toolset there (bash, read, write, edit,
// glob, grep, web_fetch, custom commands). It is spoken over the toolbox's standard input, a
// Unix stream socket whose other end the agent holds. Each message is a frame: a 4-byte
// big-endian length, then that many bytes of JSON. Requests carry an id; the toolbox answers
// each with one final Reply of the same id, and may send progress Replies before it. A
// `cancel` request names the id to stop and gets no reply of its own.
// Value types with one encoder and one parser each, and a frame reader: plain code over bytes,
// no I/O. Used by both programs (src/sandbox/toolbox.cc is the other side).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::sandbox::toolbox {

// Largest frame either side accepts: a tool argument of several MiB fits; more is refused.
inline constexpr size_t kMaxFrame = 32 * 1024 * 1024;

enum class Op { kBash, kRead, kWrite, kEdit, kGlob, kGrep, kFetch, kExec, kCancel };
std::string_view to_string(Op op);

// How results are worded. kMcp: the connected agent's (numbered lines from read, notes in
// brackets). kManagedAgents: the reference environment workers' own words and shapes (read
// returns the file as it is, or an image or PDF as a media reply; `wrote N bytes to X`;
// `edited X (N replacement(s))`; `no matches`), so that an agent cannot tell the two apart.
enum class Style { kMcp, kManagedAgents };

struct Request {
  uint64_t id = 0;
  Op op = Op::kBash;
  // bash: the command, run in the session's persistent shell.
  std::string command;
  bool restart = false;
  // bash, exec and web_fetch: when to give up; the processes the call started are killed.
  uint64_t timeout_ms = 120'000;
  // read, write, edit, glob, grep: a path inside the sandbox (relative: to /workspace).
  std::string path;
  std::optional<std::pair<int64_t, int64_t>> view_range;  // read: first and last line, 1-based
  std::string content;                                     // write
  bool content_base64 = false;  // write: `content` is base64 of the bytes (binary files)
  bool executable = false;      // write: the file is made 0755 (a skill's scripts)
  std::string old_string, new_string;                      // edit
  bool replace_all = false;                                // edit
  std::string pattern;                                     // glob, grep
  std::string url;                                         // web_fetch
  std::vector<std::string> argv;                           // exec: never through a shell
  uint64_t target = 0;                                     // cancel: the request to stop
  Style style = Style::kMcp;
};

struct Reply {
  uint64_t id = 0;
  // An interim report of a call still running: how long it has run.
  bool progress = false;
  uint64_t elapsed_ms = 0;
  // Final: the tool result's text, and whether it reports a failure.
  bool is_error = false;
  std::string text;
  std::optional<int> exit_code;  // bash and exec
  // read in Style::kManagedAgents, of an image or a PDF: its media type ("image/png",
  // "application/pdf") and its bytes, base64; `text` is then empty.
  std::string media_type;
  std::string data;
};

// A whole frame: length prefix and JSON.
std::string encode(const Request& r);
std::string encode(const Reply& r);
// The JSON of one frame (without its length prefix). On failure `error` names the field.
bool parse_request(std::string_view json, Request& out, std::string& error);
bool parse_reply(std::string_view json, Reply& out, std::string& error);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD: tool output is bytes, JSON
// strings are UTF-8. encode(Reply) applies it to the reply's text.
std::string valid_utf8(std::string_view text);

// Splits a byte stream into frames.
class FrameReader {
 public:
  // False once a frame announces more than kMaxFrame bytes: the stream cannot be trusted.
  bool feed(std::string_view bytes);
  // The next whole frame's JSON, if one has arrived.
  std::optional<std::string> next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace airlock::sandbox::toolbox
