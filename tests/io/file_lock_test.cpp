#include "kd/io/file_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "test_paths.h"
#include "tools/run_kd.h"

namespace {

namespace fs = std::filesystem;

TEST(FileLockTest, ASecondHolderIsRefusedNamingTheFirstAndTheLockIsFreedWithItsHolder) {
  const auto dir = kd::test::temp_dir("file_lock");
  const std::string path = (dir / ".kd.lock").string();
  {
    kd::FileLock first(path, "run folder");
    try {
      kd::FileLock second(path, "run folder");  // another open file description: flock conflicts
      FAIL() << "the second lock was granted";
    } catch (const kd::ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find("in use by another kd process (pid " + std::to_string(getpid())), std::string::npos) << msg;
    }
  }
  EXPECT_TRUE(fs::exists(path)) << "the file stays; only the lock goes";
  EXPECT_NO_THROW(kd::FileLock again(path, "run folder"));
}

TEST(FileLockTest, AKilledHoldersLockIsTakenOver) {
  const auto dir = kd::test::temp_dir("file_lock_kill");
  const std::string path = (dir / ".kd.lock").string();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    kd::FileLock held(path, "run folder");
    const char c = 'x';
    [[maybe_unused]] const auto w = write(ready[1], &c, 1);
    pause();  // until killed
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_THROW(kd::FileLock(path, "run folder"), kd::ConfigError) << "the child holds it";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_NO_THROW(kd::FileLock(path, "run folder")) << "a lock file left by kill -9 is not a lock";
  close(ready[0]);
  close(ready[1]);
}

TEST(FileLockTest, AnUncreatableLockFileIsAnIoError) {
  EXPECT_THROW(kd::FileLock("/nonexistent-folder/x.lock", "cache file"), kd::IoError);
}

// The kd binary on a run folder another process holds: one line, exit 2, nothing of it touched.
TEST(FileLockE2ETest, ASecondKdOnTheSameRunFolderIsRefused) {
  const auto dir = kd::test::temp_dir("file_lock_e2e");
  fs::create_directories(dir / "run");
  kd::test::head_tsv(kd::test::shared_data("sst2/train.tsv"), dir / "train.tsv", 40);
  std::ofstream(dir / "teacher.yaml") << "run_dir: run\n"
                                      << "model: {type: bert, path: " << kd::test::model_dir() << ", max_length: 32}\n"
                                      << "data: {train: train.tsv, valid_fraction: 0.2, text: sentence, label: label}\n"
                                      << "train: {epochs: 1, batch_size: 16}\n";
  std::ofstream(dir / "run" / "notes.txt") << "mine";
  kd::FileLock held((dir / "run" / ".kd.lock").string(), "run folder");
  const auto r = kd::test::run_kd("train-teacher --config teacher.yaml --log-level warn", dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(kd::test::error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("the run folder is in use by another kd process"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run" / "config.yaml"));
  EXPECT_EQ(kd::read_file((dir / "run" / "notes.txt").string()), "mine");
}

}  // namespace
