#include "kd/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "kd/data/bucket_batcher.h"
#include "kd/error.h"
#include "kd/eval/evaluate.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "kd/losses/soft_label_losses.h"
#include "kd/train/data_parallel.h"
#include "kd/train/train_step.h"
#include "kd/util/device.h"
#include "kd/util/fault.h"
#include "kd/util/log.h"
#include "kd/util/precision.h"
#include "kd/util/progress_bar.h"

namespace fs = std::filesystem;

namespace kd {

nlohmann::json EvalRecord::to_json() const {
  return {{"step", step}, {"epoch", epoch}, {"accuracy", accuracy}, {"macro_f1", macro_f1},
          {"loss", loss}, {"train_loss", train_loss}, {"train_seconds", train_seconds}};
}

EvalRecord EvalRecord::from_json(const nlohmann::json& j) {
  EvalRecord r;
  r.step = j.at("step").get<int64_t>();
  r.epoch = j.at("epoch").get<double>();
  r.accuracy = j.at("accuracy").get<double>();
  r.macro_f1 = j.at("macro_f1").get<double>();
  r.loss = j.at("loss").get<double>();
  r.train_seconds = j.at("train_seconds").get<double>();
  r.train_loss = j.value("train_loss", 0.0);
  return r;
}

torch::Tensor classification_loss(const ModelOutput& output, const Batch& batch) {
  // Unlabelled rows (-1) are left out of the mean; with none labelled the loss is 0 with a graph (backward
  // is then a no-op), not cross_entropy's 0/0 = NaN.
  const auto per_row = torch::nn::functional::cross_entropy(
      output.logits, batch.labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kNone));  // (B)
  return masked_mean(per_row, batch.labels.ge(0));
}

void save_module_state(const torch::nn::Module& module, const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : module.named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers()) tensors.emplace_back(b.key(), b.value().detach());
  save_safetensors(path, tensors);
}

namespace {

// torch::save straight to a file throws from the stream writer's destructor when the disk fills (the
// process then aborts: terminate, exit 134, the staging folder left behind). Serialised in memory and
// written by write_file_atomic, a full disk is an IoError naming the file, and the folders are cleaned up.
template <class T>
void torch_save_file(const T& value, const std::string& path) {
  std::ostringstream bytes;
  torch::save(value, bytes);
  write_file_atomic(path, bytes.str());
}

}  // namespace

void save_optimizer_file(const torch::optim::Optimizer& optimizer, const std::string& path) {
  torch_save_file(optimizer, path);
}
void save_tensor_file(const torch::Tensor& tensor, const std::string& path) { torch_save_file(tensor, path); }

void load_module_state(torch::nn::Module& module, const std::string& path) {
  SafeTensorsFile file(path);
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor& dst) {
    if (!file.contains(name)) throw FormatError(located(path, "missing tensor '" + name + "'"));
    auto src = file.load(name, dst.scalar_type());
    if (src.sizes() != dst.sizes())
      throw FormatError(located(path, "tensor '" + name + "' has the wrong shape"));
    dst.copy_(src);
  };
  for (auto& p : module.named_parameters()) copy(p.key(), p.value());
  for (auto& b : module.named_buffers()) copy(b.key(), b.value());
}

namespace {

struct ResumeState {
  int64_t epoch = 0;        // epoch in progress
  int64_t next_batch = 0;   // first batch of that epoch not yet trained on
  int64_t step = 0;         // optimizer steps done
  double train_seconds = 0;
  std::vector<EvalRecord> history;
  EvalRecord best;
  bool has_best = false;
  double loss_sum = 0;      // training loss since the last evaluation, for the curves
  int64_t loss_count = 0;
};

nlohmann::json to_json(const ResumeState& s, const TrainerOptions& o) {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& r : s.history) h.push_back(r.to_json());
  nlohmann::json j = {{"epoch", s.epoch}, {"next_batch", s.next_batch}, {"step", s.step},
                      {"train_seconds", s.train_seconds}, {"history", h}, {"has_best", s.has_best},
                      {"best", s.best.to_json()}, {"loss_sum", s.loss_sum}, {"loss_count", s.loss_count},
                      // What must not change between a run and its resumption.
                      {"batch_size", o.batch_size}, {"grad_accum", o.grad_accum}, {"seed", o.seed},
                      {"epochs", o.epochs},
                      // Ranks that wrote it: their random-number states are rng-rank<r>.pt beside rng.pt.
                      {"world_size", data_parallel() ? data_parallel()->world_size() : 1}};
  return j;
}

void write_metrics(const fs::path& run, const ResumeState& s) {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& r : s.history) h.push_back(r.to_json());
  write_json_atomic((run / "metrics.json").string(),
                    {{"history", h}, {"best", s.has_best ? s.best.to_json() : nlohmann::json()}});
}

}  // namespace

Trainer::Trainer(TextClassifier& model, TrainerOptions options, LossFn loss)
    : model_(model), options_(std::move(options)), loss_(std::move(loss)) {}

TrainResult Trainer::fit(const TextDataset& train, const TextDataset& valid) {
  const auto wall_start = std::chrono::steady_clock::now();
  const TrainerOptions& o = options_;
  if (o.batch_size < 1 || o.grad_accum < 1 || o.epochs < 1 || o.eval_batch_size < 1)
    throw ConfigError("train: batch_size, eval_batch_size, grad_accum and epochs must be >= 1");
  if (train.size() == 0) throw DataError(located(train.source(), "the training set is empty"));
  if (valid.size() == 0) throw DataError(located(valid.source(), "the validation set is empty"));
  const fs::path run(o.run_dir);
  // Data-parallel: every rank trains; rank 0 alone evaluates and writes (data_parallel.h).
  DataParallel* const dp = data_parallel();
  const bool main_rank = dp == nullptr || dp->is_main();
  if (main_rank) fs::create_directories(run);

  // Each rank its own dropout stream; rank 0's (and one process's) is the seed's.
  torch::manual_seed(static_cast<uint64_t>(o.seed) + static_cast<uint64_t>(dp ? dp->rank() : 0));
  auto& module = model_.module();
  // Before the optimizer is built, so that its state is created beside the parameters.
  if (module_device(module) != o.device) module.to(o.device);
  if (dp) dp->broadcast_parameters(module);  // one starting point, whatever each rank drew
  module.train();
  // Dropout on a GPU draws from that device's generator; it is saved and restored beside the CPU's.
  const bool cuda = o.device.is_cuda();
  auto optimizer = make_adamw(module, o.optim);

  BucketBatcherOptions bo;
  bo.batch_size = o.batch_size;
  bo.seed = o.seed;
  BucketBatcher batcher(train, bo, model_.tokenizer().pad_id());
  const int64_t batches_per_epoch = batcher.num_batches();
  const int64_t steps_per_epoch = (batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  LinearSchedule schedule(o.optim.lr, static_cast<int64_t>(o.optim.warmup_ratio * total_steps), total_steps);

  ResumeState state;
  const fs::path last = run / "last";
  if (o.resume) {
    if (!fs::exists(last / "trainer_state.json"))
      throw IoError(located(last.string(), "no checkpoint to resume from", "start without --resume"));
    const auto j = read_json((last / "trainer_state.json").string());
    for (const char* key : {"batch_size", "grad_accum", "seed", "epochs"}) {
      if (j.at(key) != to_json(state, o).at(key))
        throw ConfigError(located((last / "trainer_state.json").string(),
                                  std::string("train.") + key + " differs from the interrupted run",
                                  "resume with the same settings"));
    }
    state.epoch = j.at("epoch").get<int64_t>();
    state.next_batch = j.at("next_batch").get<int64_t>();
    state.step = j.at("step").get<int64_t>();
    state.train_seconds = j.at("train_seconds").get<double>();
    for (const auto& r : j.at("history")) state.history.push_back(EvalRecord::from_json(r));
    state.has_best = j.at("has_best").get<bool>();
    state.best = EvalRecord::from_json(j.at("best"));
    state.loss_sum = j.value("loss_sum", 0.0);
    state.loss_count = j.value("loss_count", int64_t{0});
    load_module_state(module, (last / "model.safetensors").string());
    torch::load(*optimizer, (last / "optimizer.pt").string(), o.device);
    // This rank's random-number state where the checkpoint has it (same number of ranks); with another
    // number of ranks the data order is the same (the global batch is), only the dropout streams restart.
    const int rank = dp ? dp->rank() : 0;
    const int saved_ranks = j.value("world_size", 1);
    const int ranks = dp ? dp->world_size() : 1;
    const fs::path rng_file = last / (rank == 0 ? std::string("rng.pt") : "rng-rank" + std::to_string(rank) + ".pt");
    if (saved_ranks == ranks && fs::exists(rng_file)) {
      torch::Tensor rng;
      torch::load(rng, rng_file.string());
      auto gen = at::detail::getDefaultCPUGenerator();  // a handle: shares the process's state
      gen.set_state(rng);
    } else if (main_rank) {
      log_warn(strf("the checkpoint was written by %d rank(s), this run has %d: same data order, new dropout streams",
                    saved_ranks, ranks));
    }
    if (cuda && fs::exists(last / "rng_cuda.pt")) {
      torch::Tensor cuda_rng;
      torch::load(cuda_rng, (last / "rng_cuda.pt").string());
      auto cuda_gen = at::globalContext().defaultGenerator(o.device);  // a handle: shares the device's state
      cuda_gen.set_state(cuda_rng);
    }
    log_info(strf("resuming from %s at epoch %lld batch %lld (step %lld)", last.string().c_str(),
                  static_cast<long long>(state.epoch + 1), static_cast<long long>(state.next_batch),
                  static_cast<long long>(state.step)));
  }

  auto save_last = [&]() {
    const auto rng_state = at::detail::getDefaultCPUGenerator().get_state();
    std::vector<torch::Tensor> rank_states;
    if (dp) rank_states = dp->all_gather(rng_state);  // every rank takes part; rank 0 writes them
    if (!main_rank) return;
    StagedDir dir(last);
    save_module_state(module, dir.file("model.safetensors"));
    fault_point("checkpoint");
    torch_save_file(*optimizer, dir.file("optimizer.pt"));
    torch_save_file(rng_state, dir.file("rng.pt"));
    for (size_t r = 1; r < rank_states.size(); ++r)
      torch_save_file(rank_states[r], dir.file("rng-rank" + std::to_string(r) + ".pt"));
    if (cuda) torch_save_file(at::globalContext().defaultGenerator(o.device).get_state(), dir.file("rng_cuda.pt"));
    write_json_atomic(dir.file("trainer_state.json"), to_json(state, o));
    dir.commit();
  };

  auto run_eval = [&](double epoch) {
    if (!main_rank) {  // the other ranks wait for it in their next collective
      state.loss_sum = 0;
      state.loss_count = 0;
      return;
    }
    auto ev = evaluate(model_, valid, o.eval_batch_size);
    EvalRecord r;
    r.step = state.step;
    r.epoch = epoch;
    r.accuracy = ev.confusion.accuracy();
    r.macro_f1 = ev.confusion.macro_f1();
    r.loss = ev.mean_loss;
    r.train_seconds = state.train_seconds;
    r.train_loss = state.loss_count > 0 ? state.loss_sum / static_cast<double>(state.loss_count) : 0.0;
    state.loss_sum = 0;
    state.loss_count = 0;
    state.history.push_back(r);
    const bool better = o.keep_latest || !state.has_best || r.accuracy > state.best.accuracy;
    if (better) {
      state.best = r;
      state.has_best = true;
      StagedDir dir(run / "best");
      model_.save(dir.path().string());
      dir.commit();
    }
    write_metrics(run, state);
    log_info(strf("epoch %.2f step %lld/%lld: valid accuracy %.4f macro-F1 %.4f loss %.4f%s", epoch,
                  static_cast<long long>(state.step), static_cast<long long>(total_steps), r.accuracy, r.macro_f1,
                  r.loss, better ? " (best so far, saved)" : ""));
  };

  std::vector<double> result_steps;
  log_info(strf("training: %zu examples, %lld batches/epoch, %lld optimizer steps, %d threads, device %s%s",
                train.size(), static_cast<long long>(batches_per_epoch), static_cast<long long>(total_steps),
                torch::get_num_threads(), o.device.str().c_str(),
                dp ? strf(", %d ranks (each a slice of every batch of %lld)", dp->world_size(),
                          static_cast<long long>(o.batch_size)).c_str()
                   : ""));
  TrainStep step_core(module);
  bool stopped = false;
  int64_t nonfinite_steps = 0;  // skipped in this process (a resumed run starts its allowance afresh)
  bool skip_window = false;     // the current optimizer step's window had a non-finite loss or gradient
  for (; state.epoch < o.epochs; ++state.epoch, state.next_batch = 0) {
    const auto plan = batcher.epoch_plan(state.epoch);
    ProgressBar bar("epoch " + std::to_string(state.epoch + 1) + "/" + std::to_string(o.epochs), batches_per_epoch,
                    "batch", o.progress && main_rank);
    bar.set_position(state.next_batch);
    auto seg_start = std::chrono::steady_clock::now();
    double loss_avg = 0;
    auto step_start = std::chrono::steady_clock::now();
    for (int64_t b = state.next_batch; b < batches_per_epoch; ++b) {
      if (b == state.next_batch || (b % o.grad_accum) == 0) {
        step_start = std::chrono::steady_clock::now();
        if (o.training_progress) o.training_progress->fraction = static_cast<double>(state.step) / static_cast<double>(total_steps);
      }
      // With ranks, this rank's slice of the global batch (train_step.h); in one process, all of it.
      const auto& rows = plan[static_cast<size_t>(b)];
      const RowSlice part = step_core.slice(static_cast<int64_t>(rows.size()));
      torch::Tensor loss;  // this rank's mean loss; undefined when its slice is empty
      if (!part.empty()) {
        Batch batch = batcher.collate(std::vector<int64_t>(rows.begin() + part.first, rows.begin() + part.end));
        if (cuda) batch = batch.to(o.device);
        // Forward and loss under autocast when the precision is bf16; the backward pass outside it.
        ModelOutput output;
        {
          AutocastScope autocast(o.device);
          output = float32_output(model_.forward(batch));
          loss = loss_(output, batch).to(torch::kFloat32);
        }
      }
      // The global batch's loss, the same on every rank, so that all skip (or apply) the same steps;
      // backpropagated only when finite.
      const double value = step_core.backward(loss, part, o.grad_accum);
      // A NaN or Inf loss or gradient skips its optimizer step (the window's gradients are dropped, the step
      // is counted so that the schedule and checkpoints keep their places); past the allowance the run stops.
      auto non_finite = [&](const std::string& what, double v) {
        const std::string where = std::string(std::isnan(v) ? "NaN" : "Inf") + " " + what + " at epoch " +
                                  std::to_string(state.epoch + 1) + " batch " + std::to_string(b) + " (step " +
                                  std::to_string(state.step) + ")";
        if (++nonfinite_steps > o.max_nonfinite_steps)
          throw TrainError(where + "; the last good checkpoint is in " + last.string() +
                           (o.max_nonfinite_steps > 0 ? "; more than train.max_nonfinite_steps = " +
                                                            std::to_string(o.max_nonfinite_steps) + " steps skipped"
                                                      : "") +
                           " (hint: lower train.lr or raise train.warmup)");
        log_warn("skipping the optimizer step: " + where + " (" + std::to_string(nonfinite_steps) + " of at most " +
                 std::to_string(o.max_nonfinite_steps) + ")");
        skip_window = true;
      };
      if (std::isfinite(value)) {
        loss_avg = b == state.next_batch ? value : 0.98 * loss_avg + 0.02 * value;
        state.loss_sum += value;
        ++state.loss_count;
      } else {
        non_finite("loss", value);
      }
      const bool boundary = (b + 1) % o.grad_accum == 0 || b + 1 == batches_per_epoch;
      if (boundary) {
        if (!skip_window) {  // the gradients summed across ranks, then clipped
          const double norm = step_core.reduce_and_clip(o.optim.clip_norm);
          if (!std::isfinite(norm)) non_finite("gradient norm", norm);
        }
        schedule.apply(*optimizer, state.step);
        if (!skip_window) optimizer->step();
        optimizer->zero_grad();
        skip_window = false;
        fault_point("step");
        if (o.record_step_times)
          result_steps.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count());
        ++state.step;
        state.next_batch = b + 1;
        if (o.stop_when && o.stop_when(state.step)) {
          bar.finish("stopped");
          stopped = true;
          break;
        }
        const bool want_eval = o.eval_every > 0 && state.step % o.eval_every == 0;
        const bool stop_now = o.stop_after_steps > 0 && state.step >= o.stop_after_steps &&
                              b + 1 < batches_per_epoch;
        const bool want_ckpt = (o.checkpoint_every > 0 && state.step % o.checkpoint_every == 0) || stop_now;
        if (want_eval || want_ckpt || b + 1 == batches_per_epoch) {
          auto now = std::chrono::steady_clock::now();
          state.train_seconds += std::chrono::duration<double>(now - seg_start).count();
          if (want_eval || b + 1 == batches_per_epoch) {
            run_eval(static_cast<double>(state.epoch) + static_cast<double>(b + 1) / batches_per_epoch);
          }
          if (b + 1 == batches_per_epoch) {
            state.next_batch = 0;  // the saved state points at the start of the next epoch
            ++state.epoch;
            save_last();
            --state.epoch;
          } else if (want_ckpt) {
            save_last();
          }
          seg_start = std::chrono::steady_clock::now();
        }
        if (stop_now) {
          bar.finish("stopped; resume with --resume");
          stopped = true;
          break;
        }
      }
      char status[64];
      std::snprintf(status, sizeof status, "loss %.4f lr %.2e", loss_avg, schedule.lr_at(state.step));
      bar.update(1, status);
    }
    if (stopped) break;
    bar.finish();
  }

  if (dp) dp->barrier();  // rank 0's last evaluation and checkpoint are written when fit returns on any rank

  TrainResult result;
  result.history = state.history;
  result.best = state.best;
  result.steps = state.step;
  result.stopped_early = stopped;
  result.train_seconds = state.train_seconds;
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  result.step_seconds = std::move(result_steps);
  return result;
}

}  // namespace kd
