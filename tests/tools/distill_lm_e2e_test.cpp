// DistillLmE2ETest: `kd distill-lm` through the binary on a tiny setup — the real SmolLM2 GGUF truncated
// to 2 layers as the teacher, a 1-layer student, a few hundred tokens of wikitext-2 — in token mode with
// the top-k cache (report with its declared targets and held-out slice, student folder, `kd perplexity`
// on it, --resume, a cache built with other settings), then sequence and GKD modes (GKD with data.valid
// naming the evaluation file: warned), and bad input (one error line, non-zero exit).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kd/io/atomic_file.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::RunResult;

RunResult run_kd(const std::string& args, const fs::path& dir) { return test::run_kd(args, dir, 2); }

void write_config(const fs::path& dir) {
  std::ofstream cfg(dir / "lm.yaml");
  cfg << "run_dir: run\nteacher: " << test::llm_gguf() << "\nteacher_layers: 2\n"
      << "data:\n  train: " << test::shared_data("wikitext2/wiki.valid.tokens")
      << "\n  eval: " << test::shared_data("wikitext2/wiki.test.tokens")
      << "\n  train_tokens: 384\n  eval_tokens: 192\n  seq_len: 32\n"
      << "student: {num_layers: 1}\n"
      << "distill: {divergence: fkl, temperature: 1.0, chunk: 48, teacher_source: cache, top_k: 16}\n"
      << "train: {batch_size: 4, lr: 0.001, curve_points: 2, curve_eval_tokens: 64}\n"
      << "eval: {speed_prompt_tokens: 16, speed_new_tokens: 8, speed_warmup: 0, speed_repeats: 1}\n"
      << "report: {targets: {non_embedding_ratio: 0.75, perplexity_below_baseline: true, generate_speedup: 1}}\n";
}

TEST(DistillLmE2ETest, TokenModeWithCacheReportResumeAndPerplexity) {
  const auto dir = test::temp_dir("distill_lm_e2e");
  write_config(dir);
  auto r = run_kd("distill-lm --config lm.yaml", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = read_json((dir / "run/report.json").string());
  for (const char* m : {"teacher", "student", "baseline"}) {
    EXPECT_GT(report[m]["perplexity"]["perplexity"].get<double>(), 1.0) << m;
    EXPECT_GT(report[m]["profile"]["generate_tokens_per_s"].get<double>(), 0.0) << m;
  }
  EXPECT_EQ(report["student"]["profile"]["layers"], 1);
  EXPECT_EQ(report["train_tokens"], 384);
  EXPECT_EQ(report["student"]["curve"].size(), 3u);  // 3 steps, a point every max(1, 3 / 2) = 1 step
  // The declared targets, judged: a 1-of-2-layer student holds 1/2 of the non-embedding parameters.
  ASSERT_EQ(report["targets"].size(), 3u);
  EXPECT_EQ(report["targets"][0]["key"], "non_embedding_ratio");
  EXPECT_EQ(report["targets"][0]["verdict"], "met");
  EXPECT_EQ(report["targets"][1]["key"], "perplexity_below_baseline");
  EXPECT_EQ(report["targets"][2]["key"], "generate_speedup");
  for (const auto& t : report["targets"]) {
    const std::string v = t["verdict"];
    EXPECT_TRUE(v == "met" || v == "not met" || v == "within noise") << t.dump();
  }
  // The curves' held-out slice: the 64 tokens of wiki.valid after the 384 trained on; no warning.
  EXPECT_EQ(report["held_out"]["source"], "data.train (unused tail)");
  EXPECT_EQ(report["held_out"]["token_begin"], 384);
  EXPECT_EQ(report["held_out"]["token_end"], 448);
  EXPECT_TRUE(report["warnings"].empty());
  const std::string md = read_file((dir / "run/report.md").string());
  EXPECT_NE(md.find("(`generate_speedup`)"), std::string::npos) << md;
  EXPECT_NE(md.find("tokens 384–448 of `"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(dir / "run/report.md"));
  EXPECT_TRUE(fs::exists(dir / "run/curves.svg"));
  EXPECT_TRUE(fs::exists(dir / "run/teacher_cache/topk.kdlm"));
  EXPECT_TRUE(fs::exists(dir / "run/student/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "run/baseline/config.json"));

  // The saved student evaluates to the perplexity the report gives it.
  r = run_kd("perplexity --model run/student --data " + test::shared_data("wikitext2/wiki.test.tokens") +
                 " --max-tokens 192 --seq-len 32",
             dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const double ppl = report["student"]["perplexity"]["perplexity"].get<double>();
  const auto at = r.out.find("perplexity ");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_NEAR(std::stod(r.out.substr(at + 11)), ppl, 1e-4 * ppl) << r.out;

  // Without --resume or --overwrite an existing run is refused; with --resume the students are kept.
  r = run_kd("distill-lm --config lm.yaml", dir);
  EXPECT_EQ(r.code, 2);
  r = run_kd("distill-lm --config lm.yaml --resume", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("already trained"), std::string::npos) << r.err;
  // A resume with other settings is refused before anything is read, naming the key (the cache's own key
  // check, which would refuse the cache built with top_k 16, stays behind it: LmDistillTest.TopKCacheRoundTripAndChecks).
  const std::string saved = read_file((dir / "run/config.yaml").string());
  r = run_kd("distill-lm --config lm.yaml --resume --set distill.top_k=8", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("'distill.top_k': is 8 but the run being resumed has 16"), std::string::npos) << r.err;
  EXPECT_EQ(read_file((dir / "run/config.yaml").string()), saved) << "a refused resume leaves the config as it was";
}

TEST(DistillLmE2ETest, SequenceAndGkdModes) {
  const auto dir = test::temp_dir("distill_lm_e2e_modes");
  write_config(dir);
  const std::string eval_file = test::shared_data("wikitext2/wiki.test.tokens");
  for (const std::string mode : {"sequence", "gkd"}) {
    // GKD's curves are measured on the evaluation file through data.valid: allowed, and warned.
    const std::string valid = mode == "gkd" ? " --set data.valid=" + eval_file : "";
    auto r = run_kd("distill-lm --config lm.yaml --run-dir run_" + mode + " --set distill.mode=" + mode +
                        " --set baseline=false --set data.train_tokens=128 --set distill.generate.prompt_tokens=8"
                        " --set distill.generate.new_tokens=8 --set distill.gkd_lambda=0.5" + valid,
                    dir);
    ASSERT_EQ(r.code, 0) << mode << ": " << r.err;
    const auto report = read_json((dir / ("run_" + mode) / "report.json").string());
    EXPECT_EQ(report["settings"]["mode"], mode);
    EXPECT_FALSE(report.contains("baseline"));
    EXPECT_EQ(report["targets"][1]["verdict"], "not measured") << mode;  // no baseline to compare with
    const std::string md = read_file((dir / ("run_" + mode) / "report.md").string());
    if (mode == "gkd") {
      EXPECT_EQ(report["held_out"]["source"], "data.valid");
      EXPECT_EQ(report["held_out"]["token_begin"], 0);
      EXPECT_EQ(report["held_out"]["token_end"], 64);
      ASSERT_EQ(report["warnings"].size(), 1u);
      EXPECT_NE(report["warnings"][0].get<std::string>().find("selection on the reported set"), std::string::npos);
      EXPECT_NE(md.find("Warning: selection on the reported set"), std::string::npos) << md;
      EXPECT_NE(r.err.find("selection on the reported set"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(report["held_out"]["source"], "data.train (unused tail)");
      EXPECT_TRUE(report["warnings"].empty());
      EXPECT_EQ(md.find("Warning"), std::string::npos) << md;
    }
  }
}

// kill -9 after an optimizer step (before that step's checkpoint), half-way through a checkpoint, and in the
// baseline's training: --resume continues from the last checkpoint (or the finished student) and both
// students end byte-identical to an uninterrupted run's, with the same curve; nothing half-written is left.
TEST(DistillLmE2ETest, KillNineAnywhereThenResumeEndsBitIdentical) {
  const auto dir = test::temp_dir("e2e_distill_lm_kill");
  write_config(dir);
  // 14 windows of 32 tokens in batches of 3: 5 steps per student, a checkpoint every 2.
  const std::string args = "distill-lm --config lm.yaml --set data.train_tokens=448 --set train.batch_size=3 "
                           "--set train.checkpoint_every=2";
  auto ref = test::run_kd(args + " --run-dir ref", dir, 1);
  ASSERT_EQ(ref.code, 0) << ref.err;
  EXPECT_FALSE(fs::exists(dir / "ref/student_last")) << "a saved student supersedes its checkpoint";
  for (const std::string fault : {"step:4", "checkpoint:2", "step:7"}) {
    const std::string run = "run-" + fault.substr(0, fault.find(':'));
    fs::remove_all(dir / run);
    auto killed = test::run_kd(args + " --run-dir " + run, dir, 1, "", "KD_FAULT=" + fault);
    EXPECT_EQ(killed.code, 128 + 9) << fault << ": " << killed.err;
    auto resumed = test::run_kd(args + " --run-dir " + run + " --resume", dir, 1);
    ASSERT_EQ(resumed.code, 0) << fault << ": " << resumed.err;
    if (fault != "step:7")
      EXPECT_NE(resumed.err.find("resuming the student from"), std::string::npos) << fault << ": " << resumed.err;
    for (const char* m : {"student", "baseline"}) {
      EXPECT_TRUE(read_file((dir / run / m / "model.safetensors").string()) ==
                  read_file((dir / "ref" / m / "model.safetensors").string()))
          << fault << ": " << m << " differs";
      EXPECT_EQ(read_json((dir / run / (std::string(m) + "_train.json")).string())["curve"],
                read_json((dir / "ref" / (std::string(m) + "_train.json")).string())["curve"])
          << fault << " " << m;
    }
    for (const auto& e : fs::recursive_directory_iterator(dir / run))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << fault << ": " << e.path();
    EXPECT_FALSE(fs::exists(dir / run / "student_last")) << fault;
  }
}

TEST(DistillLmE2ETest, BadInputIsOneErrorLine) {
  const auto dir = test::temp_dir("distill_lm_e2e_bad");
  write_config(dir);
  struct Case {
    std::string set, message;
  };
  for (const auto& c : std::vector<Case>{{"distill.divergence=kl", "known divergences: fkl, rkl, jsd, tvd, skew_kl, skew_rkl"},
                                         {"distill.chunk=0", "distill.chunk"},
                                         {"data.train_tokens=0", "data.valid"},
                                         {"report.targets.speedup_b1=3", "unknown target 'speedup_b1'"},
                                         {"distill.gkd_lambda=2", "[0, 1]"},
                                         {"student.num_layers=2", "not smaller than the teacher"}}) {
    const auto r = run_kd("distill-lm --config lm.yaml --overwrite --set " + c.set, dir);
    EXPECT_EQ(r.code, 2) << c.set << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.set << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir / "run/report.json")) << c.set;
  }
  // The causal-LM commands run on the CPU only, GPU or not: --device cuda is refused, naming the command.
  const auto r = run_kd("distill-lm --config lm.yaml --overwrite --device cuda", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("kd: error: --device cuda: kd distill-lm runs on the CPU only (hint: use --device cpu)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir / "run/report.json"));
}

}  // namespace
}  // namespace kd
