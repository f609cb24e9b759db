// Writes that never leave a half-written file or folder behind: write to a temporary name in the
// same folder, flush, then rename over the target (rename is atomic within a file system).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

namespace kd {

void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for a file too large to hold in memory twice: `write` streams the bytes into the temporary
// file; if it throws, the temporary file is removed and the exception passes on.
void write_stream_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);
void write_json_atomic(const std::string& path, const nlohmann::json& j, int indent = 2);

std::string read_file(const std::string& path);  // IoError naming the file
// Parses JSON; a syntax error is a FormatError naming the file and line.
nlohmann::json read_json(const std::string& path);

// Whether two paths from a config name one file: the same inode when both exist, else the same
// absolute, normalized path. Empty paths name nothing. (Selection on the reported set is found this way.)
bool same_file(const std::string& a, const std::string& b);

// A checkpoint folder built under "<target>.tmp-<pid>" and renamed to <target> on commit(). If the
// object is destroyed without commit() the staging folder is removed. An existing target is
// replaced only at commit (old folder renamed aside, new one renamed in, old one deleted).
class StagedDir {
 public:
  explicit StagedDir(std::filesystem::path target);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }  // write files here
  std::string file(const std::string& name) const { return (staging_ / name).string(); }
  void commit();

 private:
  std::filesystem::path target_, staging_;
  bool committed_ = false;
};

}  // namespace kd
