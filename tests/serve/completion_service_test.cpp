#include "kd/serve/completion_service.h"

#include <gtest/gtest.h>

namespace {

TEST(CompletionServiceTest, StreamingHoldsBackOnlyWhatAStopStringCouldStillComplete) {
  using kd::serve::stop_safe_length;
  EXPECT_EQ(stop_safe_length("hello wor", {}), 9u);
  EXPECT_EQ(stop_safe_length("hello wor", {"world"}), 6u);  // "wor" may become "world"
  EXPECT_EQ(stop_safe_length("hello wox", {"world"}), 9u);
  EXPECT_EQ(stop_safe_length("a\n", {"\n\n", "xyz"}), 1u);
  EXPECT_EQ(stop_safe_length("ab", {"b", "abc"}), 0u);  // "ab" starts "abc"; a whole stop string is cut earlier
  EXPECT_EQ(stop_safe_length("", {"abc"}), 0u);
}

}  // namespace
