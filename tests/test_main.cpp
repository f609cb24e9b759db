#include <gtest/gtest.h>
#include <torch/torch.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // ctest runs two test processes at once on a 2-core machine; one intra-op thread each.
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
