// End to end through the `kd` binary: `kd cache` with the real MiniLM teacher (a fresh head saved as
// a classifier folder) on 200 SST-2 rows; the cache reopens under the expected key and matches the
// live teacher; bad input gives one error line, a non-zero exit and no file.
#include <gtest/gtest.h>


#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kd/data/bucket_batcher.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/knowledge_cache.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/classifier_registry.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::RunResult;

RunResult run_kd(const std::string& args, const fs::path& dir) { return test::run_kd(args, dir, 2); }

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

class CacheE2ETest : public ::testing::Test {
 protected:
  // One classifier folder for the suite: the pretrained encoder with a fresh two-class head.
  static void SetUpTestSuite() {
    dir_ = new fs::path(test::temp_dir("e2e_cache"));
    BertTextClassifierOptions o;
    o.path = test::model_dir();
    o.max_length = 64;
    auto teacher = BertTextClassifier::from_pretrained(o, LabelVocab({"0", "1"}));
    StagedDir staged(*dir_ / "teacher");
    teacher->save(staged.path().string());
    staged.commit();
    std::ifstream in(test::shared_data("sst2/train.tsv"));
    std::ofstream out(*dir_ / "rows.tsv");
    std::string line;
    for (int i = 0; i <= 200 && std::getline(in, line); ++i) out << line << "\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path* dir_;
};
fs::path* CacheE2ETest::dir_ = nullptr;

TEST_F(CacheE2ETest, CachesTheRealTeacherAndMatchesItLive) {
  const fs::path& dir = *dir_;
  fs::remove(dir / "rows.kdc");
  auto r = run_kd("cache --teacher teacher --data rows.tsv --out rows.kdc --label label", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir / "rows.kdc"));
  EXPECT_EQ(lines(r.out), 1u) << r.out;
  EXPECT_NE(r.out.find("cached 200 rows x 2 classes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("teacher accuracy"), std::string::npos) << r.out;

  auto teacher = load_classifier((dir / "teacher").string());
  TableOptions table;
  table.label_column = "label";
  const std::string data = (dir / "rows.tsv").string();
  auto cache = CachedKnowledge::open((dir / "rows.kdc").string(),
                                     make_cache_key((dir / "teacher").string(), *teacher, data, table, 0, false));
  ASSERT_EQ(cache->size(), 200);
  TextDataset dataset(read_table(data, table), teacher->tokenizer(), teacher->labels(), teacher->max_length(), data);
  BucketBatcherOptions bo;
  bo.batch_size = 50;
  BucketBatcher batcher(dataset, bo, teacher->tokenizer().pad_id());
  LiveTeacher live(*teacher);
  for (const auto& idx : batcher.epoch_plan(1)) {
    const Batch b = batcher.collate(idx);
    // Other batch compositions pad differently, so equal up to float rounding, not bit for bit.
    EXPECT_LE((cache->logits(b) - live.logits(b)).abs().max().item<double>(), 1e-4);
  }

  // Top-1 in half precision; the unlabelled default needs no label column.
  r = run_kd("cache --teacher teacher --data rows.tsv --out top1.kdc --top-k 1 --fp16", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no labelled rows"), std::string::npos) << r.out;
  TableOptions unlabelled;
  unlabelled.label_column = "";
  auto top1 = CachedKnowledge::open((dir / "top1.kdc").string(),
                                    make_cache_key((dir / "teacher").string(), *teacher, data, unlabelled, 1, true));
  EXPECT_LT(fs::file_size(dir / "top1.kdc"), fs::file_size(dir / "rows.kdc"));
  const Batch all = batcher.collate(batcher.epoch_plan(0).front());
  EXPECT_TRUE(torch::equal(top1->logits(all).argmax(1), cache->logits(all).argmax(1)));
}

TEST_F(CacheE2ETest, BadInputGivesOneLineErrorAndNoFile) {
  const fs::path& dir = *dir_;
  write_file_atomic((dir / "existing.kdc").string(), "keep me");
  struct Case {
    const char* name;
    std::string args;
    int code;
    std::string expect;
    const char* out;
  };
  const std::vector<Case> cases = {
      {"missing_data", "--teacher teacher --data nope.tsv --out a.kdc", 3, "nope.tsv", "a.kdc"},
      {"existing_out", "--teacher teacher --data rows.tsv --out existing.kdc", 2, "--overwrite", nullptr},
      {"wrong_text", "--teacher teacher --data rows.tsv --out b.kdc --text review", 5, "review", "b.kdc"},
      {"too_many_k", "--teacher teacher --data rows.tsv --out c.kdc --top-k 3", 2, "--top-k", "c.kdc"},
      {"missing_teacher", "--teacher nope_teacher --data rows.tsv --out d.kdc", 3, "nope_teacher", "d.kdc"},
      {"no_folder", "--teacher teacher --data rows.tsv --out nowhere/e.kdc", 3, "nowhere", "nowhere/e.kdc"},
  };
  for (const auto& c : cases) {
    auto r = run_kd("cache " + c.args + " --log-level warn", dir);
    EXPECT_EQ(r.code, c.code) << c.name << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1u) << c.name << ": " << r.err;
    EXPECT_EQ(r.err.rfind("kd: error: ", 0), 0u) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    if (c.out) {
      EXPECT_FALSE(fs::exists(dir / c.out)) << c.name;
    }
  }
  EXPECT_EQ(read_file((dir / "existing.kdc").string()), "keep me");
  auto r = run_kd("cache --teacher teacher --data rows.tsv --out existing.kdc --overwrite", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NO_THROW(CachedKnowledge::open_unchecked((dir / "existing.kdc").string()));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace kd
