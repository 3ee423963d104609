// stanzactl's side of the control socket a running stanzad listens on (<data-dir>/control.sock).
#include "control.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace stanzad::ctl {

std::optional<ControlReply> control(const std::filesystem::path& socket_path,
                                    const std::string& command) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.string().size() >= sizeof(addr.sun_path)) return std::nullopt;
  std::strcpy(addr.sun_path, socket_path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string line = command + "\n";
  std::size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::write(fd, line.data() + sent, line.size() - sent);
    if (n <= 0) {
      ::close(fd);
      return std::nullopt;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));  // the server closes after answering
  }
  ::close(fd);
  // The last line is the status; the lines before it are the body.
  if (answer.ends_with("\n")) answer.pop_back();
  auto cut = answer.rfind('\n');
  std::string status = cut == std::string::npos ? answer : answer.substr(cut + 1);
  ControlReply reply;
  if (cut != std::string::npos) reply.body = answer.substr(0, cut + 1);
  if (status == "ok") {
    reply.ok = true;
  } else if (status.starts_with("error: ")) {
    reply.error = status.substr(7);
  } else {
    reply.error = "unexpected answer from stanzad: " + status;
  }
  return reply;
}

}  // namespace stanzad::ctl
