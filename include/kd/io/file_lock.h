// An advisory lock that keeps two kd processes from writing one run folder or one cache file at once.
//
// flock(2) on a lock file (a run folder's `.kd.lock`, a cache file's `<file>.lock`), taken without waiting:
// the second process gets a ConfigError naming the path and the holder (its pid and command, written into
// the lock file for that message). The kernel drops a flock when its process dies, kill -9 included, so a
// lock file left by a killed run is not a lock: the next process takes it over. The file itself stays
// when released; removing it would race with a process that has just opened it.
#pragma once

#include <string>

namespace kd {

class FileLock {
 public:
  // `what` names the locked thing in the error ("run folder", "cache file").
  FileLock(const std::string& lock_path, const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace kd
