// Dynamic batching for a server: requests that arrive within a short wait window run as one forward pass.
//
// Why: at batch 1 a CPU spends most of a small model's forward pass in per-call overhead and in matrix
// products too thin to use the cores; 32 concurrent single-text requests answered one by one cost ~32
// passes, batched they cost a few. The wait window bounds what a lone request pays for this (its latency
// grows by at most `max_wait_ms`).
//
// One worker thread takes the oldest request, then keeps adding queued requests in arrival order while
// their rows fit in `max_batch` and the window (counted from the oldest request's arrival) is open. A
// request's rows are never split across batches; a request with more rows than `max_batch` runs alone.
// `max_batch` 1 turns batching off: every request runs alone, in arrival order.
//
// The window is skipped when nobody else can join: `others_coming(n)` (optional) says whether requests other
// than the n already taken are inside the server (being parsed, or being answered and so about to be
// followed by their client's next); a lone client (concurrency 1) then pays no window at all.
//
// The queue is bounded in rows: submit() throws QueueFull rather than letting latency grow without limit,
// so that the server can answer 503 and the client retry elsewhere.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kd::serve {

struct BatchingOptions {
  int64_t max_batch = 32;     // rows per forward pass
  double max_wait_ms = 2.0;   // how long the oldest queued request may wait for others to join it
  int64_t max_queue = 1024;   // rows waiting (not yet running) before submit() refuses
};

class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("the request queue is full") {}
};

template <class Item, class Result>
class DynamicBatcher {
 public:
  // Runs one batch: one result per item, in item order. An exception fails every request of the batch.
  using RunBatch = std::function<std::vector<Result>(const std::vector<Item>&)>;

  DynamicBatcher(BatchingOptions options, RunBatch run, std::function<bool(int64_t)> others_coming = {})
      : options_(options), run_(std::move(run)), others_coming_(std::move(others_coming)) {
    worker_ = std::thread([this] { work(); });
  }
  // Answers everything already queued, then stops the worker.
  ~DynamicBatcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues one request's rows; the future holds their results in the same order.
  std::future<std::vector<Result>> submit(std::vector<Item> items) {
    Job job;
    job.items = std::move(items);
    job.arrived = Clock::now();
    auto future = job.done.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto rows = static_cast<int64_t>(job.items.size());
      if (queued_rows_ > 0 && queued_rows_ + rows > options_.max_queue) throw QueueFull();
      queued_rows_ += rows;
      queue_.push_back(std::move(job));
    }
    wake_.notify_all();
    return future;
  }

  // Rows waiting to run (not counting the batch running now).
  int64_t queued_rows() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queued_rows_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    std::vector<Item> items;
    Clock::time_point arrived;
    std::promise<std::vector<Result>> done;
  };

  void work() {
    for (;;) {
      std::vector<Job> batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        const auto deadline =
            queue_.front().arrived + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double, std::milli>(options_.max_wait_ms));
        int64_t rows = 0;
        for (;;) {
          while (!queue_.empty()) {
            const auto next = static_cast<int64_t>(queue_.front().items.size());
            if (!batch.empty() && rows + next > options_.max_batch) break;
            rows += next;
            queued_rows_ -= next;
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
          const bool full = rows >= options_.max_batch || !queue_.empty();  // the next one does not fit
          if (full || stopping_ || Clock::now() >= deadline) break;
          if (others_coming_ && !others_coming_(static_cast<int64_t>(batch.size()))) break;
          wake_.wait_until(lock, deadline, [&] { return stopping_ || !queue_.empty(); });
        }
      }
      run(batch);
    }
  }

  void run(std::vector<Job>& batch) {
    std::vector<Item> items;
    for (auto& job : batch)
      for (auto& item : job.items) items.push_back(std::move(item));
    try {
      std::vector<Result> results = run_(items);
      if (results.size() != items.size()) throw std::logic_error("a batch returned another number of results");
      size_t at = 0;
      for (auto& job : batch) {
        std::vector<Result> mine(std::make_move_iterator(results.begin() + at),
                                 std::make_move_iterator(results.begin() + at + job.items.size()));
        at += job.items.size();
        job.done.set_value(std::move(mine));
      }
    } catch (...) {
      for (auto& job : batch) job.done.set_exception(std::current_exception());
    }
  }

  const BatchingOptions options_;
  const RunBatch run_;
  const std::function<bool(int64_t)> others_coming_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false;
  std::thread worker_;  // last: started after every other member exists
};

}  // namespace kd::serve
