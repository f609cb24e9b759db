// Data-parallel training on LibTorch's own c10d: a TCPStore rendezvous, ProcessGroupGloo on CPUs and
// ProcessGroupNCCL on GPUs (where kd was built with NCCL). kd never moves bytes itself.
//
// Launched as PyTorch jobs are, by torchrun (or anything that sets the same variables):
//   torchrun --nproc-per-node=2 --no-python build/kd train-teacher --config ...
// Each rank reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without WORLD_SIZE (or with 1)
// kd is one process, as before.
//
// What the trainer does with a group (train/trainer.cpp): every rank builds the same epoch plan of
// global batches (train.batch_size is the global batch), takes its contiguous slice of each batch, weights
// its mean loss by its share of the rows, and after backward the gradients are summed across ranks in
// buckets. That is the single-process objective (a mean over the global batch), so 1 rank and N ranks end
// with the same weights up to float rounding; the same global batch resumes on any number of ranks.
// Rank 0 alone evaluates, writes checkpoints, run folders and reports; checkpoints also hold every rank's
// random-number state.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kd {

// The launcher's variables. ConfigError naming the variable when they do not fit together.
struct WorldEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the GPU this rank uses (cuda:LOCAL_RANK)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun serves the store, rank 0 too is a client

  bool distributed() const { return world_size > 1; }
  // `get` reads one variable (std::getenv by default; tests pass their own); unset is nullptr.
  static WorldEnv from_environment(const char* (*get)(const char*) = nullptr);
};

// Rows [first, second) of a batch of `rows` for `rank` of `world_size`: contiguous, in rank order, sizes
// differing by at most one, empty for the last ranks when rows < world_size.
std::pair<int64_t, int64_t> shard_rows(int64_t rows, int rank, int world_size);

class DataParallel {
 public:
  // Joins the group: rank 0 serves the TCPStore on MASTER_PORT, every rank connects, then the backend for
  // `device` (Gloo for the CPU, NCCL for CUDA) is formed. A master that does not answer within `timeout`,
  // and any later collective that waits longer than `timeout`, is a DistributedError.
  DataParallel(const WorldEnv& env, torch::Device device, std::chrono::milliseconds timeout);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const;
  int world_size() const;
  bool is_main() const { return rank() == 0; }
  const std::string& backend() const;  // "gloo" or "nccl"

  // This rank's rows of a global batch (shard_rows).
  std::pair<int64_t, int64_t> shard(int64_t rows) const;

  // Rank 0 publishes its resolved config; every other rank compares its own and throws a DistributedError
  // naming the first differing key (ranks started with different configs or flags).
  void check_same_config(const std::string& resolved_yaml);

  // Rank 0's parameters and buffers to every rank (in place).
  void broadcast_parameters(torch::nn::Module& module);
  // Sums every parameter's gradient across ranks, flattened into buckets of at most `bucket_bytes`.
  // A gradient no rank defined stays undefined (the optimizer then skips it, as in one process); one that
  // only some ranks defined counts as zeros on the others.
  void allreduce_gradients(torch::nn::Module& module, int64_t bucket_bytes = 25 << 20);
  // Sum of one number over the ranks (the global loss, counts).
  double sum(double value);
  // Element-wise sum of a tensor of the same shape on every rank, on the CPU (merging disjoint parts
  // filled with zeros elsewhere is exact: x + 0 = x).
  torch::Tensor sum(const torch::Tensor& tensor);
  // Every rank's copy of a tensor of the same shape on every rank (random-number states), on the CPU.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor);
  // Every rank's tensor, concatenated along dim 0 in rank order; sizes along dim 0 may differ by rank.
  torch::Tensor all_gather_rows(const torch::Tensor& rows);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process's group: set once by the CLI from the environment; null in a single process.
DataParallel* data_parallel();
void set_data_parallel(std::unique_ptr<DataParallel> group);
// True in a single process and on rank 0: the process that writes run folders, reports and logs.
inline bool is_main_process() { return data_parallel() == nullptr || data_parallel()->is_main(); }

}  // namespace kd
