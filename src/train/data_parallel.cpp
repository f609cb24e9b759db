#include "kd/train/data_parallel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if KD_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <yaml-cpp/yaml.h>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/util/log.h"

namespace kd {

namespace {

// Gloo announces each connected mesh on stdout, which is kd's output (report tables, JSON): while the group
// forms, stdout goes to /dev/null. Process-wide and counted: ranks that form their groups at once in one
// process (threads, as the tests run them) would otherwise save each other's /dev/null as the stdout to
// restore, and the process's stdout would stay lost.
class QuietStdout {
 public:
  QuietStdout() {
    std::lock_guard<std::mutex> lock(state_.mutex);
    if (state_.users++ > 0) return;
    std::fflush(stdout);
    state_.saved = ::dup(STDOUT_FILENO);
    const int null = ::open("/dev/null", O_WRONLY);
    if (state_.saved >= 0 && null >= 0) ::dup2(null, STDOUT_FILENO);
    if (null >= 0) ::close(null);
  }
  ~QuietStdout() {
    std::lock_guard<std::mutex> lock(state_.mutex);
    if (--state_.users > 0) return;
    std::fflush(stdout);
    if (state_.saved >= 0) {
      ::dup2(state_.saved, STDOUT_FILENO);
      ::close(state_.saved);
      state_.saved = -1;
    }
  }
  QuietStdout(const QuietStdout&) = delete;
  QuietStdout& operator=(const QuietStdout&) = delete;

 private:
  struct State {
    std::mutex mutex;
    int users = 0;   // QuietStdout objects alive
    int saved = -1;  // the real stdout while any is
  };
  static State state_;
};
QuietStdout::State QuietStdout::state_;

// An integer variable of the launcher; ConfigError naming it when it is not one.
int int_variable(const char* name, const char* text, int min_value) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || v < min_value || v > 1000000)
    throw ConfigError(located(std::string("environment variable ") + name,
                              std::string("'") + text + "' is not an integer >= " + std::to_string(min_value),
                              "torchrun sets it; check the launcher"));
  return static_cast<int>(v);
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

// Whether process `pid` of this machine has ended (gone, or a zombie its parent has not reaped yet).
bool process_ended(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  const char state = line[close + 2];
  return state == 'Z' || state == 'X';
}

}  // namespace

WorldEnv WorldEnv::from_environment(const char* (*get)(const char*)) {
  auto read = [&](const char* name) -> const char* {
    const char* v = get ? get(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  WorldEnv env;
  const char* world = read("WORLD_SIZE");
  const char* rank = read("RANK");
  if (!world) {
    if (rank) throw ConfigError(located("environment variable RANK", "is set but WORLD_SIZE is not",
                                        "set both (torchrun does), or neither for one process"));
    return env;
  }
  env.world_size = int_variable("WORLD_SIZE", world, 1);
  if (env.world_size == 1) return env;
  if (!rank)
    throw ConfigError(located("environment variable WORLD_SIZE", "is " + std::string(world) + " but RANK is not set",
                              "set both (torchrun does), or neither for one process"));
  env.rank = int_variable("RANK", rank, 0);
  if (env.rank >= env.world_size)
    throw ConfigError(located("environment variable RANK", std::string(rank) + " is not below WORLD_SIZE " + world,
                              "ranks are 0 .. WORLD_SIZE-1"));
  if (const char* local = read("LOCAL_RANK")) env.local_rank = int_variable("LOCAL_RANK", local, 0);
  if (const char* addr = read("MASTER_ADDR")) env.master_addr = addr;
  if (const char* agent = read("TORCHELASTIC_USE_AGENT_STORE")) env.agent_store = std::string(agent) == "True";
  if (const char* port = read("MASTER_PORT")) {
    env.master_port = int_variable("MASTER_PORT", port, 1);
    if (env.master_port > 65535)
      throw ConfigError(located("environment variable MASTER_PORT", std::string(port) + " is not a TCP port"));
  }
  return env;
}

struct DataParallel::Impl {
  WorldEnv env;
  std::string backend_name;
  torch::Device comm_device = torch::kCPU;  // where collectives' tensors live (the GPU for NCCL)
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  std::vector<std::pair<std::string, long>> members;  // per rank: host and pid, to name a rank that died

  // Runs one collective and waits for it; a failure (a peer gone, a timeout) becomes a DistributedError
  // that names the ranks found dead.
  void run(const char* what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    try {
      auto work = start();
      work->wait(timeout);
    } catch (const c10::Error& e) {
      throw DistributedError(failure(what, e.what_without_backtrace()));
    } catch (const std::exception& e) {
      throw DistributedError(failure(what, e.what()));
    }
  }

  std::string failure(const char* what, const std::string& detail) const {
    const std::string me = host_name();
    std::string lost;
    // A killed peer's sockets close while the kernel is still tearing the process down, so its /proc entry
    // may not say so yet: look for up to 2 s.
    for (int attempt = 0; attempt < 20 && lost.empty(); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      for (size_t r = 0; r < members.size(); ++r) {
        if (static_cast<int>(r) == env.rank || members[r].first != me) continue;
        if (process_ended(members[r].second))
          lost += (lost.empty() ? "" : ", ") + std::to_string(r) + " (pid " + std::to_string(members[r].second) + ")";
      }
    }
    std::string first_line = detail.substr(0, detail.find('\n'));
    if (first_line.size() > 160) first_line = first_line.substr(0, 160) + "...";
    const std::string who = lost.empty() ? "a rank stopped answering or the connection failed"
                                         : "lost rank " + lost + ": it exited";
    return "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": " + who + " during " +
           what + " [" + first_line + "] (hint: the job stops; restart every rank with --resume to continue from "
           "the last checkpoint)";
  }
};

DataParallel::DataParallel(const WorldEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.env = env;
  m.timeout = timeout;
  // c10d and Gloo log their own retries and failures with stack traces; kd reports a failure itself, in one
  // line. Their logs stay on where the user asked for them (TORCH_CPP_LOG_LEVEL).
  if (!std::getenv("TORCH_CPP_LOG_LEVEL")) FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 3);
  const std::string endpoint = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    // Under torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True) the store at MASTER_PORT already
    // runs in the launcher and every rank is a client; otherwise rank 0 serves it.
    so.isServer = env.rank == 0 && !env.agent_store;
    so.numWorkers = env.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    // Keys of a restarted attempt (torchrun --max-restarts) must not meet the last attempt's.
    const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
    m.store = c10::make_intrusive<c10d::PrefixStore>(std::string("kd/attempt_") + (attempt ? attempt : "0"), tcp);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw DistributedError(located("MASTER_ADDR:MASTER_PORT " + endpoint,
                                   "rank " + std::to_string(env.rank) + " could not join the rendezvous within " +
                                       std::to_string(timeout.count() / 1000) + " s [" + what + "]",
                                   "start every rank, check the address and that the port is free on rank 0's host"));
  }
  // Who is who, kept locally: after a failure the store may be gone with rank 0.
  m.store->set("member/" + std::to_string(env.rank), host_name() + " " + std::to_string(::getpid()));
  for (int r = 0; r < env.world_size; ++r) {
    const auto bytes = m.store->get("member/" + std::to_string(r));
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    std::string host;
    long pid = 0;
    in >> host >> pid;
    m.members.emplace_back(host, pid);
  }
  try {
    if (device.is_cuda()) {
#if KD_WITH_NCCL
      m.backend_name = "nccl";
      m.comm_device = device;
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      m.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(m.store, env.rank, env.world_size, opts);
#else
      throw ConfigError(located("--device " + device.str(), "this kd was built without NCCL, so its ranks cannot "
                                "train on GPUs", "build kd with the CUDA torch wheel's NCCL, or use --device cpu"));
#endif
    } else {
      m.backend_name = "gloo";
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // Gloo binds where MASTER_ADDR routes from this host: loopback for one machine, the network otherwise.
      const bool local = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
      opts->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                    : c10d::ProcessGroupGloo::createDefaultDevice());
      opts->threads = 2;
      QuietStdout quiet;
      m.group = c10::make_intrusive<c10d::ProcessGroupGloo>(m.store, env.rank, env.world_size, opts);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(m.failure("forming the process group", e.what()));
  }
  log_info(strf("data-parallel: rank %d of %d, backend %s, rendezvous %s", env.rank, env.world_size,
                m.backend_name.c_str(), endpoint.c_str()));

}

DataParallel::~DataParallel() = default;

int DataParallel::rank() const { return impl_->env.rank; }
int DataParallel::world_size() const { return impl_->env.world_size; }
const std::string& DataParallel::backend() const { return impl_->backend_name; }

std::pair<int64_t, int64_t> shard_rows(int64_t rows, int rank, int world_size) {
  const int64_t w = world_size, r = rank;
  const int64_t base = rows / w, extra = rows % w;
  const int64_t first = r * base + std::min(r, extra);
  return {first, first + base + (r < extra ? 1 : 0)};
}

std::pair<int64_t, int64_t> DataParallel::shard(int64_t rows) const { return shard_rows(rows, rank(), world_size()); }

void DataParallel::check_same_config(const std::string& resolved_yaml) {
  Impl& m = *impl_;
  if (rank() == 0) {
    m.store->set("config", std::vector<uint8_t>(resolved_yaml.begin(), resolved_yaml.end()));
  } else {
    std::vector<uint8_t> bytes;
    try {
      bytes = m.store->get("config");
    } catch (const std::exception& e) {
      throw DistributedError(m.failure("the config check", e.what()));
    }
    const std::string main_yaml(bytes.begin(), bytes.end());
    if (main_yaml != resolved_yaml) {
      const std::string key = first_difference(YAML::Load(main_yaml), YAML::Load(resolved_yaml), {});
      throw DistributedError("rank " + std::to_string(rank()) + ": key '" + (key.empty() ? "?" : key) +
                             "' differs from rank 0's (hint: start every rank with the same config and flags)");
    }
  }
  barrier();  // rank 1 must not start while rank 0 still has to find the difference on its side
}

void DataParallel::broadcast_parameters(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto tensors : {module.parameters(), module.buffers()}) {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t.data().to(impl_->comm_device).contiguous()};
      impl_->run("the broadcast of the initial weights", [&] { return impl_->group->broadcast(one); });
      t.data().copy_(one[0]);
    }
  }
}

void DataParallel::allreduce_gradients(torch::nn::Module& module, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  auto params = module.parameters();
  // Which gradients exist somewhere: a rank with no rows this step has none.
  std::vector<float> flags(params.size());
  for (size_t i = 0; i < params.size(); ++i) flags[i] = params[i].grad().defined() ? 1.0f : 0.0f;
  auto defined = torch::tensor(flags);  // (P) 1 where this rank has the gradient
  {
    std::vector<at::Tensor> one{defined.to(impl_->comm_device)};
    impl_->run("the gradient all-reduce", [&] { return impl_->group->allreduce(one); });
    defined = one[0].to(torch::kCPU);
  }
  const auto any = defined.accessor<float, 1>();
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat_views;
    for (auto& g : bucket) flat_views.push_back(g.reshape({-1}).to(impl_->comm_device));
    std::vector<at::Tensor> one{torch::cat(flat_views)};
    impl_->run("the gradient all-reduce", [&] { return impl_->group->allreduce(one); });
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(one[0].narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (size_t i = 0; i < params.size(); ++i) {
    if (any[static_cast<int64_t>(i)] == 0) continue;
    auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    const int64_t size = p.grad().numel() * static_cast<int64_t>(p.grad().element_size());
    if (!bucket.empty() && (bytes + size > bucket_bytes || bucket.front().scalar_type() != p.grad().scalar_type()))
      flush();
    bucket.push_back(p.mutable_grad());
    bytes += size;
  }
  flush();
}

double DataParallel::sum(double value) {
  std::vector<at::Tensor> one{torch::full({1}, value, torch::kFloat64).to(impl_->comm_device)};
  impl_->run("a sum across ranks", [&] { return impl_->group->allreduce(one); });
  return one[0].to(torch::kCPU).item<double>();
}

torch::Tensor DataParallel::sum(const torch::Tensor& tensor) {
  std::vector<at::Tensor> one{tensor.contiguous().to(impl_->comm_device).clone()};
  impl_->run("a sum across ranks", [&] { return impl_->group->allreduce(one); });
  return one[0].to(torch::kCPU);
}

std::vector<torch::Tensor> DataParallel::all_gather(const torch::Tensor& tensor) {
  std::vector<at::Tensor> in{tensor.contiguous().to(impl_->comm_device)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty_like(in[0]));
  impl_->run("a gather across ranks", [&] { return impl_->group->allgather(out, in); });
  std::vector<torch::Tensor> result;
  for (auto& t : out[0]) result.push_back(t.to(torch::kCPU));
  return result;
}

torch::Tensor DataParallel::all_gather_rows(const torch::Tensor& rows) {
  const auto sizes = all_gather(torch::tensor({rows.size(0)}, torch::kInt64));
  int64_t most = 0;
  for (const auto& s : sizes) most = std::max(most, s.item<int64_t>());
  auto shape = rows.sizes().vec();
  shape[0] = most;
  auto padded = torch::zeros(shape, rows.options());
  padded.narrow(0, 0, rows.size(0)).copy_(rows);
  const auto parts = all_gather(padded);
  std::vector<torch::Tensor> trimmed;
  for (size_t r = 0; r < parts.size(); ++r) trimmed.push_back(parts[r].narrow(0, 0, sizes[r].item<int64_t>()));
  return torch::cat(trimmed);
}

void DataParallel::barrier() {
  impl_->run("a barrier", [&] { return impl_->group->barrier(); });
}

namespace {
std::unique_ptr<DataParallel>& group_slot() {
  static std::unique_ptr<DataParallel> group;
  return group;
}
}  // namespace

DataParallel* data_parallel() { return group_slot().get(); }
void set_data_parallel(std::unique_ptr<DataParallel> group) { group_slot() = std::move(group); }

}  // namespace kd
