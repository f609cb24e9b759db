// Well-formedness checks for the XML (SVG) the report writes: a small tag-balance parser in C++,
// and Python's xml.etree on the file when the reference interpreter is there.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_paths.h"

namespace kd::test {

// Tags balance, attribute values are quoted, '&' only starts a known entity, one root element,
// and no "nan"/"inf" slipped into the text as a number.
inline ::testing::AssertionResult xml_balanced(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  for (size_t i = 0; i < xml.size();) {
    if (xml[i] == '&') {
      const size_t semi = xml.find(';', i);
      const std::string ent = semi == std::string::npos ? "" : xml.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
        return ::testing::AssertionFailure() << "bare '&' at " << i;
      i = semi + 1;
      continue;
    }
    if (xml[i] != '<') { ++i; continue; }
    if (xml.compare(i, 2, "<?") == 0) { i = xml.find("?>", i) + 2; continue; }
    if (xml.compare(i, 4, "<!--") == 0) { i = xml.find("-->", i) + 3; continue; }
    // Find the end of the tag, skipping over quoted attribute values.
    size_t j = i + 1;
    char quote = 0;
    for (; j < xml.size() && (quote || xml[j] != '>'); ++j) {
      if (quote && xml[j] == quote) quote = 0;
      else if (!quote && (xml[j] == '"' || xml[j] == '\'')) quote = xml[j];
      else if (xml[j] == '<') return ::testing::AssertionFailure() << "'<' inside a tag at " << j;
    }
    if (j >= xml.size()) return ::testing::AssertionFailure() << "unterminated tag at " << i;
    const std::string tag = xml.substr(i + 1, j - i - 1);
    const bool closing = !tag.empty() && tag[0] == '/';
    const bool self_closing = !tag.empty() && tag.back() == '/';
    const std::string body = closing ? tag.substr(1) : tag;
    const std::string name = body.substr(0, body.find_first_of(" \t\n/"));
    if (name.empty()) return ::testing::AssertionFailure() << "tag without a name at " << i;
    if (closing) {
      if (open.empty() || open.back() != name)
        return ::testing::AssertionFailure() << "</" << name << "> does not close <"
                                             << (open.empty() ? "" : open.back()) << ">";
      open.pop_back();
    } else if (!self_closing) {
      if (open.empty()) ++roots;
      open.push_back(name);
    } else if (open.empty()) {
      ++roots;
    }
    i = j + 1;
  }
  if (!open.empty()) return ::testing::AssertionFailure() << "<" << open.back() << "> is never closed";
  if (roots != 1) return ::testing::AssertionFailure() << roots << " root elements";
  for (const char* bad : {"nan", "inf", "NaN"})
    if (xml.find(std::string("\"") + bad) != std::string::npos || xml.find(std::string("\"-") + bad) != std::string::npos)
      return ::testing::AssertionFailure() << "a non-finite number in an attribute";
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult xml_file_well_formed(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return ::testing::AssertionFailure() << path << " cannot be read";
  std::stringstream ss;
  ss << in.rdbuf();
  auto balanced = xml_balanced(ss.str());
  if (!balanced) return balanced << " in " << path;
  if (std::filesystem::exists(python())) {
    const std::string cmd = python() + " -c \"import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])\" '" +
                            path.string() + "'";
    if (std::system(cmd.c_str()) != 0) return ::testing::AssertionFailure() << "xml.etree cannot parse " << path;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kd::test
