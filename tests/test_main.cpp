#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "test_paths.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // ctest runs two test processes at once on a 2-core machine; one intra-op thread each.
  torch::set_num_threads(1);
  const int rc = RUN_ALL_TESTS();
  // The e2e folders hold checkpoints (hundreds of MB each); a whole ctest run would otherwise leave
  // gigabytes under the build tree. A failing process keeps its folders, and so does KD_KEEP_TEST_TMP=1.
  const char* keep = std::getenv("KD_KEEP_TEST_TMP");
  if (rc == 0 && !(keep != nullptr && std::string(keep) == "1")) {
    for (const auto& dir : kd::test::temp_dirs_made()) {
      std::error_code ec;  // best effort: a folder that cannot be removed is no test failure
      std::filesystem::remove_all(dir, ec);
    }
  }
  return rc;
}
