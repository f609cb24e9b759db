// The data-parallel group (train/data_parallel.h): torchrun's variables, the row slices, and the collectives
// of two ranks formed in one process (two threads, loopback Gloo).
#include <gtest/gtest.h>


#include <chrono>
#include <map>
#include <thread>

#include "expect_error.h"
#include "free_port.h"
#include "kd/error.h"
#include "kd/train/data_parallel.h"

namespace kd {
namespace {

std::map<std::string, std::string>* g_env = nullptr;
const char* fake_getenv(const char* name) {
  auto it = g_env->find(name);
  return it == g_env->end() ? nullptr : it->second.c_str();
}
WorldEnv env_of(std::map<std::string, std::string> vars) {
  g_env = &vars;
  return WorldEnv::from_environment(fake_getenv);
}

TEST(WorldEnvTest, ReadsTorchrunsVariablesAndRefusesOnesThatDoNotFit) {
  EXPECT_FALSE(env_of({}).distributed());
  EXPECT_FALSE(env_of({{"WORLD_SIZE", "1"}}).distributed());
  const auto e = env_of({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"},
                         {"MASTER_PORT", "29999"}});
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "10.0.0.2");
  EXPECT_EQ(e.master_port, 29999);
  EXPECT_FALSE(e.agent_store);
  EXPECT_TRUE(env_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}}).agent_store);
  test::expect_error<ConfigError>([&] { (void)env_of({{"WORLD_SIZE", "2"}}); }, {"RANK is not set"});
  test::expect_error<ConfigError>([&] { (void)env_of({{"RANK", "0"}}); }, {"WORLD_SIZE is not"});
  test::expect_error<ConfigError>([&] { (void)env_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}}); }, {"not below WORLD_SIZE"});
  test::expect_error<ConfigError>([&] { (void)env_of({{"WORLD_SIZE", "two"}, {"RANK", "0"}}); }, {"WORLD_SIZE"});
  test::expect_error<ConfigError>([&] { (void)env_of({{"WORLD_SIZE", "2"}, {"RANK", "-1"}}); }, {"RANK"});
  test::expect_error<ConfigError>([&] { (void)env_of({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_PORT", "70000"}}); }, {"MASTER_PORT"});
}

TEST(DataParallelTest, SlicesCoverEveryRowOnceInOrderWithinOneOfEachOther) {
  for (int world : {1, 2, 3, 8})
    for (int64_t rows : {0, 1, 2, 7, 32, 33}) {
      int64_t next = 0, smallest = rows, largest = 0;
      for (int r = 0; r < world; ++r) {
        const auto [first, end] = shard_rows(rows, r, world);
        EXPECT_EQ(first, next) << rows << " rows, rank " << r << " of " << world;
        next = end;
        smallest = std::min(smallest, end - first);
        largest = std::max(largest, end - first);
      }
      EXPECT_EQ(next, rows);
      EXPECT_LE(largest - smallest, 1);
    }
}

// Runs `body(rank, group)` on two threads that form a loopback group.
void with_two_ranks(const std::function<void(int, DataParallel&)>& body) {
  const int port = test::free_port();
  std::exception_ptr failure[2];
  auto rank_main = [&](int r) {
    try {
      WorldEnv env;
      env.rank = r;
      env.world_size = 2;
      env.master_port = port;
      DataParallel group(env, torch::kCPU, std::chrono::seconds(20));
      body(r, group);
    } catch (...) {
      failure[r] = std::current_exception();
    }
  };
  std::thread one(rank_main, 1);
  rank_main(0);
  one.join();
  for (auto& f : failure)
    if (f) std::rethrow_exception(f);
}

TEST(DataParallelTest, CollectivesOfTwoRanks) {
  with_two_ranks([](int r, DataParallel& g) {
    EXPECT_EQ(g.rank(), r);
    EXPECT_EQ(g.world_size(), 2);
    EXPECT_EQ(g.backend(), "gloo");
    EXPECT_DOUBLE_EQ(g.sum(r == 0 ? 1.5 : 2.25), 3.75);
    const auto states = g.all_gather(torch::full({3}, r + 7, torch::kUInt8));
    ASSERT_EQ(states.size(), 2u);
    EXPECT_TRUE(states[0].equal(torch::full({3}, 7, torch::kUInt8)));
    EXPECT_TRUE(states[1].equal(torch::full({3}, 8, torch::kUInt8)));
    // Uneven row counts, concatenated in rank order.
    const auto rows = g.all_gather_rows(r == 0 ? torch::ones({2, 3}) : torch::full({1, 3}, 2.0));
    EXPECT_TRUE(rows.equal(torch::tensor({{1.f, 1.f, 1.f}, {1.f, 1.f, 1.f}, {2.f, 2.f, 2.f}})));
  });
}

TEST(DataParallelTest, GradientsAreSummedAndRankZerosWeightsBroadcast) {
  with_two_ranks([](int r, DataParallel& g) {
    torch::manual_seed(100 + r);  // each rank draws other weights
    torch::nn::Linear a(3, 2), b(2, 1), unused(2, 2);
    torch::nn::Sequential net(a, b);
    net->register_module("unused", unused);
    g.broadcast_parameters(*net);
    // Every rank now holds rank 0's draw: the sum over ranks is twice this rank's values.
    const auto w = a->weight.detach().clone();
    const auto gathered = g.all_gather(w);
    EXPECT_TRUE(gathered[0].equal(gathered[1]));
    // Rank 0 has gradients on a and b; rank 1 on b only (a's count as zeros there); `unused` on neither.
    a->weight.mutable_grad() = r == 0 ? torch::ones({2, 3}) : torch::Tensor();
    a->bias.mutable_grad() = r == 0 ? torch::ones({2}) : torch::Tensor();
    b->weight.mutable_grad() = torch::full({1, 2}, r + 1.0);
    b->bias.mutable_grad() = torch::full({1}, 10.0 * (r + 1));
    g.allreduce_gradients(*net, /*bucket_bytes=*/8);  // tiny buckets: several all-reduces
    EXPECT_TRUE(a->weight.grad().equal(torch::ones({2, 3})));
    EXPECT_TRUE(a->bias.grad().equal(torch::ones({2})));
    EXPECT_TRUE(b->weight.grad().equal(torch::full({1, 2}, 3.0)));
    EXPECT_TRUE(b->bias.grad().equal(torch::full({1}, 30.0)));
    EXPECT_FALSE(unused->weight.grad().defined()) << "no rank had it: the optimizer must still skip it";
  });
}

TEST(DataParallelTest, RanksStartedWithDifferentConfigsNameTheKey) {
  std::string rank1_error;
  try {
    with_two_ranks([&](int r, DataParallel& g) {
      try {
        g.check_same_config(r == 0 ? "train: {lr: 0.001, epochs: 2}\n" : "train: {lr: 0.002, epochs: 2}\n");
      } catch (const DistributedError& e) {
        if (r == 1) rank1_error = e.what();
        else throw;
      }
    });
  } catch (const DistributedError&) {
    // Rank 0 waits in the barrier for a rank that gave up: that fails too (a lost peer), which is fine here.
  }
  EXPECT_NE(rank1_error.find("'train.lr'"), std::string::npos) << rank1_error;
}

TEST(DataParallelTest, AMasterThatDoesNotAnswerIsAnErrorAfterTheTimeout) {
  WorldEnv env;
  env.rank = 1;
  env.world_size = 2;
  env.master_port = test::free_port();  // nobody serves it
  const auto start = std::chrono::steady_clock::now();
  test::expect_error<DistributedError>([&] { DataParallel(env, torch::kCPU, std::chrono::milliseconds(1500)); },
                                       {"could not join the rendezvous", "MASTER_ADDR:MASTER_PORT"});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 1.0);
  EXPECT_LT(waited, 30.0) << "bounded by the timeout, not a hang";
}

}  // namespace
}  // namespace kd
