// JSON for a student's options struct, from one list of its fields. A struct opts in with
//
//   template <class Self, class F> static void visit_fields(Self& o, F&& f) { f("hidden", o.hidden); ... }
//
// so a field added to the struct is named once and reaches both the saved config.json and its reader.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "kd/error.h"

namespace kd {

template <class Options>
nlohmann::json options_to_json(const Options& o) {
  auto j = nlohmann::json::object();
  Options::visit_fields(o, [&](const char* key, const auto& value) { j[key] = value; });
  return j;
}

// Missing keys keep the struct's defaults; a value of the wrong type is a FormatError naming `where`
// and `kind` (e.g. "bilstm"). Range checks are the caller's.
template <class Options>
Options options_from_json(const nlohmann::json& j, const std::string& where, const std::string& kind) {
  Options o;
  if (!j.is_object()) throw FormatError(located(where, kind + " options must be a JSON object"));
  try {
    Options::visit_fields(o, [&](const char* key, auto& value) { value = j.value(key, value); });
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(located(where, "bad " + kind + " options: " + e.what()));
  }
  return o;
}

}  // namespace kd
