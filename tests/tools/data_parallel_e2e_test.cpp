// kd train-teacher as a data-parallel job on loopback Gloo: two ranks started the way torchrun starts them
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and by torchrun itself end with the weights of one
// process on the same global batch; a rank killed mid-run stops the other with one line naming it, and the
// job resumes on another number of ranks; the launcher's bad variables are one-line errors.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "free_port.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::error_lines;

struct RankRun {
  int code;
  std::string err;
};

// Starts `world` kd processes at once in `dir`, rank r with torchrun's variables, `extra_env[r]` and
// `extra_args[r]`, one thread each, and waits for all of them.
std::vector<RankRun> run_ranks(const std::string& args, const fs::path& dir, int world,
                               const std::vector<std::string>& extra_env = {}, double* seconds = nullptr,
                               const std::vector<std::string>& extra_args = {}) {
  const int port = test::free_port();
  std::string cmd = "cd " + dir.string() + " || exit 1; ";
  for (int r = 0; r < world; ++r) {
    const std::string tag = "rank" + std::to_string(r);
    cmd += "( RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) + " WORLD_SIZE=" +
           std::to_string(world) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
           (r < static_cast<int>(extra_env.size()) ? extra_env[r] : "") + " " + test::kd_exe() + " " + args +
           (r < static_cast<int>(extra_args.size()) ? " " + extra_args[r] : "") + " --no-progress --threads 1 2>" + tag + ".err >" + tag + ".out; echo $? >" + tag + ".code ) & ";
  }
  cmd += "wait";
  const auto start = std::chrono::steady_clock::now();
  (void)std::system(cmd.c_str());
  if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<RankRun> out;
  for (int r = 0; r < world; ++r) {
    const std::string tag = "rank" + std::to_string(r);
    out.push_back({std::stoi(read_file((dir / (tag + ".code")).string())), read_file((dir / (tag + ".err")).string())});
  }
  return out;
}

// A short fine-tuning of the real encoder with dropout off, so that one process and two ranks compute the
// same function: 58 training rows, global batches of 15 (the last of 13: slices of 8 and 7, 7 and 6, so that
// weighting each rank by its rows matters), 2 epochs = 8 optimizer steps.
// AdamW's eps is 1e-3, not 1e-8: the attention key bias has a zero gradient in exact arithmetic (adding q·b
// to every key's score of a query leaves its softmax unchanged), so it gets rounding noise, which eps 1e-8
// turns into steps of about lr whatever their size (one process on 1 and on 2 threads differed there by
// 3e-5). With eps 1e-3 such a weight moves linearly in its gradient, and every tensor is compared.
void write_setup(const fs::path& dir) {
  test::head_tsv(test::shared_data("sst2/train.tsv"), dir / "train.tsv", 64);
  test::head_tsv(test::shared_data("sst2/dev.tsv"), dir / "dev.tsv", 24);
  std::ofstream(dir / "teacher.yaml")
      << "run_dir: run\n"
      << "model: {type: bert, path: " << test::model_dir() << ", max_length: 32, dropout: 0.0}\n"
      << "data: {train: train.tsv, valid_fraction: 0.1, test: dev.tsv, text: sentence, label: label}\n"
      << "train: {epochs: 2, batch_size: 15, lr: 5.0e-4, eps: 1.0e-3, checkpoint_every: 2, seed: 7}\n";
}

// The largest |a - b| over the tensors of two safetensors files with the same names.
double max_difference(const fs::path& a, const fs::path& b) {
  SafeTensorsFile fa(a.string()), fb(b.string());
  double worst = 0;
  for (const auto& name : fa.names()) {
    EXPECT_TRUE(fb.contains(name)) << name;
    if (!fb.contains(name)) continue;
    worst = std::max(worst, (fa.load(name, torch::kFloat32) - fb.load(name, torch::kFloat32)).abs().max().item<double>());
  }
  return worst;
}

class DataParallelE2ETest : public ::testing::Test {
 protected:
  // ctest runs each test in its own process, possibly at the same time: one folder per process.
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("e2e_data_parallel");
    write_setup(dir_);
  }
  // One process, two threads: the reference the ranks are compared with (made by the tests that need it).
  static void run_reference() {
    if (one_code_ >= 0) return;  // once per process
    auto r = test::run_kd("train-teacher --config teacher.yaml --run-dir one", dir_, 2);
    one_code_ = r.code;
    one_err_ = r.err;
  }
  static fs::path dir_;
  static int one_code_;
  static std::string one_err_;
};
fs::path DataParallelE2ETest::dir_;
int DataParallelE2ETest::one_code_ = -1;
std::string DataParallelE2ETest::one_err_;

TEST_F(DataParallelE2ETest, TwoRanksEndWithTheWeightsOfOneProcess) {
  run_reference();
  ASSERT_EQ(one_code_, 0) << one_err_;
  const auto ranks = run_ranks("train-teacher --config teacher.yaml --run-dir two", dir_, 2);
  for (const auto& r : ranks) ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(ranks[0].err.find("2 ranks"), std::string::npos) << ranks[0].err;
  EXPECT_EQ(ranks[1].err.find("training:"), std::string::npos) << "rank 1 logs warnings only: " << ranks[1].err;
  const auto s1 = read_json((dir_ / "one/summary.json").string());
  const auto s2 = read_json((dir_ / "two/summary.json").string());
  EXPECT_EQ(s1["ranks"].get<int>(), 1);
  EXPECT_EQ(s2["ranks"].get<int>(), 2);
  EXPECT_EQ(s2["steps"].get<int64_t>(), 8);
  // Both rank's random-number states are in the checkpoint.
  EXPECT_TRUE(fs::exists(dir_ / "two/last/rng-rank1.pt"));
  const double diff = max_difference(dir_ / "one/last/model.safetensors", dir_ / "two/last/model.safetensors");
  EXPECT_LE(diff, 1e-5);
  // The comparison can fail: the weights moved far more than the tolerance from the pretrained ones.
  SafeTensorsFile trained((dir_ / "one/last/model.safetensors").string());
  SafeTensorsFile pretrained(test::model_dir() + "/model.safetensors");
  double largest_move = 0;
  for (const auto& name : trained.names()) {
    for (const std::string& candidate : {name, name.substr(name.find('.') + 1)})
      if (pretrained.contains(candidate) && pretrained.info(candidate).shape == trained.info(name).shape)
        largest_move = std::max(largest_move, (trained.load(name, torch::kFloat32) -
                                               pretrained.load(candidate, torch::kFloat32)).abs().max().item<double>());
  }
  EXPECT_GT(largest_move, 100 * 1e-5) << "training moved the weights; the 1e-5 agreement is not trivial";
  EXPECT_DOUBLE_EQ(s2["test"]["accuracy"].get<double>(), s1["test"]["accuracy"].get<double>());
}

TEST_F(DataParallelE2ETest, TorchrunStartsTheRanks) {
  run_reference();
  ASSERT_EQ(one_code_, 0) << one_err_;
  const fs::path torchrun = fs::path(test::python()).parent_path() / "torchrun";
  if (!fs::exists(torchrun)) GTEST_SKIP() << "no torchrun beside " << test::python();
  const std::string cmd = "cd " + dir_.string() + " && " + torchrun.string() +
                          " --standalone --nproc-per-node=2 --no-python " + test::kd_exe() +
                          " train-teacher --config teacher.yaml --run-dir torchrun --threads 1 --no-progress"
                          " >torchrun.out 2>torchrun.err";
  const int status = std::system(cmd.c_str());
  ASSERT_EQ(WEXITSTATUS(status), 0) << read_file((dir_ / "torchrun.err").string());
  EXPECT_EQ(read_json((dir_ / "torchrun/summary.json").string())["ranks"].get<int>(), 2);
  EXPECT_LE(max_difference(dir_ / "one/last/model.safetensors", dir_ / "torchrun/last/model.safetensors"), 1e-5);
}

TEST_F(DataParallelE2ETest, AKilledRankStopsTheOtherNamingItAndTheJobResumesOnOneRank) {
  run_reference();
  ASSERT_EQ(one_code_, 0) << one_err_;
  double seconds = 0;
  // Rank 1 dies by SIGKILL right after its 5th optimizer step (the checkpoint of step 4 is written).
  const auto ranks = run_ranks("train-teacher --config teacher.yaml --run-dir killed --dist-timeout 120", dir_, 2,
                               {"", "KD_FAULT=step:5"}, &seconds);
  EXPECT_EQ(ranks[1].code, 128 + 9) << ranks[1].err;
  EXPECT_EQ(ranks[0].code, 7) << ranks[0].err;
  EXPECT_EQ(error_lines(ranks[0].err), 1u) << ranks[0].err;
  EXPECT_NE(ranks[0].err.find("lost rank 1"), std::string::npos) << ranks[0].err;
  EXPECT_LT(seconds, 100.0) << "the survivor stopped well before its 120 s collective timeout";
  EXPECT_FALSE(fs::exists(dir_ / "killed/summary.json"));
  // Resumed by one process: same global batches, same data order; dropout is off, so the same weights.
  auto resumed = test::run_kd("train-teacher --config teacher.yaml --run-dir killed --resume", dir_, 2);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("written by 2 rank(s), this run has 1"), std::string::npos) << resumed.err;
  EXPECT_LE(max_difference(dir_ / "one/last/model.safetensors", dir_ / "killed/last/model.safetensors"), 1e-5);
}

TEST_F(DataParallelE2ETest, DistillOnTwoRanksBuildsTheCacheInPartsAndTrainsTheSameStudent) {
  run_reference();
  ASSERT_EQ(one_code_, 0) << one_err_;
  std::ofstream(dir_ / "distill.yaml")
      << "run_dir: d\nteacher: one/best\n"
      << "data: {train: train.tsv, valid_fraction: 0.1, test: dev.tsv, text: sentence, label: label}\n"
      << "student: {type: bilstm, embedding_dim: 32, hidden: 24, init_embeddings: teacher, dropout: 0.0}\n"
      << "distill: {temperature: 2.0, alpha: 0.5}\n"
      << "train: {epochs: 2, batch_size: 15, lr: 2.0e-3, checkpoint_every: 3, eval_batch_size: 8}\n"
      << "report: {seeds: [1], baseline: false, latency_repeats: 2, latency_warmup: 1}\n";
  auto one = test::run_kd("distill --config distill.yaml --run-dir d1", dir_, 1);  // 1 thread, as each rank
  ASSERT_EQ(one.code, 0) << one.err;
  const auto ranks = run_ranks("distill --config distill.yaml --run-dir d2", dir_, 2);
  for (const auto& r : ranks) ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json((dir_ / "d2/report.json").string())["settings"]["ranks"].get<int>(), 2);
  // The cache: each rank ran every other batch of 8 (58 + 6 rows), rank 0 merged and wrote them.
  SafeTensorsFile c1((dir_ / "d1/knowledge/train.safetensors").string());
  SafeTensorsFile c2((dir_ / "d2/knowledge/train.safetensors").string());
  EXPECT_TRUE(c1.load("rows").equal(c2.load("rows")));
  EXPECT_LE((c1.load("logits") - c2.load("logits")).abs().max().item<double>(), 1e-5);
  EXPECT_LE(max_difference(dir_ / "d1/student/model.safetensors", dir_ / "d2/student/model.safetensors"), 1e-5);
}

// kd distill-lm on two ranks: the same students as one process with one thread, every tensor within 1e-5.
// AdamW divides by sqrt(v) + eps: with the default eps (1e-8), a weight whose gradient is of rounding size
// (the tied embedding's rows for tokens absent from the windows, a bias whose exact gradient is 0) moves by
// about lr whatever the sign of that noise, so summing the rows in another order (3 + 2 rows instead of 5)
// could move it by up to 2 lr a step: 1.6e-5 was seen in v_proj. With eps = 1e-3 here the update is linear
// in the gradient for such weights (lr · g / eps), and the runs' difference stays at the gradients' rounding
// (~1e-7 relative) times lr / eps per step, far below the bound; a wrong row weighting still fails it.
TEST_F(DataParallelE2ETest, DistillLmOnTwoRanksTrainsTheSameStudents) {
  std::ofstream(dir_ / "lm.yaml")
      << "teacher: " << test::llm_gguf() << "\nteacher_layers: 2\n"
      << "data:\n  train: " << test::shared_data("wikitext2/wiki.valid.tokens")
      << "\n  eval: " << test::shared_data("wikitext2/wiki.test.tokens")
      << "\n  train_tokens: 448\n  eval_tokens: 96\n  seq_len: 32\n"
      << "student: {num_layers: 1}\n"
      << "distill: {divergence: fkl, temperature: 1.0, chunk: 48, teacher_source: cache, top_k: 16}\n"
      // 14 windows in global batches of 5: slices of 3 and 2, 3 and 2, 2 and 2
      << "train: {batch_size: 5, lr: 0.001, eps: 1.0e-3, curve_points: 2, curve_eval_tokens: 64, checkpoint_every: 2}\n"
      << "eval: {speed_prompt_tokens: 16, speed_new_tokens: 8, speed_warmup: 0, speed_repeats: 1}\n";
  auto one = test::run_kd("distill-lm --config lm.yaml --run-dir lm1", dir_, 1);
  ASSERT_EQ(one.code, 0) << one.err;
  const auto ranks = run_ranks("distill-lm --config lm.yaml --run-dir lm2", dir_, 2);
  for (const auto& r : ranks) ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json((dir_ / "lm2/report.json").string())["settings"]["ranks"].get<int>(), 2);
  for (const char* m : {"student", "baseline"}) {
    SafeTensorsFile a((dir_ / "lm1" / m / "model.safetensors").string());
    SafeTensorsFile b((dir_ / "lm2" / m / "model.safetensors").string());
    for (const auto& name : a.names()) {
      const double diff = (a.load(name) - b.load(name)).abs().max().item<double>();
      EXPECT_LE(diff, 1e-5) << m << " " << name;
    }
  }
  EXPECT_EQ(read_json((dir_ / "lm1/student_train.json").string())["curve"].size(),
            read_json((dir_ / "lm2/student_train.json").string())["curve"].size());
}

TEST_F(DataParallelE2ETest, BadLauncherVariablesAndMismatchedRanksAreOneLineErrors) {
  const auto& dir = dir_;
  auto no_rank = test::run_kd("train-teacher --config teacher.yaml --run-dir bad1", dir, 1, "", "WORLD_SIZE=2");
  EXPECT_EQ(no_rank.code, 2) << no_rank.err;
  EXPECT_EQ(error_lines(no_rank.err), 1u) << no_rank.err;
  EXPECT_NE(no_rank.err.find("RANK is not set"), std::string::npos) << no_rank.err;
  auto too_big = test::run_kd("train-teacher --config teacher.yaml --run-dir bad1", dir, 1, "", "WORLD_SIZE=2 RANK=2");
  EXPECT_EQ(too_big.code, 2) << too_big.err;
  EXPECT_NE(too_big.err.find("not below WORLD_SIZE"), std::string::npos) << too_big.err;
  EXPECT_FALSE(fs::exists(dir / "bad1")) << "nothing written";
  // A rendezvous nobody serves: an error after --dist-timeout, not a hang.
  const auto start = std::chrono::steady_clock::now();
  auto lonely = test::run_kd("train-teacher --config teacher.yaml --run-dir bad2 --dist-timeout 2", dir, 1, "",
                             "WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(test::free_port()));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 60.0);
  EXPECT_EQ(lonely.code, 7) << lonely.err;
  EXPECT_EQ(error_lines(lonely.err), 1u) << lonely.err;
  EXPECT_NE(lonely.err.find("could not join the rendezvous"), std::string::npos) << lonely.err;
  // A command that does not run data-parallel refuses the launcher rather than run twice.
  auto eval = test::run_kd("eval --model " + test::model_dir() + " --data dev.tsv", dir, 1, "", "WORLD_SIZE=2 RANK=0");
  EXPECT_EQ(eval.code, 2) << eval.err;
  EXPECT_NE(eval.err.find("does not run data-parallel"), std::string::npos) << eval.err;
  // Ranks started with different settings: rank 1 names the first differing key; neither trains.
  const auto mixed = run_ranks("train-teacher --config teacher.yaml --run-dir bad3 --dist-timeout 60", dir, 2, {},
                               nullptr, {"", "--set train.lr=1.0e-3"});
  EXPECT_EQ(mixed[1].code, 7) << mixed[1].err;
  EXPECT_EQ(error_lines(mixed[1].err), 1u) << mixed[1].err;
  EXPECT_NE(mixed[1].err.find("'train.lr' differs from rank 0"), std::string::npos) << mixed[1].err;
  EXPECT_NE(mixed[0].code, 0) << mixed[0].err;
  EXPECT_EQ(error_lines(mixed[0].err), 1u) << mixed[0].err;
  EXPECT_FALSE(fs::exists(dir / "bad3/last")) << "no rank trained";
}

}  // namespace
}  // namespace kd
