// End to end through the `kd` binary: a short real fine-tuning run on an SST-2 subset, the saved
// folder loaded back by kd and by Hugging Face transformers, resume after an interruption, and the
// bad-input cases of train-teacher (one error line, non-zero exit, nothing half-written).
#include <gtest/gtest.h>
#include <signal.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/cuda.h>

#include "kd/data/text_dataset.h"
#include "kd/data/bucket_batcher.h"
#include "kd/io/atomic_file.h"
#include "kd/models/bert_text_classifier.h"
#include "test_paths.h"
#include "tools/run_kd.h"
#include "tools/hf_agreement.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

struct RunResult {
  int code;
  std::string err;
};

using test::head_tsv;

RunResult run_kd(const std::string& args, const fs::path& dir, const std::string& env = "") {
  auto r = test::run_kd(args, dir, 1, "", env);
  return {r.code, r.err};
}

// A small config on SST-2 subsets, with the real pretrained encoder.
fs::path write_setup(const fs::path& dir, const std::string& extra = "") {
  head_tsv(test::shared_data("sst2/train.tsv"), dir / "train.tsv", 96);
  head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 48);
  std::ofstream cfg(dir / "teacher.yaml");
  cfg << "run_dir: run\n"
      << "model: {type: bert, path: " << test::model_dir() << ", max_length: 48}\n"
      << "data: {train: train.tsv, valid_fraction: 0.1, test: dev.tsv, text: sentence, label: label}\n"
      << "train: {epochs: 2, batch_size: 16, lr: 1.0e-4, eval_every: 4, checkpoint_every: 3, seed: 7}\n"
      << extra;
  return dir / "teacher.yaml";
}

std::string last_line_count(const std::string& s) {
  size_t lines = 0;
  for (char c : s) lines += c == '\n';
  return std::to_string(lines);
}

TEST(TrainTeacherE2ETest, TrainsSavesAndLoadsInKdAndTransformers) {
  const auto dir = test::temp_dir("e2e_train_teacher");
  write_setup(dir);
  auto r = run_kd("train-teacher --config teacher.yaml", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"run/config.yaml", "run/metrics.json", "run/summary.json", "run/best/model.safetensors",
                        "run/best/config.json", "run/best/vocab.txt", "run/best/labels.json", "run/last/optimizer.pt"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const auto summary = read_json((dir / "run/summary.json").string());
  EXPECT_EQ(summary["steps"].get<int64_t>(), 12);  // 2 epochs x 6 batches of the 86 rows left after the slice
  // Checkpoints chosen on a 10-row slice held out of train.tsv (recorded), the figure measured on dev.tsv.
  EXPECT_EQ(summary["data"]["holdout_row_ids"].size(), 10u);
  EXPECT_EQ(summary["train_rows"].get<int64_t>(), 86);
  EXPECT_EQ(summary["test"]["rows"].get<int64_t>(), 48);
  EXPECT_TRUE(summary["warnings"].empty()) << summary["warnings"].dump();
  // The recorded test accuracy is what the saved model scores when run again.
  {
    auto ev = run_kd("eval --model run/best --data dev.tsv --batch-size 128 --out ev.json --log-level warn", dir);
    ASSERT_EQ(ev.code, 0) << ev.err;
    EXPECT_DOUBLE_EQ(read_json((dir / "ev.json").string())["accuracy"].get<double>(),
                     summary["test"]["accuracy"].get<double>());
  }

  // kd reloads the best folder with the teacher's labels; transformers loads the same folder and its
  // logits match kd's.
  auto teacher = BertTextClassifier::load((dir / "run/best").string());
  EXPECT_EQ(teacher->labels().labels(), (std::vector<std::string>{"0", "1"}));
  test::expect_transformers_agrees(dir / "run/best", dir / "dev.tsv", dir, 1e-4);
}

TEST(TrainTeacherE2ETest, ResumeAfterInterruptionMatchesUninterruptedRun) {
  const auto full = test::temp_dir("e2e_resume_full");
  write_setup(full);
  ASSERT_EQ(run_kd("train-teacher --config teacher.yaml", full).code, 0);

  const auto cut = test::temp_dir("e2e_resume_cut");
  write_setup(cut);
  auto first = run_kd("train-teacher --config teacher.yaml --stop-after 5", cut);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_FALSE(fs::exists(cut / "run/summary.json"));
  // A second start without --resume must not clobber the interrupted run.
  auto again = run_kd("train-teacher --config teacher.yaml", cut);
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  auto resumed = run_kd("train-teacher --config teacher.yaml --resume", cut);
  ASSERT_EQ(resumed.code, 0) << resumed.err;

  const auto a = read_json((full / "run/metrics.json").string())["history"];
  const auto b = read_json((cut / "run/metrics.json").string())["history"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_DOUBLE_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "evaluation " << i;
  }
}

// kill -9 at three points (during training, half-way through writing a checkpoint, after training but
// before the summary), then --resume: the final weights are bit-identical to an uninterrupted run's, and
// what the killed process left half-written is gone.
TEST(TrainTeacherE2ETest, KillNineAnywhereThenResumeEndsBitIdentical) {
  const auto full = test::temp_dir("e2e_kill_full");
  write_setup(full);
  ASSERT_EQ(run_kd("train-teacher --config teacher.yaml", full).code, 0);
  const auto want = read_file((full / "run/best/model.safetensors").string());
  for (const std::string fault : {"step:4", "checkpoint:2", "summary:1"}) {
    const auto dir = test::temp_dir("e2e_kill_" + fault.substr(0, fault.find(':')));
    write_setup(dir);
    const auto killed = run_kd("train-teacher --config teacher.yaml", dir, "KD_FAULT=" + fault);
    EXPECT_EQ(killed.code, 128 + SIGKILL) << fault << ": " << killed.err;  // the shell's code for a SIGKILL
    EXPECT_FALSE(fs::exists(dir / "run/summary.json")) << fault;
    const auto resumed = run_kd("train-teacher --config teacher.yaml --resume", dir);
    ASSERT_EQ(resumed.code, 0) << fault << ": " << resumed.err;
    EXPECT_TRUE(read_file((dir / "run/best/model.safetensors").string()) == want) << fault << ": weights differ";
    // Every evaluation alike but its clock.
    auto history = [](const fs::path& run) {
      auto h = read_json((run / "metrics.json").string())["history"];
      for (auto& record : h) record.erase("train_seconds");
      return h;
    };
    EXPECT_EQ(history(dir / "run"), history(full / "run")) << fault;
    for (const auto& e : fs::recursive_directory_iterator(dir / "run"))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << fault << ": " << e.path();
  }
}

// A disk that fills while the resume checkpoint is written: one line, the checkpoint before it intact,
// no temporary file or folder left. The full disk is a file-size limit on the process (ulimit -f, with
// SIGXFSZ ignored so that writes fail with EFBIG as they would with ENOSPC) between the model's size
// (~91 MB, written whole) and the optimizer state's (~2x that).
TEST(TrainTeacherE2ETest, AFullDiskWhileCheckpointingIsOneLineAndKeepsThePreviousCheckpoint) {
  const auto dir = test::temp_dir("e2e_disk_full");
  write_setup(dir);
  ASSERT_EQ(run_kd("train-teacher --config teacher.yaml --stop-after 3", dir).code, 0);
  ASSERT_EQ(read_json((dir / "run/last/trainer_state.json").string())["step"].get<int64_t>(), 3);
  const auto before = read_file((dir / "run/last/optimizer.pt").string());
  const std::string err_file = (dir / "stderr.txt").string();
  const std::string cmd = "cd " + dir.string() + " && bash -c \"trap '' XFSZ; ulimit -f 133120; exec " +
                          test::kd_exe() + " train-teacher --config teacher.yaml --resume --no-progress --threads 1" +
                          " --log-level warn\" 2>" + err_file + " >/dev/null";
  const int status = std::system(cmd.c_str());
  const std::string err = read_file(err_file);
  EXPECT_EQ(WEXITSTATUS(status), 3) << err;
  EXPECT_EQ(last_line_count(err), "1") << err;
  EXPECT_NE(err.find("optimizer.pt"), std::string::npos) << err;
  EXPECT_EQ(read_json((dir / "run/last/trainer_state.json").string())["step"].get<int64_t>(), 3);
  EXPECT_EQ(read_file((dir / "run/last/optimizer.pt").string()), before) << "the good checkpoint was touched";
  for (const auto& e : fs::recursive_directory_iterator(dir / "run"))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// Each bad input: non-zero exit, exactly one error line naming the place, no checkpoint left behind.
struct BadCase {
  const char* name;
  std::string extra_yaml;   // appended to the config
  std::string set_args;     // --set overrides
  std::string expect;       // substring of the error line
};

TEST(TrainTeacherE2ETest, BadInputGivesOneLineErrorAndNoCheckpoint) {
  const std::vector<BadCase> cases = {
      {"unknown_key", "extra_key: 1\n", "", "unknown config key 'extra_key'"},
      {"unknown_train_key", "", "--set train.lrr=0.1", "train.lrr"},
      {"unknown_type", "", "--set model.type=gpt9", "unknown teacher type 'gpt9'"},
      {"wrong_column", "", "--set data.text=review", "review"},
      {"missing_model", "", "--set model.path=/nonexistent/model", "/nonexistent/model"},
      {"bad_lr", "", "--set train.lr=-1", "train.lr"},
      {"unknown_label", "", "--set data.valid=dev_bad.tsv", "dev_bad.tsv:3"},
      {"empty_data", "", "--set data.train=empty.tsv", "empty.tsv"},
      {"missing_data", "", "--set data.train=nope.tsv", "nope.tsv"},
      {"bad_device", "", "--device gpu", "--device gpu: not a device (hint: use cpu, cuda or cuda:N)"},
      {"slice_of_nothing", "", "--set data.valid_fraction=0.001", "data.valid_fraction"},
      {"slice_of_everything", "", "--set data.valid_fraction=1", "data.valid_fraction"},
      {"slice_max_rows", "", "--set data.valid_max_rows=-3", "data.valid_max_rows"},
      {"slice_empties_a_class", "", "--set data.train=one_each.tsv --set data.valid_fraction=0.5",
       "no training row"},
  };
  for (const auto& c : cases) {
    const auto dir = test::temp_dir(std::string("e2e_bad_") + c.name);
    write_setup(dir, c.extra_yaml);
    {
      std::ofstream bad(dir / "dev_bad.tsv");
      bad << "sentence\tlabel\ngood movie\t1\nodd row\t7\n";
      std::ofstream empty(dir / "empty.tsv");
      empty << "sentence\tlabel\n";
      std::ofstream one_each(dir / "one_each.tsv");
      one_each << "sentence\tlabel\ngood movie\t1\nbad movie\t0\n";
    }
    auto r = run_kd("train-teacher --config teacher.yaml --log-level warn " + c.set_args, dir);
    EXPECT_NE(r.code, 0) << c.name;
    EXPECT_EQ(last_line_count(r.err), "1") << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("kd: error: "), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir / "run/best")) << c.name;
    EXPECT_FALSE(fs::exists(dir / "run/last")) << c.name;
  }
}

// Training rows without a label are left out with a warning that counts them. With every other row
// unlabelled and batches of 2, some batches hold no label at all; before, their loss was NaN and the
// steps were skipped (after the allowance: an error blaming the learning rate).
TEST(TrainTeacherE2ETest, UnlabelledTrainingRowsAreLeftOutWithAWarning) {
  const auto dir = test::temp_dir("e2e_unlabelled_rows");
  write_setup(dir, "");
  {
    std::ifstream in(dir / "train.tsv");
    std::string line, text;
    std::getline(in, line);
    text = line + "\n";
    for (int i = 0; std::getline(in, line); ++i)
      text += i % 2 == 0 ? line.substr(0, line.rfind('\t') + 1) + "\n" : line + "\n";
    write_file_atomic((dir / "train.tsv").string(), text);
  }
  auto r = run_kd("train-teacher --config teacher.yaml --stop-after 3 --set train.batch_size=2 "
                  "--set train.max_nonfinite_steps=0",
                  dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("training rows of train.tsv have no label and are left out of fine-tuning"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("NaN"), std::string::npos) << r.err;
}

// --device cuda on a GPU machine: the run trains there, says so, and resumes there. Without a GPU:
// skipped, not passed.
TEST(TrainTeacherE2ETest, DeviceCudaTrainsThere) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  const auto dir = test::temp_dir("e2e_teacher_cuda");
  write_setup(dir);
  auto r = run_kd("train-teacher --config teacher.yaml --log-level warn --device cuda", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto summary = read_json((dir / "run/summary.json").string());
  EXPECT_EQ(summary.at("device").get<std::string>(), "cuda");
  EXPECT_TRUE(fs::exists(dir / "run/best/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "run/last/rng_cuda.pt"));
  auto resumed = run_kd("train-teacher --config teacher.yaml --log-level warn --device cuda --resume", dir);
  EXPECT_EQ(resumed.code, 0) << resumed.err;
}

// --device cuda on a machine without a GPU: the one-line ConfigError (exit 2) before anything is read or
// written, not a run on the CPU instead. (Where a GPU is visible there is no refusal: skipped.)
TEST(TrainTeacherE2ETest, DeviceCudaWithoutADeviceFailsInOneLineWithNothingWritten) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: there is no refusal to check";
  const auto dir = test::temp_dir("e2e_teacher_no_cuda");
  write_setup(dir);
  auto r = run_kd("train-teacher --config teacher.yaml --log-level warn --device cuda", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(last_line_count(r.err), "1") << r.err;
  EXPECT_EQ(r.err.rfind("kd: error: --device cuda: no CUDA device is visible (LibTorch has CUDA support: ", 0), 0u)
      << r.err;
  EXPECT_NE(r.err.find("(hint: use --device cpu)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run")) << "nothing of the run folder is written";
}

}  // namespace
}  // namespace kd
