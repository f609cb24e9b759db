#include <gtest/gtest.h>

#include "kd/error.h"

TEST(ErrorTest, LocatedMessageNamesPlaceAndHint) {
  EXPECT_EQ(kd::located("a.txt:3", "bad", "fix"), "a.txt:3: bad (hint: fix)");
  EXPECT_EQ(kd::located("", "bad"), "bad");
}
