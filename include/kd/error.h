// Typed exceptions thrown by the kd library. Only tools/kd/main.cpp turns them into a message and an
// exit code; the library never exits. Every message names the place (file, line, key or tensor) and,
// where one helps, a hint, so that the CLI can print it as a single line.
#pragma once

#include <stdexcept>
#include <string>

namespace kd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  // Exit code the CLI returns for this kind of error.
  virtual int exit_code() const { return 1; }
};

// A file is missing, unreadable, truncated, or cannot be written.
class IoError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

// A file exists but its contents are malformed (safetensors header, JSON, tokenizer files, cache).
class FormatError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 4; }
};

// The configuration or a command-line value is invalid: unknown key, wrong type, out-of-range value.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// The data set does not fit the task: wrong column, unknown label, empty set, invalid UTF-8.
class DataError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 5; }
};

// Numerical failure during training (NaN/Inf loss), reported with the step it happened at.
class TrainError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 6; }
};

// A data-parallel group failed: a rank died or stopped answering, or the ranks disagree (config, world size).
class DistributedError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 7; }
};

// Builds "where: what (hint: ...)"; `where` is a file, file:line, or file:key.
std::string located(const std::string& where, const std::string& what, const std::string& hint = "");

}  // namespace kd
