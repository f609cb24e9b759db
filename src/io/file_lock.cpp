#include "kd/io/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "kd/error.h"

namespace kd {

namespace {

// This process's command line, spaces between the arguments, for the other process's message.
std::string own_command() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto& c : raw)
    if (c == '\0') c = ' ';
  while (!raw.empty() && raw.back() == ' ') raw.pop_back();
  return raw.size() > 300 ? raw.substr(0, 300) + " ..." : raw;
}

}  // namespace

FileLock::FileLock(const std::string& lock_path, const std::string& what) : path_(lock_path) {
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw IoError(located(lock_path, std::string("cannot create the lock file: ") + std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[512];
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    if (n > 0) holder.assign(buf, static_cast<size_t>(n));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw ConfigError(located(lock_path, "the " + what + " is in use by another kd process" +
                                               (holder.empty() ? "" : " (pid " + holder + ")"),
                                "wait for it to finish, or stop it; a killed process leaves no lock behind"));
    throw IoError(located(lock_path, std::string("cannot lock: ") + std::strerror(err)));
  }
  // Ours now: say who holds it. A failure here only loses the name in another process's message.
  const std::string me = std::to_string(::getpid()) + ": " + own_command() + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace kd
