#include <gtest/gtest.h>

#include "kd/io/config.h"

namespace kd {
namespace {

TEST(ConfigTest, ReadsValuesAndRecordsDefaults) {
  Config c = Config::from_string("train:\n  lr: 0.001\n  epochs: 2\n", "exp.yaml");
  auto train = c.root().child("train");
  EXPECT_DOUBLE_EQ(train.get<double>("lr", 1.0), 0.001);
  EXPECT_EQ(train.get<int64_t>("epochs", 5), 2);
  EXPECT_EQ(train.get<int64_t>("batch_size", 32), 32);
  c.check_all_used();
  const std::string resolved = c.resolved_yaml();
  EXPECT_NE(resolved.find("batch_size: 32"), std::string::npos) << resolved;
  // The resolved text parses back to the same values.
  Config again = Config::from_string(resolved, "resolved.yaml");
  EXPECT_EQ(again.root().child("train").get<int64_t>("batch_size", 0), 32);
}

TEST(ConfigTest, AbsentSectionsAreCreatedWithTheirDefaults) {
  // A section missing from the file, and one nested in it, still take defaults and resolve.
  Config c = Config::from_string("run_dir: x\n", "exp.yaml");
  EXPECT_EQ(c.root().get<std::string>("run_dir", ""), "x");
  auto distill = c.root().child("distill");
  EXPECT_EQ(distill.child("augment").get<int64_t>("copies", 3), 3);
  EXPECT_DOUBLE_EQ(distill.get<double>("alpha", 0.5), 0.5);
  c.check_all_used();
  Config again = Config::from_string(c.resolved_yaml(), "resolved.yaml");
  EXPECT_EQ(again.root().child("distill").child("augment").get<int64_t>("copies", 0), 3);
}

TEST(ConfigTest, OverridesReplaceAndCreateKeys) {
  Config c = Config::from_string("train:\n  lr: 0.001\n", "exp.yaml", {"train.lr=3e-5", "model.path=/x"});
  EXPECT_DOUBLE_EQ(c.root().child("train").get<double>("lr", 0), 3e-5);
  EXPECT_EQ(c.root().child("model").require<std::string>("path"), "/x");
}

TEST(ConfigTest, MalformedOverrideIsAnError) {
  EXPECT_THROW(Config::from_string("a: 1\n", "exp.yaml", {"novalue"}), ConfigError);
  EXPECT_THROW(Config::from_string("a: 1\n", "exp.yaml", {"a.b=2"}), ConfigError);  // a is a scalar
}

TEST(ConfigTest, UnknownKeyNamesKeyLineAndKnownKeys) {
  Config c = Config::from_string("train:\n  lr: 0.1\n  lrr: 0.2\n", "exp.yaml");
  c.root().child("train").get<double>("lr", 1.0);
  try {
    c.check_all_used();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("exp.yaml (line 3)"), std::string::npos) << m;
    EXPECT_NE(m.find("train.lrr"), std::string::npos) << m;
    EXPECT_NE(m.find("known keys here: lr"), std::string::npos) << m;
  }
}

TEST(ConfigTest, WrongTypeNamesKeyAndLine) {
  Config c = Config::from_string("train:\n  epochs: three\n", "exp.yaml");
  try {
    c.root().child("train").get<int64_t>("epochs", 1);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.epochs"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
    EXPECT_NE(m.find("an integer"), std::string::npos) << m;
  }
}

TEST(ConfigTest, AKeyWithoutValueIsNoTextNamedNull) {
  // `run_dir:` with nothing after it is YAML's null, which would read as the text "null".
  Config c = Config::from_string("run_dir:\nname: ''\n", "exp.yaml");
  try {
    c.root().get<std::string>("run_dir", "runs/x");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'run_dir'"), std::string::npos) << m;
    EXPECT_NE(m.find("has no value"), std::string::npos) << m;
  }
  EXPECT_EQ(c.root().get<std::string>("name", "x"), "") << "an explicit empty text stays allowed";
  EXPECT_THROW(c.root().get_nonempty("name", "runs/x"), ConfigError);
  EXPECT_EQ(c.root().get_nonempty("absent", "runs/x"), "runs/x");
}

TEST(ConfigTest, AKeyGivenTwiceInOneMapIsAnErrorNamingBothLines) {
  try {
    Config::from_string("train: {epochs: 1}\ndata: {train: a.tsv}\ntrain:\n  lr: 0.1\n", "exp.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("exp.yaml (line 3)"), std::string::npos) << m;
    EXPECT_NE(m.find("'train' is given twice"), std::string::npos) << m;
    EXPECT_NE(m.find("line 1"), std::string::npos) << m;
  }
  EXPECT_THROW(Config::from_string("stages:\n  - {type: task, type: general}\n"), ConfigError);
  EXPECT_NO_THROW(Config::from_string("a: {x: 1}\nb: {x: 1}\n")) << "the same key in two maps is fine";
}

TEST(ConfigTest, FirstDifferenceNamesTheKeySkippingThoseThatMayChange) {
  const YAML::Node a = YAML::Load("run_dir: r\ntrain: {lr: 1.0e-4, epochs: 2}\nreport: {seeds: [1, 2]}\n");
  EXPECT_EQ(first_difference(a, YAML::Load("run_dir: r\ntrain: {lr: 0.0001, epochs: 2}\nreport: {seeds: [1, 2]}\n"), {}),
            "")
      << "numerically equal";
  const YAML::Node b = YAML::Load("run_dir: s\ntrain: {lr: 1.0e-4, epochs: 3}\nreport: {seeds: [1, 2, 3]}\n");
  EXPECT_EQ(first_difference(a, b, {}), "run_dir");
  EXPECT_EQ(first_difference(a, b, {"run_dir"}), "train.epochs");
  EXPECT_EQ(first_difference(a, b, {"run_dir", "train.epochs"}), "report.seeds");
  EXPECT_EQ(first_difference(a, b, {"run_dir", "train", "report"}), "");
  EXPECT_EQ(first_difference(a, YAML::Load("run_dir: r\ntrain: {lr: 1.0e-4, epochs: 2}\n"), {}), "report");
  EXPECT_EQ(first_difference(YAML::Load("x: [{a: 1}, {a: 2}]"), YAML::Load("x: [{a: 1}, {a: 5}]"), {}), "x.1.a");
}

TEST(ConfigTest, MissingRequiredKeyAndInvalidYaml) {
  Config c = Config::from_string("model: {}\n", "exp.yaml");
  EXPECT_THROW(c.root().child("model").require<std::string>("path"), ConfigError);
  try {
    Config::from_string("a: [1, 2\nb: 3\n", "bad.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Config::load("/nonexistent/exp.yaml"), IoError);
}

TEST(ConfigTest, ListsAcceptScalars) {
  Config c = Config::from_string("data:\n  text: sentence\n  pair: [a, b]\n", "exp.yaml");
  auto d = c.root().child("data");
  EXPECT_EQ(d.get_list("text", {}), std::vector<std::string>{"sentence"});
  EXPECT_EQ(d.get_list("pair", {}), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace kd

namespace kd {
namespace {

TEST(ConfigTest, DefaultNumbersAreWrittenShort) {
  EXPECT_EQ(short_number(0.1), "0.1");
  EXPECT_EQ(short_number(1e-8), "1e-08");
  EXPECT_EQ(std::strtod(short_number(1.0 / 3.0).c_str(), nullptr), 1.0 / 3.0);
  Config c = Config::from_string("a: 1\n", "exp.yaml");
  c.root().get<double>("fraction", 0.1);
  EXPECT_NE(c.resolved_yaml().find("fraction: 0.1\n"), std::string::npos) << c.resolved_yaml();
}

}  // namespace
}  // namespace kd
