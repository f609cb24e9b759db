#include "kd/serve/dynamic_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace {

using kd::serve::BatchingOptions;
using kd::serve::DynamicBatcher;
using kd::serve::QueueFull;

// A run function that records each batch's size and, until `open` is set, holds the first batch, so
// that requests queue up behind it deterministically.
struct Recorder {
  std::mutex mutex;
  std::vector<size_t> sizes;
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::promise<void> first_started;

  std::vector<int> operator()(const std::vector<int>& items) {
    bool first;
    {
      std::lock_guard<std::mutex> lock(mutex);
      first = sizes.empty();
      sizes.push_back(items.size());
    }
    if (first) {
      first_started.set_value();
      open.wait();
    }
    std::vector<int> out;
    for (int x : items) {
      if (x < 0) throw std::runtime_error("negative input");
      out.push_back(10 * x);
    }
    return out;
  }
};

TEST(DynamicBatcherTest, QueuedRequestsShareBatchesUpToTheLimitAndGetTheirOwnResults) {
  Recorder rec;
  DynamicBatcher<int, int> batcher(BatchingOptions{4, 0.0, 100}, [&](const std::vector<int>& v) { return rec(v); });
  auto first = batcher.submit({1});
  rec.first_started.get_future().wait();  // the worker now holds batch 1
  std::vector<std::future<std::vector<int>>> answers;
  for (int i = 0; i < 5; ++i) answers.push_back(batcher.submit({i, 100 + i}));  // 10 rows, 2 per request
  EXPECT_EQ(batcher.queued_rows(), 10);
  rec.gate.set_value();
  EXPECT_EQ(first.get(), std::vector<int>({10}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(answers[i].get(), std::vector<int>({10 * i, 10 * (100 + i)}));
  // Requests are never split: 2 + 2 fit in 4, the fifth waits for a batch of its own.
  EXPECT_EQ(rec.sizes, std::vector<size_t>({1, 4, 4, 2}));
  EXPECT_EQ(batcher.queued_rows(), 0);
}

TEST(DynamicBatcherTest, MaxBatchOneRunsEveryRequestAlone) {
  Recorder rec;
  DynamicBatcher<int, int> batcher(BatchingOptions{1, 0.0, 100}, [&](const std::vector<int>& v) { return rec(v); });
  auto first = batcher.submit({1});
  rec.first_started.get_future().wait();
  std::vector<std::future<std::vector<int>>> answers;
  for (int i = 0; i < 3; ++i) answers.push_back(batcher.submit({i}));
  rec.gate.set_value();
  for (auto& a : answers) a.get();
  first.get();
  EXPECT_EQ(rec.sizes, std::vector<size_t>({1, 1, 1, 1}));
}

TEST(DynamicBatcherTest, ARequestLargerThanTheBatchRunsAlone) {
  Recorder rec;
  rec.gate.set_value();
  DynamicBatcher<int, int> batcher(BatchingOptions{2, 0.0, 100}, [&](const std::vector<int>& v) { return rec(v); });
  EXPECT_EQ(batcher.submit({1, 2, 3}).get(), std::vector<int>({10, 20, 30}));
  EXPECT_EQ(rec.sizes, std::vector<size_t>({3}));
}

TEST(DynamicBatcherTest, AFullQueueRefusesAndAFailedBatchFailsItsRequestsOnly) {
  Recorder rec;
  DynamicBatcher<int, int> batcher(BatchingOptions{8, 0.0, 3}, [&](const std::vector<int>& v) { return rec(v); });
  auto first = batcher.submit({1});
  rec.first_started.get_future().wait();
  auto bad = batcher.submit({-1, 2});  // 2 rows queued
  EXPECT_THROW(batcher.submit({3, 4}), QueueFull);  // 4 > 3
  auto good = batcher.submit({5});                  // 3 rows: fits
  rec.gate.set_value();
  first.get();
  // -1 and 5 share a batch, so the failure reaches both; later requests are served again.
  EXPECT_THROW(bad.get(), std::runtime_error);
  EXPECT_THROW(good.get(), std::runtime_error);
  EXPECT_EQ(batcher.submit({6}).get(), std::vector<int>({60}));
}

TEST(DynamicBatcherTest, TheWindowClosesWithoutMoreRequests) {
  Recorder rec;
  rec.gate.set_value();
  DynamicBatcher<int, int> batcher(BatchingOptions{32, 5.0, 100}, [&](const std::vector<int>& v) { return rec(v); });
  // A lone request is answered after the 5 ms window, not held until 32 rows arrive.
  auto a = batcher.submit({7});
  ASSERT_EQ(a.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(a.get(), std::vector<int>({70}));
}

TEST(DynamicBatcherTest, NoWindowWhenNobodyElseIsComing) {
  Recorder rec;
  rec.gate.set_value();
  std::atomic<int64_t> asked_with{-1};
  DynamicBatcher<int, int> batcher(
      BatchingOptions{32, 60000.0, 100}, [&](const std::vector<int>& v) { return rec(v); },
      [&](int64_t held) {
        asked_with = held;
        return false;
      });
  // A one-minute window, yet the lone request is answered at once: nobody else can join it.
  auto a = batcher.submit({7});
  ASSERT_EQ(a.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(a.get(), std::vector<int>({70}));
  EXPECT_EQ(asked_with.load(), 1);
}

TEST(DynamicBatcherTest, DestructionAnswersWhatIsQueued) {
  Recorder rec;
  std::future<std::vector<int>> queued;
  {
    DynamicBatcher<int, int> batcher(BatchingOptions{1, 0.0, 100}, [&](const std::vector<int>& v) { return rec(v); });
    auto first = batcher.submit({1});
    rec.first_started.get_future().wait();
    queued = batcher.submit({2});
    rec.gate.set_value();
  }
  EXPECT_EQ(queued.get(), std::vector<int>({20}));
}

}  // namespace
