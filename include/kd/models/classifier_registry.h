// The registry of text classifiers the config can name (`model: {type: bert, ...}`), and loading any
// saved classifier folder by the type recorded in its kd.json.
#pragma once

#include <functional>
#include <memory>

#include "kd/io/config.h"
#include "kd/models/text_classifier.h"
#include "kd/util/registry.h"

namespace kd {

// Builds a classifier for `labels` from its config section (pretrained weights where the type has them).
using ClassifierFactory = std::function<std::unique_ptr<TextClassifier>(ConfigNode& section, const LabelVocab& labels)>;
// Loads a saved classifier folder of that type.
using ClassifierLoader = std::function<std::unique_ptr<TextClassifier>(const std::string& dir)>;

const Registry<ClassifierFactory>& teacher_registry();

// Reads `type` from the section and builds it; ConfigError naming the key for an unknown type.
std::unique_ptr<TextClassifier> make_teacher(ConfigNode section, const LabelVocab& labels);

// Loads a classifier folder written by TextClassifier::save (type from kd.json; a Hugging Face
// BertForSequenceClassification folder without kd.json loads as "bert"). An int8 folder (kd quantize)
// comes back quantized (kd/models/quantize.h).
std::unique_ptr<TextClassifier> load_classifier(const std::string& dir);

}  // namespace kd
