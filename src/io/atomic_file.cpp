#include "kd/io/atomic_file.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "kd/error.h"

namespace fs = std::filesystem;

namespace kd {

namespace {
std::string temp_name(const fs::path& target) {
  return target.string() + ".tmp-" + std::to_string(::getpid());
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_stream_atomic(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

void write_stream_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string tmp = temp_name(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(located(path, "cannot open for writing", "check that the folder exists and is writable"));
    try {
      write(out);
    } catch (...) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError(located(path, "write failed", "disk full?"));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw IoError(located(path, "cannot rename temporary file into place: " + ec.message()));
  }
}

void write_json_atomic(const std::string& path, const nlohmann::json& j, int indent) {
  write_file_atomic(path, j.dump(indent) + "\n");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(located(path, fs::exists(path) ? "cannot be read" : "no such file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based; turn it into a line number for the message.
    size_t upto = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(upto), '\n'));
    throw FormatError(located(path + ":" + std::to_string(line), "invalid JSON", e.what()));
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number beyond double
    throw FormatError(located(path, "invalid JSON", e.what()));
  }
}

StagedDir::StagedDir(fs::path target) : target_(std::move(target)) {
  staging_ = temp_name(target_);
  fs::remove_all(staging_);
  std::error_code ec;
  fs::create_directories(staging_, ec);
  if (ec) throw IoError(located(staging_.string(), "cannot create folder: " + ec.message()));
}

StagedDir::~StagedDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagedDir::commit() {
  std::error_code ec;
  fs::path old;
  if (fs::exists(target_)) {
    old = target_.string() + ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(target_, old, ec);
    if (ec) throw IoError(located(target_.string(), "cannot move the previous folder aside: " + ec.message()));
  }
  fs::rename(staging_, target_, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, target_);  // put the previous version back
    throw IoError(located(target_.string(), "cannot rename staged folder into place: " + ec.message()));
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ec;
  if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec)) {
    const bool eq = std::filesystem::equivalent(a, b, ec);
    if (!ec) return eq;
  }
  return std::filesystem::absolute(a, ec).lexically_normal() == std::filesystem::absolute(b, ec).lexically_normal();
}

}  // namespace kd
