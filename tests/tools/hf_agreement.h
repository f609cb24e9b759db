// Hugging Face transformers loads a kd classification folder as a user would
// (tests/python/hf_classify.py) and must tokenise the rows of a TSV file to the same ids and give the
// same logits as kd, within `tolerance`. For the e2e tests of every command that writes such a folder.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kd/data/bucket_batcher.h"
#include "kd/data/table_reader.h"
#include "kd/data/text_dataset.h"
#include "kd/io/atomic_file.h"
#include "kd/models/classifier_registry.h"
#include "test_paths.h"

namespace kd::test {

inline void expect_transformers_agrees(const std::filesystem::path& folder, const std::filesystem::path& tsv,
                                       const std::filesystem::path& work, double tolerance) {
  auto model = load_classifier(folder.string());
  TableOptions table;
  auto rows = read_table(tsv.string(), table);
  TextDataset data(rows, model->tokenizer(), model->labels(), model->max_length(), tsv.string());
  {
    std::ofstream s(work / "sentences.txt");
    for (const auto& row : rows) s << row.texts[0] << "\n";
  }
  const std::string cmd = python() + " " + source_dir() + "/tests/python/hf_classify.py " + folder.string() + " " +
                          (work / "sentences.txt").string() + " " + (work / "hf.json").string() + " " +
                          std::to_string(model->max_length());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto hf = read_json((work / "hf.json").string());
  EXPECT_EQ(hf["id2label"].size(), static_cast<size_t>(model->labels().size()));
  torch::NoGradGuard no_grad;
  model->module().eval();
  BucketBatcherOptions bo;
  bo.batch_size = static_cast<int64_t>(rows.size());
  bo.shuffle = false;
  BucketBatcher batcher(data, bo, model->tokenizer().pad_id());
  std::vector<int64_t> all(rows.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  Batch batch = batcher.collate(all);
  auto ids = hf["input_ids"].get<std::vector<std::vector<int64_t>>>();
  ASSERT_EQ(ids.size(), rows.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    for (size_t t = 0; t < ids[i].size(); ++t) {
      const int64_t kd_id = t < static_cast<size_t>(batch.input_ids.size(1)) ? batch.input_ids[i][t].item<int64_t>() : 0;
      ASSERT_EQ(kd_id, ids[i][t]) << "row " << i << " token " << t;
    }
  }
  auto logits = model->forward(batch).logits;  // (B, C)
  const auto rows_hf = hf["logits"].get<std::vector<std::vector<float>>>();
  std::vector<float> flat;
  for (const auto& r : rows_hf) flat.insert(flat.end(), r.begin(), r.end());
  auto expected = torch::tensor(flat).reshape({static_cast<int64_t>(rows_hf.size()), -1});  // (B, C)
  const double diff = (logits - expected).abs().max().item<double>();
  EXPECT_LE(diff, tolerance) << "kd vs transformers logits on " << folder;
}

}  // namespace kd::test
